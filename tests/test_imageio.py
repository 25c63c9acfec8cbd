"""Tests for core.imageio: loading, conversion of pixel modes, limits, errors, tensors and PNG output."""

from __future__ import annotations

import io
import os
import pathlib
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from core import imageio
from core.imageio import (
    ERR_BYTES_LIMIT,
    ERR_CHANNELS,
    ERR_DECOMPRESSION_BOMB,
    ERR_EMPTY,
    ERR_IMAGE_MODE,
    ERR_IMAGE_TYPE,
    ERR_MISSING_FILE,
    ERR_MODE,
    ERR_NOT_A_FILE,
    ERR_PIXEL_LIMIT,
    ERR_PNG_MODE,
    ERR_SIZE,
    ERR_TENSOR_NAN,
    ERR_TENSOR_RANGE,
    ERR_TENSOR_SHAPE,
    ERR_ZERO_SIZE,
    MAX_BYTES,
    MAX_PIXELS,
    PNG_SIGNATURE,
    image_to_tensor,
    load_image,
    load_tensor,
    png_bytes,
    save_png,
    tensor_to_image,
)
from core.validation import NOT_POSITIVE_INT

UNREADABLE_PREFIX = imageio.ERR_UNREADABLE.split("{")[0]  # "could not read the image: "


