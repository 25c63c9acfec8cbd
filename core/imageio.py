"""Image loading and saving, and conversion to and from float NCHW tensors in [0, 1].

Everything the rest of the project reads or writes as a picture goes through this
module, so that uploads, files on disk and tensors follow one set of rules:

* :func:`load_image` reads a path, ``bytes`` or a binary file-like object (such as
  Streamlit's ``UploadedFile``) with Pillow and returns an 8-bit ``"RGB"`` or
  ``"L"`` image. It applies the EXIF orientation, composites transparent images
  onto a white background, scales 16-bit images down to 8 bits (instead of
  clipping them as Pillow's ``convert("L")`` does) and refuses over-large inputs
  and decompression bombs *before* decoding any pixels.
* :func:`image_to_tensor` and :func:`tensor_to_image` convert between such images
  and float32 tensors of shape ``(1, C, H, W)`` with values in ``[0, 1]``
  (``value / 255`` one way, ``round(value * 255)`` the other), so that an 8-bit
  image survives a round trip exactly.
* :func:`save_png` writes a lossless PNG atomically, :func:`png_bytes` returns the
  PNG file contents (for download buttons).
* :func:`load_tensor` combines loading, an optional resize with center crop, and
  the conversion to a tensor.

Every failure to read an image raises :class:`ValueError` (wrong argument *types*
raise :class:`TypeError`), with a one-line message built from one of the
module-level ``ERR_*`` format strings, so that callers need to catch one type and
tests can match the messages.
"""

from __future__ import annotations

import io
import math
import os
import pathlib
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.fileio import atomic_write
from core.validation import check_positive_int

__all__ = [
    "ERR_ASPECT_LIMIT",
    "ERR_BYTES_LIMIT",
    "ERR_CHANNELS",
    "ERR_DECOMPRESSION_BOMB",
    "ERR_EMPTY",
    "ERR_IMAGE_MODE",
    "ERR_IMAGE_TYPE",
    "ERR_LIMITS_KEYWORD",
    "ERR_MISSING_FILE",
    "ERR_MODE",
    "ERR_NOT_A_FILE",
    "ERR_PATH_TYPE",
    "ERR_PIXEL_LIMIT",
    "ERR_RESIZE_LIMIT",
    "ERR_SIDE_LIMIT",
    "ERR_PNG_INPUT_TYPE",
    "ERR_PNG_MODE",
    "ERR_SIZE",
    "ERR_SOURCE_TYPE",
    "ERR_TENSOR_DTYPE",
    "ERR_TENSOR_NAN",
    "ERR_TENSOR_RANGE",
    "ERR_TENSOR_SHAPE",
    "ERR_TENSOR_TYPE",
    "ERR_UNREADABLE",
    "ERR_UNSUPPORTED_MODE",
    "ERR_ZERO_SIZE",
    "MAX_BYTES",
    "MAX_ASPECT",
    "MAX_PIXELS",
    "MAX_SIDE",
    "PNG_SIGNATURE",
    "ImageSource",
    "image_to_tensor",
    "load_image",
    "load_tensor",
    "png_bytes",
    "save_png",
    "tensor_to_image",
]