# --- helpers -------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    """Encode a PIL image in memory."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def pixels(img: Image.Image) -> np.ndarray:
    """Pixels as a signed int array, (H, W) or (H, W, C)."""
    return np.asarray(img).astype(np.int64)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int, *, idat: bytes | None = None) -> bytes:
    """A valid all-black 1-bit PNG of any size, built without allocating its pixels.

    ``idat`` replaces the compressed pixel data (to make a header-only image whose
    pixels cannot be decoded).
    """
    if idat is None:
        row = bytes(1 + (width + 7) // 8)  # filter byte 0 and black pixels
        compressor = zlib.compressobj(1)
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def random_image(mode: str, size: tuple[int, int] = (23, 17), seed: int = 0) -> Image.Image:
    """A random 8-bit "L" or "RGB" image of size (W, H)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def stripes(width: int = 60, height: int = 20) -> Image.Image:
    """Three vertical stripes: red, green, blue, each width/3 wide."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    array[:, :third, 0] = 255
    array[:, third : 2 * third, 1] = 255
    array[:, 2 * third :, 2] = 255
    return Image.fromarray(array)


def over_white(value: float, alpha: int) -> float:
    """Exact alpha compositing of ``value`` over white."""
    return value * alpha / 255 + 255 * (255 - alpha) / 255


# --- sources -----------------------------------------------------------------------


class FakeUploadedFile(io.BytesIO):
    """Like Streamlit's UploadedFile: a BytesIO subclass with a name."""

    name = "upload.png"


@pytest.fixture
def rgb_png() -> tuple[Image.Image, bytes]:
    img = random_image("RGB")
    return img, encode(img)


def test_sources_of_every_kind_give_the_same_pixels(tmp_path, rgb_png):
    img, data = rgb_png
    path = tmp_path / "img.png"
    path.write_bytes(data)
    expected = pixels(img)
    uploaded = FakeUploadedFile(data)
    uploaded.read()  # already read once, as Streamlit apps often do
    with open(path, "rb") as handle:
        from_handle = load_image(handle)
    sources = [str(path), path, data, bytearray(data), memoryview(data), io.BytesIO(data), uploaded]
    for source in sources:
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (23, 17), type(source)
        np.testing.assert_array_equal(pixels(out), expected)
    np.testing.assert_array_equal(pixels(from_handle), expected)


@pytest.mark.parametrize("source", [12, None, 3.5, ["a.png"], object()])
def test_wrong_source_type_is_a_type_error_naming_both_types(source):
    with pytest.raises(TypeError, match=r"expected a path \(str or os.PathLike\), bytes or a binary file-like") as info:
        load_image(source)
    assert type(source).__name__ in str(info.value)


def test_text_file_object_is_a_type_error(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("not an image")
    with open(path, encoding="utf-8") as handle, pytest.raises(TypeError, match="read\\(\\) returns str"):
        load_image(handle)


@pytest.mark.parametrize("mode", ["RGBA", "rgb", "1", "", None])
def test_invalid_mode_is_a_value_error(rgb_png, mode):
    with pytest.raises(ValueError, match=re.escape(ERR_MODE.format(mode=mode))):
        load_image(rgb_png[1], mode=mode)


@pytest.mark.parametrize("name, value", [("max_pixels", 0), ("max_bytes", -1), ("max_bytes", 1.5), ("max_pixels", True)])
def test_invalid_limits_are_value_errors(rgb_png, name, value):
    with pytest.raises(ValueError, match=re.escape(NOT_POSITIVE_INT.format(name=name, value=value))):
        load_image(rgb_png[1], **{name: value})


def test_returned_image_is_independent_of_the_file(tmp_path, rgb_png):
    img, data = rgb_png
    path = tmp_path / "gone.png"
    path.write_bytes(data)
    out = load_image(path)
    path.unlink()
    np.testing.assert_array_equal(pixels(out.copy()), pixels(img))


# --- pixel modes ---------------------------------------------------------------------


def test_rgb_to_l_uses_itu_r_601_2_luma():
    img = Image.new("RGB", (3, 1))
    img.putpixel((0, 0), (255, 0, 0))
    img.putpixel((1, 0), (0, 255, 0))
    img.putpixel((2, 0), (0, 0, 255))
    out = load_image(encode(img), mode="L")
    assert out.mode == "L" and out.size == (3, 1)
    assert pixels(out).tolist() == [[round(0.299 * 255), round(0.587 * 255), round(0.114 * 255)]]  # 76, 150, 29


def test_gray_to_rgb_replicates_the_channel():
    img = random_image("L", (9, 7))
    out = load_image(encode(img), mode="RGB")
    assert out.mode == "RGB" and out.size == (9, 7)
    for channel in range(3):
        np.testing.assert_array_equal(pixels(out)[..., channel], pixels(img))
    np.testing.assert_array_equal(pixels(load_image(encode(img), mode="L")), pixels(img))


def test_rgba_is_composited_onto_white():
    img = Image.new("RGBA", (4, 1))
    img.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black -> white
    img.putpixel((1, 0), (200, 100, 0, 128))
    img.putpixel((2, 0), (10, 20, 30, 255))  # opaque: unchanged
    img.putpixel((3, 0), (0, 0, 0, 128))
    out = load_image(encode(img))
    assert out.mode == "RGB"
    got = pixels(out)[0]
    assert got[0].tolist() == [255, 255, 255]
    np.testing.assert_allclose(got[1], [over_white(v, 128) for v in (200, 100, 0)], atol=1)
    assert got[2].tolist() == [10, 20, 30]
    np.testing.assert_allclose(got[3], [over_white(0, 128)] * 3, atol=1)
    assert got[3].tolist() != [0, 0, 0]  # the alpha was not just dropped
    gray = pixels(load_image(encode(img), mode="L"))[0]
    assert gray[0] == 255
    np.testing.assert_allclose(gray[1], over_white(0.299 * 200 + 0.587 * 100, 128), atol=1)
    assert gray[2] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)


def test_la_is_composited_onto_white():
    img = Image.new("LA", (3, 1))
    img.putpixel((0, 0), (100, 128))
    img.putpixel((1, 0), (100, 255))
    img.putpixel((2, 0), (0, 0))
    expected = [over_white(100, 128), 100, 255]
    out_l = load_image(encode(img), mode="L")
    assert out_l.mode == "L"
    np.testing.assert_allclose(pixels(out_l)[0], expected, atol=1)
    out_rgb = load_image(encode(img), mode="RGB")
    np.testing.assert_allclose(pixels(out_rgb)[0], np.repeat(np.array(expected)[:, None], 3, axis=1), atol=1)


def test_palette_without_transparency():
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255])
    img.putpixel((1, 0), 1)
    out = load_image(encode(img))
    assert out.mode == "RGB"
    assert pixels(out)[0].tolist() == [[255, 0, 0], [0, 0, 255]]


def test_palette_with_a_transparent_index_and_partial_alpha():
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 0, 255, 0, 200, 0])
    img.putpixel((1, 0), 1)
    img.putpixel((2, 0), 2)
    simple = img.copy()
    simple.info["transparency"] = 1  # index 1 fully transparent
    assert pixels(load_image(encode(simple)))[0].tolist() == [[255, 0, 0], [255, 255, 255], [0, 200, 0]]
    partial = img.copy()
    partial.info["transparency"] = bytes([255, 0, 128])  # tRNS alpha per index
    got = pixels(load_image(encode(partial)))[0]
    assert got[0].tolist() == [255, 0, 0] and got[1].tolist() == [255, 255, 255]
    np.testing.assert_allclose(got[2], [over_white(0, 128), over_white(200, 128), over_white(0, 128)], atol=1)


def test_gif_with_transparency_and_first_frame_of_an_animation():
    frames = [Image.new("P", (2, 2), 0) for _ in range(2)]
    for frame in frames:
        frame.putpalette([0, 0, 255, 0, 255, 0])
    frames[1].paste(1, (0, 0, 2, 2))
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=1)
    assert pixels(load_image(data)).reshape(-1, 3).tolist() == [[0, 0, 255]] * 4
    single = Image.new("P", (2, 1), 0)
    single.putpalette([0, 0, 255, 0, 255, 0])
    single.putpixel((1, 0), 1)
    assert pixels(load_image(encode(single, "GIF", transparency=1)))[0].tolist() == [[0, 0, 255], [255, 255, 255]]


def test_l_and_rgb_with_a_transparent_colour():
    gray = Image.new("L", (2, 1), 10)
    gray.putpixel((1, 0), 20)
    gray.info["transparency"] = 20
    assert pixels(load_image(encode(gray), mode="L"))[0].tolist() == [10, 255]
    rgb = Image.new("RGB", (2, 1), (1, 2, 3))
    rgb.putpixel((1, 0), (9, 9, 9))
    rgb.info["transparency"] = (1, 2, 3)
    assert pixels(load_image(encode(rgb)))[0].tolist() == [[255, 255, 255], [9, 9, 9]]


def test_cmyk_pure_cyan_becomes_rgb_cyan():
    img = Image.new("CMYK", (2, 1), (255, 0, 0, 0))
    img.putpixel((1, 0), (0, 0, 0, 255))  # pure black
    for fmt in ("TIFF", "JPEG"):
        out = load_image(encode(img, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
        assert out.mode == "RGB" and out.size == (2, 1)
        np.testing.assert_allclose(pixels(out)[0], [[0, 255, 255], [0, 0, 0]], atol=3)


def test_bilevel_mode_1():
    img = Image.new("1", (3, 1), 0)
    img.putpixel((1, 0), 1)
    for fmt in ("PNG", "BMP", "TIFF"):
        out_l = load_image(encode(img, fmt), mode="L")
        assert out_l.mode == "L" and pixels(out_l)[0].tolist() == [0, 255, 0]
        assert pixels(load_image(encode(img, fmt)))[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0]]


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535, 257, 1000]], dtype=np.uint16)
    img = Image.fromarray(values)
    data = encode(img)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    expected = [0, 128, 255, 1, round(1000 / 65535 * 255)]
    out = load_image(data, mode="L")
    assert out.mode == "L" and pixels(out)[0].tolist() == expected
    assert pixels(load_image(data, mode="RGB"))[0].tolist() == [[v] * 3 for v in expected]


def test_sixteen_bit_big_endian_tiff_and_pgm():
    raw = bytes([0x80, 0x00, 0xFF, 0xFF, 0x00, 0x00])  # 32768, 65535, 0 big-endian
    tiff = encode(Image.frombytes("I;16B", (3, 1), raw), "TIFF")
    assert Image.open(io.BytesIO(tiff)).mode == "I;16B"
    assert pixels(load_image(tiff, mode="L"))[0].tolist() == [128, 255, 0]
    pgm = b"P5 3 1 65535\n" + raw  # Pillow opens 16-bit PGM as mode "I"
    assert Image.open(io.BytesIO(pgm)).mode == "I"
    assert pixels(load_image(pgm, mode="L"))[0].tolist() == [128, 255, 0]


def test_sixteen_bit_png_with_a_transparent_value():
    img = Image.fromarray(np.array([[65535, 1000]], dtype=np.uint16))
    img.info["transparency"] = 1000
    assert pixels(load_image(encode(img), mode="L"))[0].tolist() == [255, 255]
    img.info["transparency"] = 65535
    assert pixels(load_image(encode(img), mode="L"))[0].tolist() == [255, round(1000 / 65535 * 255)]