#: Default limit on the size of the encoded image (file or upload), in bytes (50 MB).
MAX_BYTES = 50_000_000
#: Default limit on ``width * height`` read from the image header (40 megapixels); also the
#: limit on every intermediate image that resizing allocates.
MAX_PIXELS = 40_000_000
#: Default limit on the longer side read from the image header, in pixels.
MAX_SIDE = 20_000
#: Default limit on the ratio of the longer to the shorter side (a 1,800,000 x 1 PNG of 1.8 KB
#: passes a pixel-count limit, then costs gigabytes when its short side is resized).
MAX_ASPECT = 20
#: The first eight bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest accepted estimate of the memory that decoding and converting one image takes, in bytes:
#: ``width * height * PEAK_BYTES_PER_PIXEL[mode]`` (checked on the header, before any pixel is decoded).
MAX_DECODED_BYTES = 380_000_000
#: Peak bytes per pixel of :func:`load_tensor` by Pillow mode: the growth of peak resident memory, less the
#: encoded file, measured at 3000 x 3000 and 6300 x 6300, rounded up (RGB 8.6, RGBA 18.1, 16-bit 28.5, float
#: 34.5 measured). Pillow stores RGB in 4 bytes a pixel, and 16-bit, 32-bit and float images go through float64
#: arrays when they are converted to 8 bits. With the torch process's ~310 MB, every accepted image stays under
#: 700 MB of peak (``python -m bench.hostile_inputs``); the 6300 x 6300 RGB reference (40 Mpx) is accepted.
PEAK_BYTES_PER_PIXEL = {"1": 2, "L": 2, "P": 8, "RGB": 9.5, "YCbCr": 9.5, "LAB": 9.5, "HSV": 9.5, "CMYK": 12,
                        "RGBA": 20, "RGBa": 20, "LA": 20, "La": 20, "PA": 20, "I;16": 32, "I;16B": 32,
                        "I;16L": 32, "I;16N": 32, "I": 38, "F": 38}
_FORMAT_MODE = {"WEBP": "RGBA"}  # formats that decode to a larger mode than their header says

#: What :func:`load_image` accepts as ``source``.
ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

# --- error messages (format strings) -------------------------------------------------
ERR_SOURCE_TYPE = (
    "expected a path (str or os.PathLike), bytes or a binary file-like object as the image "
    "source, got {actual}"
)
ERR_MODE = "mode must be 'RGB' or 'L', got {mode!r}"
ERR_LIMITS_KEYWORD = (
    "unexpected keyword argument(s) {names}; the limits are 'max_pixels', 'max_bytes', 'max_side' and 'max_aspect'"
)
ERR_BYTES_LIMIT = "image file is too large: {size:.1f} MB, the limit is {limit:.1f} MB"
ERR_PIXEL_LIMIT = (
    "image is too large: {width}x{height} = {megapixels:.1f} megapixels, "
    "the limit is {limit:.1f} megapixels"
)
ERR_SIDE_LIMIT = "image is too large: {width}x{height}, the limit is {limit} pixels a side"
ERR_ASPECT_LIMIT = "image is too elongated: {width}x{height} (aspect ratio {ratio:.0f}:1), the limit is {limit}:1"
ERR_RESIZE_LIMIT = (
    "resizing to {height}x{width} would need a {new_width}x{new_height} intermediate image "
    "({megapixels:.1f} megapixels), the limit is {limit:.1f} megapixels"
)
ERR_DECODED_LIMIT = ("image is too large to decode: {width}x{height} in mode {mode} takes about {mb:,.0f} MB, "
                     "the limit is {limit:,.0f} MB")
ERR_CONTAINER = ("image is too large: the icon file holds a {width}x{height} image, about {mb:,.0f} MB to decode "
                 "(limits: {limit} pixels a side, {budget:,.0f} MB, 20:1); refused before decoding")