def test_32_bit_integer_mode_i_rule():
    wide = Image.fromarray(np.array([[0, 300, 65535, 70000, -5]], dtype=np.int32))
    assert pixels(load_image(encode(wide, "TIFF"), mode="L"))[0].tolist() == [0, 1, 255, 255, 0]
    narrow = Image.fromarray(np.array([[0, 100, 255, -5]], dtype=np.int32))
    assert pixels(load_image(encode(narrow, "TIFF"), mode="L"))[0].tolist() == [0, 100, 255, 0]


def test_float_mode_f_rule():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert pixels(load_image(encode(unit, "TIFF"), mode="L"))[0].tolist() == [0, 128, 255, 0]
    eight = Image.fromarray(np.array([[0.0, 2.0, 255.0]], dtype=np.float32))
    assert pixels(load_image(encode(eight, "TIFF"), mode="L"))[0].tolist() == [0, 2, 255]


def test_jpeg_rgb_loads_close_to_the_original():
    img = Image.new("RGB", (16, 16), (200, 30, 90))
    out = load_image(encode(img, "JPEG", quality=95))
    assert out.mode == "RGB" and out.size == (16, 16)
    np.testing.assert_allclose(pixels(out), np.broadcast_to([200, 30, 90], (16, 16, 3)), atol=4)


# --- EXIF orientation ----------------------------------------------------------------