ERR_DECOMPRESSION_BOMB = "image is too large (refused as a possible decompression bomb): {detail}"
ERR_UNREADABLE = (
    "could not read the image: {detail} (expected an image file such as PNG, JPEG, BMP, GIF, "
    "TIFF or WebP)"
)
ERR_EMPTY = "could not read the image: the input is empty (expected the bytes of an image file)"
ERR_MISSING_FILE = "could not read the image: no such file: {path}"
ERR_NOT_A_FILE = "could not read the image: not a regular file: {path}"
ERR_ZERO_SIZE = "could not read the image: it has a zero side ({width}x{height})"
ERR_UNSUPPORTED_MODE = "could not read the image: unsupported pixel mode {mode!r}"
ERR_IMAGE_TYPE = "expected a PIL.Image.Image, got {actual}"
ERR_IMAGE_MODE = "expected a PIL image in mode 'L' or 'RGB', got mode {mode!r}"
ERR_TENSOR_TYPE = "expected a torch.Tensor, got {actual}"
ERR_TENSOR_DTYPE = "expected a floating-point tensor with values in [0, 1], got dtype {dtype}"
ERR_TENSOR_SHAPE = (
    "expected a tensor of shape (C, H, W) or (1, C, H, W) with C in {{1, 3}} and H, W > 0, "
    "got shape {shape}"
)
ERR_TENSOR_RANGE = "expected tensor values in [0, 1], got min {min:.6g} and max {max:.6g}"
ERR_TENSOR_NAN = (
    "expected tensor values in [0, 1], got {count} NaN value(s) (the other values have "
    "min {min:.6g} and max {max:.6g})"
)
ERR_PNG_INPUT_TYPE = "expected a torch.Tensor or a PIL.Image.Image, got {actual}"
ERR_PNG_MODE = "cannot store a PIL image in mode {mode!r} as PNG"
ERR_PATH_TYPE = "expected a path (str or os.PathLike) to save to, got {actual}"
ERR_CHANNELS = "channels must be 1 or 3, got {channels!r}"
ERR_SIZE = "size must be a positive int or a (height, width) pair of positive ints, got {size!r}"

# Values outside [0, 1] by at most this much are clamped by tensor_to_image.
_RANGE_TOLERANCE = 1e-6
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_LIMIT_NAMES = ("max_pixels", "max_bytes", "max_side", "max_aspect")
# What Pillow raises for corrupt, truncated or unsupported data (besides OSError).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    MemoryError,
)


def load_image(
    source: ImageSource,
    *,
    mode: str = "RGB",
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_aspect: int = MAX_ASPECT,
) -> Image.Image:
    """Read an image and return it as an 8-bit ``"RGB"`` or ``"L"`` PIL image.

    The encoded data is read into memory (at most ``max_bytes`` of it), the header
    is parsed lazily, and ``width * height`` is checked against ``max_pixels``
    before any pixel is decoded. Pillow's own decompression-bomb warning is turned
    into an error as well.

    Pixel modes are converted as follows:

    * EXIF orientation is applied first (``PIL.ImageOps.exif_transpose``); an EXIF
      block that cannot be parsed is ignored.
    * Anything with transparency (``RGBA``, ``LA``, ``PA``, ``P`` or ``L``/``RGB``
      with a transparent colour, premultiplied ``RGBa``/``La``) is composited onto
      a white background.
    * ``I;16``, ``I;16B``, ``I;16L`` and ``I;16N`` (16-bit) are scaled with
      ``round(value / 65535 * 255)``.
    * ``I`` (32-bit signed) is treated as 16-bit when its maximum exceeds 255,
      else as 8-bit; values are clipped to that range first.
    * ``F`` (32-bit float) is treated as ``[0, 1]`` when all its values lie in
      ``[0, 1]``, else like ``I``; NaN becomes 0.
    * ``1``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and palette images are converted
      with Pillow. Grayscale to ``"RGB"`` replicates the channel; colour to ``"L"``
      uses Pillow's ITU-R 601-2 luma (``L = R*299/1000 + G*587/1000 + B*114/1000``).
    * Animated images (GIF, APNG, ...) give their first frame.

    Args:
        source: A path (``str`` or ``os.PathLike``), the encoded image as ``bytes``
            (``bytearray`` and ``memoryview`` work too), or a binary file-like object
            with ``read()``. A seekable file-like object is read from its start, as
            Pillow does, so an already-read Streamlit ``UploadedFile`` still works.
        mode: ``"RGB"`` (3 channels) or ``"L"`` (1 channel).
        max_pixels: Largest accepted ``width * height``, checked on the header.
        max_bytes: Largest accepted size of the encoded data, in bytes.
        max_side: Largest accepted width or height, checked on the header.
        max_aspect: Largest accepted ratio of the longer to the shorter side, checked on
            the header.

    Returns:
        A fully loaded PIL image in ``mode``, 8 bits per channel, independent of
        ``source`` (no file is left open).

    Raises:
        TypeError: ``source`` is of an unsupported type, or a file-like object
            returns ``str`` instead of ``bytes``.
        ValueError: ``mode`` or a limit is invalid; the input is empty, missing,
            larger than ``max_bytes``, larger than ``max_pixels``, a possible
            decompression bomb, corrupt, truncated, has a zero side, or has a
            pixel mode that cannot be converted. The messages come from the
            ``ERR_*`` constants of this module.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(ERR_MODE.format(mode=mode))
    check_positive_int(max_pixels, name="max_pixels")
    check_positive_int(max_bytes, name="max_bytes")
    check_positive_int(max_side, name="max_side")
    check_positive_int(max_aspect, name="max_aspect")
    data = _read_source(source, max_bytes)
    if not data:
        raise ValueError(ERR_EMPTY)
    if len(data) > max_bytes:
        raise ValueError(ERR_BYTES_LIMIT.format(size=len(data) / 1e6, limit=max_bytes / 1e6))

    _check_icon_container(data, max_side=max_side, max_aspect=max_aspect)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(ERR_DECOMPRESSION_BOMB.format(detail=err)) from None
        except UnidentifiedImageError:
            raise ValueError(ERR_UNREADABLE.format(detail="unknown or invalid image format")) from None
        except _DECODE_ERRORS as err:
            raise ValueError(ERR_UNREADABLE.format(detail=_describe(err))) from None
        with img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ValueError(ERR_ZERO_SIZE.format(width=width, height=height))
            if width * height > max_pixels:
                raise ValueError(
                    ERR_PIXEL_LIMIT.format(
                        width=width,
                        height=height,
                        megapixels=width * height / 1e6,
                        limit=max_pixels / 1e6,
                    )
                )
            if max(width, height) > max_side:
                raise ValueError(ERR_SIDE_LIMIT.format(width=width, height=height, limit=max_side))
            if max(width, height) > max_aspect * min(width, height):
                ratio = max(width, height) / min(width, height)
                raise ValueError(ERR_ASPECT_LIMIT.format(width=width, height=height, ratio=ratio, limit=max_aspect))
            decoded = decode_estimate(img)
            if decoded > MAX_DECODED_BYTES:
                raise ValueError(ERR_DECODED_LIMIT.format(width=width, height=height, mode=img.mode, mb=decoded / 1e6,
                                                          limit=MAX_DECODED_BYTES / 1e6))
            if img.format == "JPEG" and max(width, height) > 4 * 1024:
                img.draft(img.mode, (width // 4, height // 4))  # decode at a quarter scale where JPEG allows it
            try:
                with _decode_slot(decoded):
                    img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
                raise ValueError(ERR_DECOMPRESSION_BOMB.format(detail=err)) from None
            except _DECODE_ERRORS as err:
                raise ValueError(ERR_UNREADABLE.format(detail=_describe(err))) from None
            oriented = _exif_transpose(img)
    return _to_8bit(oriented, mode)


def decode_estimate(img: Image.Image) -> int:
    """Bytes that decoding and converting ``img`` (header read, pixels not yet) is expected to take at its peak."""
    mode = _FORMAT_MODE.get(img.format or "", img.mode)
    return int(img.width * img.height * PEAK_BYTES_PER_PIXEL.get(mode, max(PEAK_BYTES_PER_PIXEL.values())))


#: Decodes of more than :data:`LARGE_DECODE` bytes that run at once in this process (a server's sessions share it):
#: see :func:`decode_slots`.
LARGE_DECODE = 50_000_000
_DECODE_SLOTS: list[threading.BoundedSemaphore] = []  # made on first use
_SLOTS_LOCK = threading.Lock()


def decode_slots() -> int:
    """How many large decodes may run at once here: 15% of the machine's memory over :data:`MAX_DECODED_BYTES`
    (9 on a 24 GB machine: at most about 3.4 GB of decoding however many visitors upload)."""
    return max(1, int(0.15 * _machine_memory() / MAX_DECODED_BYTES))


@contextmanager
def _decode_slot(decoded: int) -> Iterator[None]:
    """Hold one of :func:`decode_slots` while a large image decodes (small ones never wait)."""
    if decoded <= LARGE_DECODE:
        yield
        return
    with _SLOTS_LOCK:
        if not _DECODE_SLOTS:
            _DECODE_SLOTS.append(threading.BoundedSemaphore(decode_slots()))
    with _DECODE_SLOTS[0]:
        yield


def _check_icon_container(data: bytes, *, max_side: int, max_aspect: int) -> None:
    """ICO and CUR files name each image's sides in one byte, and Pillow decodes the largest one as it opens the
    file: read the header of every embedded PNG or BMP first, and refuse one over the limits before any decoding."""
    if data[:4] not in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") or len(data) < 6:
        return
    (count,) = struct.unpack("<H", data[4:6])
    for k in range(count):
        entry = data[6 + 16 * k : 22 + 16 * k]
        if len(entry) < 16:
            return  # truncated: Pillow says so
        offset = struct.unpack("<I", entry[12:16])[0]
        head = data[offset : offset + 24]
        if head[:8] == PNG_SIGNATURE and len(head) == 24:
            width, height = struct.unpack(">II", head[16:24])
            mode = "RGBA"
        elif len(head) >= 12:  # BITMAPINFOHEADER: width, then twice the height (image and mask)
            width, height = struct.unpack("<ii", head[4:12])
            width, height, mode = abs(width), abs(height) // 2, "RGBA"
        else:
            continue
        decoded = width * height * PEAK_BYTES_PER_PIXEL[mode]
        if (max(width, height) > max_side or max(width, height) > max_aspect * max(min(width, height), 1)
                or decoded > MAX_DECODED_BYTES):
            raise ValueError(ERR_CONTAINER.format(width=width, height=height, limit=max_side, mb=decoded / 1e6,
                                                  budget=MAX_DECODED_BYTES / 1e6))


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert an 8-bit PIL image to a float tensor.

    Args:
        img: A PIL image in mode ``"L"`` or ``"RGB"`` (as :func:`load_image` returns).

    Returns:
        A float32 tensor of shape ``(1, C, H, W)`` with ``C = 1`` for ``"L"`` and
        ``C = 3`` for ``"RGB"``, values ``pixel / 255`` in ``[0, 1]``.

    Raises:
        TypeError: ``img`` is not a PIL image.
        ValueError: ``img`` is in another mode.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(ERR_IMAGE_TYPE.format(actual=_type_name(img)))
    if img.mode not in ("L", "RGB"):
        raise ValueError(ERR_IMAGE_MODE.format(mode=img.mode))
    array = np.array(img, dtype=np.uint8)  # a writable copy, (H, W) or (H, W, 3)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
    return tensor.to(torch.float32).div_(255.0)


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """Convert a float tensor in ``[0, 1]`` to an 8-bit PIL image.

    The tensor is detached and moved to the CPU; values are mapped with
    ``round(value * 255)``. Values below 0 or above 1 by at most ``1e-6`` are
    clamped, anything further out is an error.

    Args:
        x: A floating-point tensor of shape ``(C, H, W)`` or ``(1, C, H, W)`` with
            ``C`` in ``{1, 3}`` and values in ``[0, 1]``.

    Returns:
        A PIL image in mode ``"L"`` (``C = 1``) or ``"RGB"`` (``C = 3``) of size
        ``(W, H)``.

    Raises:
        TypeError: ``x`` is not a tensor or not floating-point.
        ValueError: ``x`` has another shape, contains NaN, or has values outside
            ``[0, 1]`` (the message states the actual minimum and maximum).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(ERR_TENSOR_TYPE.format(actual=_type_name(x)))
    if not x.is_floating_point():
        raise TypeError(ERR_TENSOR_DTYPE.format(dtype=x.dtype))
    shape = tuple(x.shape)
    if x.dim() == 4 and shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] not in (1, 3) or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(ERR_TENSOR_SHAPE.format(shape=shape))
    x = x.detach().to(device="cpu", dtype=torch.float32)
    nan = torch.isnan(x)
    if bool(nan.any()):
        rest = x[~nan]
        low, high = (float(rest.min()), float(rest.max())) if rest.numel() else (math.nan, math.nan)
        raise ValueError(ERR_TENSOR_NAN.format(count=int(nan.sum()), min=low, max=high))
    low, high = float(x.min()), float(x.max())
    if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(ERR_TENSOR_RANGE.format(min=low, max=high))
    array = x.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0])  # mode "L"
    return Image.fromarray(array)  # mode "RGB"