def _marked_image() -> Image.Image:
    """A 40x20 gray image with a red 6x6 block in its stored top-left corner."""
    img = Image.new("RGB", (40, 20), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, 6, 6))
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(
    "orientation, size, red_at, gray_at",
    [
        (6, (20, 40), (17, 2), (2, 2)),  # rotate 90 CW: stored top-left -> top-right
        (8, (20, 40), (2, 37), (2, 2)),  # rotate 90 CCW: stored top-left -> bottom-left
        (3, (40, 20), (37, 17), (2, 2)),  # rotate 180: -> bottom-right
        (1, (40, 20), (2, 2), (37, 17)),  # as stored
    ],
)
def test_exif_orientation_is_applied(fmt, orientation, size, red_at, gray_at):
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"quality": 95} if fmt == "JPEG" else {}
    data = encode(_marked_image(), fmt, exif=exif, **params)
    out = load_image(data)
    assert out.size == size
    np.testing.assert_allclose(out.getpixel(red_at), (255, 0, 0), atol=12)
    np.testing.assert_allclose(out.getpixel(gray_at), (128, 128, 128), atol=12)
    assert out.getexif().get(0x0112) in (None, 1)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_corrupt_exif_block_is_ignored():
    data = encode(_marked_image(), "PNG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    out = load_image(data)
    assert out.size == (40, 20) and out.getpixel((2, 2)) == (255, 0, 0)


# --- limits and decompression bombs --------------------------------------------------


def test_default_limits():
    assert MAX_PIXELS == 40_000_000
    assert MAX_BYTES == 50_000_000


def test_pixel_limit_is_checked_before_decoding():
    data = bilevel_png(5000, 5000)
    assert len(data) < 50_000
    message = ERR_PIXEL_LIMIT.format(width=5000, height=5000, megapixels=25.0, limit=1.0)
    assert message == "image is too large: 5000x5000 = 25.0 megapixels, the limit is 1.0 megapixels"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_image(data, max_pixels=1_000_000)
    # the header alone is enough: pixels that cannot be decoded are never reached
    with pytest.raises(ValueError, match=re.escape(message)):
        load_image(bilevel_png(5000, 5000, idat=b"not zlib"), max_pixels=1_000_000)
    # at the limit exactly, the image loads
    out = load_image(bilevel_png(100, 50), max_pixels=5000, mode="L")
    assert out.size == (100, 50) and int(pixels(out).max()) == 0


def test_default_pixel_limit_refuses_48_megapixels():
    message = ERR_PIXEL_LIMIT.format(width=8000, height=6000, megapixels=48.0, limit=40.0)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_image(bilevel_png(8000, 6000, idat=b""))


def test_pillow_decompression_bomb_warning_and_error_become_value_errors():
    bomb_prefix = re.escape(ERR_DECOMPRESSION_BOMB.split("{")[0])
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 100 MP, over Pillow's MAX_IMAGE_PIXELS: Pillow warns, the warning is an error here
        with pytest.raises(ValueError, match=bomb_prefix + r".*100000000 pixels"):
            load_image(bilevel_png(10000, 10000), max_pixels=10**9)
        # 400 MP, over twice the limit: Pillow raises DecompressionBombError
        with pytest.raises(ValueError, match=bomb_prefix + r".*400000000 pixels"):
            load_image(bilevel_png(20000, 20000, idat=b""), max_pixels=10**9)
        with pytest.raises(ValueError, match="^image is too large"):
            load_image(bilevel_png(10000, 10000))
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == filters_before


def test_byte_limit_for_bytes_paths_and_file_objects(tmp_path, rgb_png):
    _, data = rgb_png
    limit = len(data) - 1
    message = ERR_BYTES_LIMIT.format(size=len(data) / 1e6, limit=limit / 1e6)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(ValueError, match=re.escape(message)):
            load_image(source, max_bytes=limit)
        assert load_image(source, max_bytes=len(data)).size == (23, 17)
    assert ERR_BYTES_LIMIT.format(size=60.0, limit=50.0) == "image file is too large: 60.0 MB, the limit is 50.0 MB"


# --- unreadable input ----------------------------------------------------------------


def test_corrupt_bytes():
    with pytest.raises(ValueError, match="^" + re.escape(UNREADABLE_PREFIX)):
        load_image(b"this is not an image at all")


def test_truncated_png_fails_when_decoding():
    data = encode(random_image("RGB", (64, 64)))
    truncated = data[: len(data) // 2]
    assert Image.open(io.BytesIO(truncated)).size == (64, 64)  # the header is intact
    with pytest.raises(ValueError, match="^" + re.escape(UNREADABLE_PREFIX)) as info:
        load_image(truncated)
    assert "\n" not in str(info.value)


def test_truncated_jpeg_fails():
    data = encode(random_image("RGB", (64, 64)), "JPEG")
    with pytest.raises(ValueError, match="^" + re.escape(UNREADABLE_PREFIX)):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("empty", [b"", bytearray(), io.BytesIO(b"")])
def test_empty_input(empty):
    with pytest.raises(ValueError, match=re.escape(ERR_EMPTY)):
        load_image(empty)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(ERR_EMPTY)):
        load_image(path)


def test_missing_file_is_a_value_error_with_the_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.png"
    with pytest.raises(ValueError, match=re.escape(ERR_MISSING_FILE.format(path=path))):
        load_image(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_image(str(path))


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(ValueError, match=re.escape(ERR_NOT_A_FILE.format(path=tmp_path))):
        load_image(tmp_path)


def test_zero_side_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="^" + re.escape(UNREADABLE_PREFIX)):
        load_image(bilevel_png(0, 10, idat=b""))  # Pillow itself rejects this header
    # a decoder that reports a zero side is refused by load_image's own check
    monkeypatch.setattr(imageio.Image, "open", lambda fp: Image.new("L", (0, 5)))
    with pytest.raises(ValueError, match=re.escape(ERR_ZERO_SIZE.format(width=0, height=5))):
        load_image(b"anything")


# --- tensors -------------------------------------------------------------------------


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1)])
def test_image_to_tensor_values_and_shape(mode, channels):
    img = random_image(mode, (11, 7))
    x = image_to_tensor(img)
    assert x.shape == (1, channels, 7, 11) and x.dtype == torch.float32 and x.is_contiguous()
    expected = torch.from_numpy(pixels(img).reshape(7, 11, channels)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(x[0], expected, rtol=0, atol=0)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_image_to_tensor_rejects_other_modes_and_types():
    with pytest.raises(ValueError, match=re.escape(ERR_IMAGE_MODE.format(mode="RGBA"))):
        image_to_tensor(Image.new("RGBA", (2, 2)))
    with pytest.raises(TypeError, match=re.escape(ERR_IMAGE_TYPE.format(actual="numpy.ndarray"))):
        image_to_tensor(np.zeros((2, 2), dtype=np.uint8))


def test_tensor_to_image_maps_every_level_exactly():
    levels = torch.arange(256, dtype=torch.float32).reshape(1, 16, 16) / 255
    img = tensor_to_image(levels)
    assert img.mode == "L" and img.size == (16, 16)
    assert pixels(img).reshape(-1).tolist() == list(range(256))
    half = tensor_to_image(torch.full((3, 1, 1), 0.5))
    assert half.mode == "RGB" and half.getpixel((0, 0)) == (128, 128, 128)  # round(127.5)


def test_tensor_to_image_accepts_batched_grad_and_other_float_dtypes():
    x = torch.rand(1, 3, 5, 4, requires_grad=True)
    img = tensor_to_image(x)
    assert img.mode == "RGB" and img.size == (4, 5)
    expected = (x.detach()[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(np.asarray(img), expected)
    assert tensor_to_image(torch.ones(1, 2, 2, dtype=torch.float64)).getpixel((0, 0)) == 255
    assert tensor_to_image(torch.ones(1, 2, 2, dtype=torch.bfloat16)).getpixel((0, 0)) == 255


def test_tensor_to_image_tolerance_clamps_tiny_excursions():
    x = torch.tensor([[[-5e-7, 1 + 5e-7]]], dtype=torch.float64)
    assert pixels(tensor_to_image(x)).tolist() == [[0, 255]]


@pytest.mark.parametrize("bad, low, high", [(1.5, 0.0, 1.5), (-0.01, -0.01, 1.0), (float("inf"), 0.0, float("inf"))])
def test_tensor_to_image_rejects_out_of_range_values_with_min_and_max(bad, low, high):
    x = torch.tensor([[[0.0, 1.0, bad]]])
    message = ERR_TENSOR_RANGE.format(min=low, max=high)
    with pytest.raises(ValueError, match=re.escape(message)):
        tensor_to_image(x)
    assert message.startswith("expected tensor values in [0, 1], got min")


def test_tensor_to_image_rejects_nan():
    x = torch.tensor([[[0.25, float("nan"), 0.75]]])
    with pytest.raises(ValueError, match=re.escape(ERR_TENSOR_NAN.format(count=1, min=0.25, max=0.75))):
        tensor_to_image(x)
    with pytest.raises(ValueError, match="NaN"):
        tensor_to_image(torch.full((1, 2, 2), float("nan")))


@pytest.mark.parametrize("shape", [(2, 4, 4), (4, 4), (2, 3, 4, 4), (1, 1, 3, 4, 4), (3, 0, 4), (4,)])
def test_tensor_to_image_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=re.escape(ERR_TENSOR_SHAPE.format(shape=shape))):
        tensor_to_image(torch.zeros(shape))


def test_tensor_to_image_rejects_non_float_and_non_tensors():
    with pytest.raises(TypeError, match="floating-point"):
        tensor_to_image(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="expected a torch.Tensor, got numpy.ndarray"):
        tensor_to_image(np.zeros((3, 2, 2), dtype=np.float32))


# --- PNG output ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_round_trip_through_save_png_is_exact(tmp_path, mode):
    img = random_image(mode, (31, 19), seed=3)
    x = image_to_tensor(img)
    path = save_png(x, tmp_path / "out" / "nested" / "img.png")
    assert isinstance(path, pathlib.Path) and path == tmp_path / "out" / "nested" / "img.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    loaded = load_image(path, mode=mode)
    assert loaded.mode == mode and loaded.size == (31, 19)
    assert torch.equal(image_to_tensor(loaded), x)
    assert sorted(os.listdir(path.parent)) == ["img.png"]  # no temporary file left behind


def test_save_png_accepts_images_and_chw_tensors_and_replaces_files(tmp_path):
    path = tmp_path / "a.png"
    first = random_image("RGB", seed=1)
    assert save_png(first, str(path)) == path
    np.testing.assert_array_equal(pixels(load_image(path)), pixels(first))
    second = torch.rand(3, 8, 9)
    save_png(second, path)
    assert load_image(path).size == (9, 8)
    torch.testing.assert_close(image_to_tensor(load_image(path))[0], (second * 255).round() / 255, rtol=0, atol=0)
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_save_png_failures_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_png(torch.full((3, 2, 2), float("nan")), tmp_path / "x.png")
    with pytest.raises(TypeError, match="expected a path"):
        save_png(torch.zeros(3, 2, 2), 42)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OSError):
        save_png(torch.zeros(3, 2, 2), tmp_path / "dir.png")
    assert sorted(os.listdir(tmp_path)) == ["dir.png"]


def test_save_png_removes_its_temporary_file_when_the_move_fails(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise PermissionError("simulated")

    monkeypatch.setattr(imageio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="could not write x.png in .*: simulated"):
        save_png(torch.zeros(3, 2, 2), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_png_bytes_is_a_lossless_png():
    x = torch.rand(1, 3, 6, 5)
    data = png_bytes(x)
    assert isinstance(data, bytes) and data.startswith(PNG_SIGNATURE)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (5, 6)
    assert torch.equal(image_to_tensor(load_image(data)), (x * 255).round() / 255)
    gray = random_image("L", seed=5)
    np.testing.assert_array_equal(pixels(load_image(png_bytes(gray), mode="L")), pixels(gray))


def test_png_bytes_rejects_unstorable_modes_and_types():
    with pytest.raises(ValueError, match=re.escape(ERR_PNG_MODE.format(mode="CMYK"))):
        png_bytes(Image.new("CMYK", (2, 2)))
    with pytest.raises(TypeError, match="expected a torch.Tensor or a PIL.Image.Image"):
        png_bytes(b"\x89PNG")


# --- load_tensor ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "channels, size, shape",
    [
        (3, None, (1, 3, 20, 60)),
        (1, None, (1, 1, 20, 60)),
        (3, 16, (1, 3, 16, 16)),
        (1, 16, (1, 1, 16, 16)),
        (3, (10, 30), (1, 3, 10, 30)),
        (1, (30, 10), (1, 1, 30, 10)),
        (3, (40, 40), (1, 3, 40, 40)),
    ],
)
def test_load_tensor_shapes_and_range(channels, size, shape):
    x = load_tensor(encode(stripes()), channels=channels, size=size)
    assert x.shape == shape and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_load_tensor_without_size_equals_image_to_tensor():
    img = stripes()
    assert torch.equal(load_tensor(encode(img)), image_to_tensor(img))


def test_load_tensor_int_size_center_crops_the_middle():
    # shorter side already 20: no resize, the center 20x20 is the green stripe
    x = load_tensor(encode(stripes()), size=20)
    assert x.shape == (1, 3, 20, 20)
    assert torch.equal(x[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0])) and torch.equal(x[0, 1], torch.ones(20, 20))
    assert float(x[0, 0].max()) == 0.0 and float(x[0, 2].max()) == 0.0


@pytest.mark.parametrize(
    "source_size, size, resized, box",
    [
        ((60, 20), 10, (30, 10), (10, 0, 20, 10)),  # shorter side -> 10, crop the middle
        ((20, 60), 10, (10, 30), (0, 10, 10, 20)),
        ((60, 20), (10, 10), (30, 10), (10, 0, 20, 10)),
        ((8, 4), (16, 16), (32, 16), (8, 0, 24, 16)),  # upscale to cover
        ((60, 20), (20, 30), (60, 20), (15, 0, 45, 20)),  # already covers: crop only
        ((60, 20), (5, 45), (45, 15), (0, 5, 45, 10)),  # the width decides the scale
        ((45, 30), 20, (30, 20), (5, 0, 25, 20)),
    ],
)
def test_load_tensor_resize_then_center_crop_matches_pillow(source_size, size, resized, box):
    img = random_image("RGB", source_size, seed=7)
    expected = img.resize(resized, Image.Resampling.BICUBIC, reducing_gap=None) if resized != img.size else img
    expected = expected.crop(box)
    x = load_tensor(encode(img), size=size)
    assert torch.equal(x, image_to_tensor(expected))


def test_load_tensor_one_channel_of_pure_red():
    x = load_tensor(encode(Image.new("RGB", (4, 4), (255, 0, 0))), channels=1, size=2)
    assert x.shape == (1, 1, 2, 2)
    torch.testing.assert_close(x, torch.full((1, 1, 2, 2), round(0.299 * 255) / 255), rtol=0, atol=1e-6)


def test_load_tensor_passes_limits_and_sources(tmp_path):
    data = encode(stripes())
    with pytest.raises(ValueError, match=re.escape("= 0.0 megapixels, the limit is 0.0 megapixels")):
        load_tensor(data, max_pixels=100)
    with pytest.raises(ValueError, match="image file is too large"):
        load_tensor(data, max_bytes=10)
    path = tmp_path / "s.png"
    path.write_bytes(data)
    assert torch.equal(load_tensor(path, size=(20, 20)), load_tensor(io.BytesIO(data), size=20))


@pytest.mark.parametrize("channels", [0, 2, 4, True, "3", None])
def test_load_tensor_rejects_bad_channels(channels):
    with pytest.raises(ValueError, match=re.escape(ERR_CHANNELS.format(channels=channels))):
        load_tensor(b"never read", channels=channels)


@pytest.mark.parametrize("size", [0, -3, (10,), (0, 5), (5, 2.5), 2.5, True, "16", (1, 2, 3)])
def test_load_tensor_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match=re.escape(ERR_SIZE.format(size=size))):
        load_tensor(b"never read", size=size)


def test_load_tensor_rejects_unknown_keywords():
    with pytest.raises(TypeError, match="'mode'"):
        load_tensor(b"never read", mode="L")


# --- bounds on the work, not only on the pixel count --------------------------------------------------


def test_side_and_aspect_limits_are_checked_on_the_header():
    from core.imageio import ERR_ASPECT_LIMIT, ERR_SIDE_LIMIT

    tall = png_bytes(Image.new("L", (3, 90)))
    with pytest.raises(ValueError, match=re.escape(ERR_ASPECT_LIMIT.format(width=3, height=90, ratio=30, limit=20))):
        load_image(tall)
    assert load_image(tall, max_aspect=30).size == (3, 90)
    with pytest.raises(ValueError, match=re.escape(ERR_SIDE_LIMIT.format(width=3, height=90, limit=50))):
        load_image(tall, max_side=50, max_aspect=30)
    for name in ("max_side", "max_aspect"):
        with pytest.raises(ValueError, match=name):
            load_image(tall, **{name: 0})


def test_the_resize_intermediate_is_bounded_before_it_is_allocated():
    from core.imageio import ERR_RESIZE_LIMIT

    strip = png_bytes(Image.new("L", (200, 10)))  # 20:1; a 100 px short side needs a 2000 x 100 intermediate
    message = ERR_RESIZE_LIMIT.format(height=100, width=100, new_width=2000, new_height=100, megapixels=0.2,
                                      limit=0.1)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_tensor(strip, channels=1, size=100, max_pixels=100_000)
    assert load_tensor(strip, channels=1, size=100, max_pixels=200_000).shape == (1, 1, 100, 100)