def png_bytes(x: torch.Tensor | Image.Image) -> bytes:
    """Encode a tensor or a PIL image as a lossless PNG file in memory.

    Args:
        x: A tensor as accepted by :func:`tensor_to_image` (``(C, H, W)`` or
            ``(1, C, H, W)``, ``C`` in ``{1, 3}``, values in ``[0, 1]``), or a PIL
            image in any mode PNG can store (``1``, ``L``, ``LA``, ``P``, ``RGB``,
            ``RGBA``, ``I``, ``I;16``, ...).

    Returns:
        The PNG file contents; they start with :data:`PNG_SIGNATURE`.

    Raises:
        TypeError: ``x`` is neither a tensor nor a PIL image (or see
            :func:`tensor_to_image`).
        ValueError: see :func:`tensor_to_image`, or the PIL image's mode cannot be
            stored as PNG.
    """
    img = _as_image(x)
    buffer = io.BytesIO()
    try:
        img.save(buffer, format="PNG")
    except (OSError, KeyError) as err:
        raise ValueError(ERR_PNG_MODE.format(mode=img.mode)) from err
    return buffer.getvalue()


def save_png(x: torch.Tensor | Image.Image, path: str | os.PathLike[str], *, replace: bool = True) -> pathlib.Path:
    """Save a tensor or a PIL image as a lossless PNG file, atomically.

    The image is encoded in memory first, written to a temporary file in the
    destination folder and moved over ``path`` with :func:`os.replace`, so that
    readers never see a partly written file. Missing parent folders are created.
    The file is written as PNG whatever the suffix of ``path``.

    Args:
        x: What :func:`png_bytes` accepts: a tensor of shape ``(C, H, W)`` or
            ``(1, C, H, W)`` with values in ``[0, 1]``, or a PIL image.
        path: Where to write the file; an existing regular file is replaced unless
            ``replace=False``; anything else (a folder, a device, a link) is refused.
        replace: Replace an existing file (default) or refuse it.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``, or see
            :func:`png_bytes`.
        ValueError: see :func:`png_bytes`.
        OSError: the folder or the file cannot be written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(ERR_PATH_TYPE.format(actual=_type_name(path)))
    target = pathlib.Path(os.fspath(path))
    data = png_bytes(x)
    return atomic_write(target, data, replace=replace)


def load_tensor(
    source: ImageSource,
    *,
    channels: int = 3,
    size: int | tuple[int, int] | None = None,
    **limits: int,
) -> torch.Tensor:
    """Load an image as a float tensor, optionally resized and center-cropped.

    The image is read with :func:`load_image` (mode ``"RGB"`` for 3 channels,
    ``"L"`` for 1) and resized on its 8 bits with Pillow's bicubic filter:

    * ``size=s`` (an int): the shorter side becomes ``s`` (the longer one
      ``int(s * longer / shorter)``), then the center ``s x s`` is cropped, like
      torchvision's ``Resize(s)`` followed by ``CenterCrop(s)``.
    * ``size=(h, w)``: the image is scaled, keeping its aspect ratio, to the
      smallest size that covers ``h x w``, then the center ``h x w`` is cropped.

    Args:
        source: What :func:`load_image` accepts.
        channels: 1 (grayscale, ITU-R 601-2 luma) or 3 (RGB).
        size: ``None`` (keep the size), an int, or a ``(height, width)`` pair.
        **limits: ``max_pixels``, ``max_bytes``, ``max_side``, ``max_aspect``, passed to
            :func:`load_image`; ``max_pixels`` also bounds the intermediate image of the resize.

    Returns:
        A float32 tensor of shape ``(1, channels, H, W)`` with values in ``[0, 1]``,
        where ``(H, W)`` is ``(size, size)``, ``size`` or the image's own size.

    Raises:
        TypeError: an unknown keyword argument, or see :func:`load_image`.
        ValueError: ``channels`` or ``size`` is invalid, the resize would allocate an
            intermediate image of more than ``max_pixels``, or see :func:`load_image`.
    """
    unknown = sorted(set(limits) - set(_LIMIT_NAMES))
    if unknown:
        raise TypeError(ERR_LIMITS_KEYWORD.format(names=", ".join(map(repr, unknown))))
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(ERR_CHANNELS.format(channels=channels))
    target = _target_size(size)
    img = load_image(source, mode="RGB" if channels == 3 else "L", **limits)
    if target is not None:
        img = _resize_and_center_crop(img, *target, max_pixels=limits.get("max_pixels", MAX_PIXELS))
    return image_to_tensor(img)


# --- private helpers -------------------------------------------------------------------


def _machine_memory() -> int:
    """Physical memory in bytes (8 GB when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _type_name(value: Any) -> str:
    """Return the qualified type name of ``value`` for error messages."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _describe(err: BaseException) -> str:
    """Return a one-line description of an exception raised while decoding."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__



def _read_source(source: Any, max_bytes: int) -> bytes:
    """Read at most ``max_bytes + 1`` bytes of encoded image data from ``source``.

    One byte more than the limit is read so that the caller can tell that the
    limit was exceeded without reading an arbitrarily large input.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, max_bytes)
    read = getattr(source, "read", None)
    if not callable(read):
        raise TypeError(ERR_SOURCE_TYPE.format(actual=_type_name(source)))
    seekable = getattr(source, "seekable", None)
    try:
        if callable(seekable) and seekable():
            source.seek(0)
        data = read(max_bytes + 1)
    except OSError as err:
        raise ValueError(ERR_UNREADABLE.format(detail=_describe(err))) from None
    if data is None:  # a non-blocking stream with nothing available
        return b""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            ERR_SOURCE_TYPE.format(actual=f"{_type_name(source)} whose read() returns {_type_name(data)}")
        )
    return bytes(data)


def _read_path(source: str | os.PathLike[str], max_bytes: int) -> bytes:
    """Read an image file, checking its size on disk before reading it."""
    path = os.fspath(source)
    if isinstance(path, bytes):
        raise TypeError(ERR_SOURCE_TYPE.format(actual=f"{_type_name(source)} with a bytes path"))
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(ERR_MISSING_FILE.format(path=path)) from None
    except OSError as err:
        raise ValueError(ERR_UNREADABLE.format(detail=_describe(err))) from None
    if os.path.isdir(path):
        raise ValueError(ERR_NOT_A_FILE.format(path=path))
    if info.st_size > max_bytes:
        raise ValueError(ERR_BYTES_LIMIT.format(size=info.st_size / 1e6, limit=max_bytes / 1e6))
    try:
        with open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as err:
        raise ValueError(ERR_UNREADABLE.format(detail=_describe(err))) from None


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation of ``img``; ignore an EXIF block that cannot be parsed."""
    try:
        oriented = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        return img.copy()
    return oriented if oriented is not None else img.copy()


def _to_8bit(img: Image.Image, mode: str) -> Image.Image:
    """Convert a loaded image of any supported pixel mode to 8-bit ``mode`` ("RGB" or "L")."""
    if img.mode in _SIXTEEN_BIT_MODES or img.mode in ("I", "F"):
        img = _high_depth_to_8bit(img)
    elif img.mode == "1" and not img.has_transparency_data:
        img = img.convert("L")
    elif img.mode not in ("L", "RGB", "LA", "RGBA", "P", "PA", "La", "RGBa", "1"):
        try:
            img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        except (ValueError, OSError):
            raise ValueError(ERR_UNSUPPORTED_MODE.format(mode=img.mode)) from None
    if img.has_transparency_data:
        img = _composite_on_white(img, mode)
    elif img.mode == "P":
        img = img.convert("RGB")
    if img.mode != mode:
        img = img.convert(mode)
    return img


def _high_depth_to_8bit(img: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float image to 8-bit "L" (or "LA" with a transparent value)."""
    values = np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        full_scale = 65535.0
        array = values.astype(np.float64)
    else:
        array = np.nan_to_num(values.astype(np.float64), nan=0.0)
        peak = float(array.max()) if array.size else 0.0
        low = float(array.min()) if array.size else 0.0
        if img.mode == "F" and low >= 0.0 and peak <= 1.0:
            full_scale = 1.0
        else:
            full_scale = 65535.0 if peak > 255.0 else 255.0
        array = np.clip(array, 0.0, full_scale)
    gray = np.rint(array * (255.0 / full_scale)).astype(np.uint8)
    out = Image.fromarray(gray)  # mode "L"
    transparent = img.info.get("transparency")
    if isinstance(transparent, (int, float)) and not isinstance(transparent, bool):
        alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
        out = Image.merge("LA", (out, Image.fromarray(alpha)))
    return out


def _composite_on_white(img: Image.Image, mode: str) -> Image.Image:
    """Composite an image with transparency onto a white background, giving ``mode``."""
    rgba = img.convert("RGBA")
    if mode == "L":
        with_alpha = rgba.convert("LA")
        background = Image.new("L", img.size, 255)
        background.paste(with_alpha.getchannel("L"), mask=with_alpha.getchannel("A"))
    else:
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


def _as_image(x: Any) -> Image.Image:
    """Return ``x`` as a PIL image (converting a tensor with :func:`tensor_to_image`)."""
    if isinstance(x, Image.Image):
        return x
    if isinstance(x, torch.Tensor):
        return tensor_to_image(x)
    raise TypeError(ERR_PNG_INPUT_TYPE.format(actual=_type_name(x)))


def _target_size(size: Any) -> tuple[int, int] | None:
    """Validate ``size`` of :func:`load_tensor` and return it as ``(height, width)`` or None."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        if size > 0:
            return size, size
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        if all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
            return int(size[0]), int(size[1])
    raise ValueError(ERR_SIZE.format(size=size))


def _resize_and_center_crop(img: Image.Image, height: int, width: int, *, max_pixels: int) -> Image.Image:
    """Scale ``img`` (keeping its aspect ratio) to cover ``height x width``, then center-crop.

    The intermediate size is checked against ``max_pixels`` before anything is allocated.
    """
    old_width, old_height = img.size
    if height / old_height >= width / old_width:
        new_height = height
        new_width = max(width, int(old_width * height / old_height))
    else:
        new_width = width
        new_height = max(height, int(old_height * width / old_width))
    if new_width * new_height > max_pixels:
        raise ValueError(ERR_RESIZE_LIMIT.format(height=height, width=width, new_width=new_width, new_height=new_height,
                                                 megapixels=new_width * new_height / 1e6, limit=max_pixels / 1e6))
    if (new_width, new_height) != img.size:
        img = img.resize((new_width, new_height), Image.Resampling.BICUBIC, reducing_gap=None)
    top = int(round((new_height - height) / 2.0))
    left = int(round((new_width - width) / 2.0))
    if (left, top, width, height) != (0, 0, new_width, new_height):
        img = img.crop((left, top, left + width, top + height))
    return img