# --- memory bounded by what is decoded -------------------------------------------------------------


def _png_header(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose header claims ``width x height`` (grey 0 / RGB 2 / RGBA 6, at ``bit_depth``) and holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return imageio.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("bit_depth, colour, mode, accepted_side", [
    (8, 2, "RGB", 6300),  # the documented largest: 6300 x 6300 RGB (40 Mpx) is accepted
    (16, 0, "I;16", 3440),  # 16-bit grey: 32 bytes a pixel at its peak
    (8, 6, "RGBA", 4350),
])
def test_the_decoded_budget_is_checked_on_the_header(bit_depth, colour, mode, accepted_side):
    """A header that promises more decoded memory than MAX_DECODED_BYTES is refused before any pixel is decoded
    (the file holds none); one just inside the budget passes the check and fails only for its missing pixels."""
    big = _png_header(6300, 6300, bit_depth, colour)
    expected = 6300 * 6300 * imageio.PEAK_BYTES_PER_PIXEL[mode]
    if expected > imageio.MAX_DECODED_BYTES:
        with pytest.raises(ValueError, match=re.escape(f"6300x6300 in mode {mode} takes about {expected / 1e6:,.0f} MB")):
            load_image(big)
    with pytest.raises(ValueError) as err:
        load_image(_png_header(accepted_side, accepted_side, bit_depth, colour))
    assert "too large" not in str(err.value)  # past the budget check: the decoder found no pixel data
    assert accepted_side ** 2 * imageio.PEAK_BYTES_PER_PIXEL[mode] <= imageio.MAX_DECODED_BYTES


def test_an_icon_file_is_refused_on_its_embedded_header_before_decoding():
    """An ICO whose directory says 256 x 256 but holds a 9400 x 9400 PNG: Pillow would decode it on open."""
    png = _png_header(9400, 9400)
    ico = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png
    with pytest.raises(ValueError, match=r"the icon file holds a 9400x9400 image, about 1,767 MB to decode .*; refused"):
        load_image(ico)
    small = io.BytesIO()
    Image.new("RGBA", (64, 64), (200, 10, 10, 255)).save(small, "ICO", sizes=[(64, 64)])
    assert load_image(small.getvalue()).size == (64, 64)  # an ordinary icon still loads


def test_large_decodes_share_a_bounded_number_of_slots():
    assert imageio.decode_slots() >= 1
    assert imageio.decode_slots() * imageio.MAX_DECODED_BYTES <= 0.15 * imageio._machine_memory() + imageio.MAX_DECODED_BYTES
