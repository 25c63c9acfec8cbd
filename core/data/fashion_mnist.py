"""Fashion-MNIST loading without a network at run time.

The loader reads the standard idx files (gzipped or not) with a small
validating reader, :func:`read_idx`, and looks for them in three places, in
this order:

1. ``"torchvision"``: torchvision's download layout
   ``<root>/FashionMNIST/raw/`` where ``root`` is the ``root=`` argument, else
   the environment variable ``PDRO_DATA``, else ``~/.cache/perceptual-dro/data``.
   :func:`download_fashion_mnist` fills it for users with internet.
2. ``"debian"``: the folder of the Debian package ``dataset-fashion-mnist``,
   ``/usr/share/datasets/fashion-mnist``.
3. ``"bundled"``: the subset shipped in the repository,
   ``assets/fashion_mnist/``: 2,000 images of the *test* split, 200 per
   class (see ``assets/fashion_mnist/README.md`` and ``bench/make_assets.py``).

Fashion-MNIST is by Zalando Research, MIT licence,
https://github.com/zalandoresearch/fashion-mnist.

Example::

    from core.data import load_fashion_mnist

    data = load_fashion_mnist("test")          # first source that has the split
    x, y = data.tensors()                      # float32 (N, 1, 28, 28) in [0, 1], int64 (N,)
    print(data.source, len(data), data.classes[int(y[0])])
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUNDLED_DIR",
    "BUNDLED_SIZE",
    "DEBIAN_DIR",
    "DEBIAN_PACKAGE",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_URL",
    "IDX_DTYPES",
    "SOURCES",
    "DataSource",
    "FashionMNIST",
    "default_data_root",
    "download_fashion_mnist",
    "fashion_mnist_sources",
    "load_fashion_mnist",
    "read_idx",
    "split_filenames",
    "write_idx",
]

FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)  # per-channel, of the training images
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The 10 class names, indexed by label."""

FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Folder of the Debian package (read at call time, so tests may monkeypatch it)."""
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "assets" / "fashion_mnist"
"""Folder of the subset bundled with the repository (test split only)."""
BUNDLED_SIZE = 2000
"""Number of test images in the bundled subset (200 per class)."""
DATA_ENV = "PDRO_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/perceptual-dro/data")
SOURCES: tuple[str, ...] = ("torchvision", "debian", "bundled")
"""The sources in the order ``source="auto"`` tries them."""

Split = Literal["train", "test"]
Source = Literal["auto", "torchvision", "debian", "bundled"]

_GZIP_MAGIC = b"\x1f\x8b"
_IMAGE_SIZE = 28

# The idx type table (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short (2 bytes)
    0x0C: np.dtype(">i4"),  # int (4 bytes)
    0x0D: np.dtype(">f4"),  # float (4 bytes)
    0x0E: np.dtype(">f8"),  # double (8 bytes)
}
"""idx data-type codes and the (big-endian) numpy dtypes they stand for."""


# --------------------------------------------------------------------------- idx files


def _idx_code(dtype: np.dtype) -> int:
    """The idx type code of a numpy dtype (byte order ignored)."""
    for code, idx_dtype in IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    names = ", ".join(str(d.newbyteorder("=")) for d in IDX_DTYPES.values())
    raise ValueError(f"idx cannot store dtype {dtype}; supported: {names}")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not.

    Gzip is detected from the magic bytes ``1f 8b``, not from the file name.
    The header is validated: two zero bytes, a known type code (see
    :data:`IDX_DTYPES`), a number of dimensions of at least 1, and a payload
    whose length is exactly the product of the dimensions times the item size.

    Args:
        path: The file to read.

    Returns:
        A new, writable array in native byte order with the shape from the header.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not an idx file, or is corrupt or truncated; the
            message names the file and what was expected versus found.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"{path}: corrupt or truncated gzip stream ({err}); expected a complete gzip "
                "file holding an idx file"
            ) from err
    if len(data) < 4:
        raise ValueError(
            f"{path}: not an idx file: expected at least a 4-byte header, found {len(data)} bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: not an idx file: expected magic bytes 00 00 <type> <ndim>, "
            f"found {data[:4].hex(' ')}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(
            f"{path}: not an idx file: unknown data-type code 0x{code:02x} "
            f"(expected one of {known})"
        )
    if ndim == 0:
        raise ValueError(
            f"{path}: not an idx file: expected at least 1 dimension in the header, found 0"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{path}: truncated idx header: expected {header_len} bytes for {ndim} dimensions, "
            f"found {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "corrupt (trailing bytes)"
        raise ValueError(
            f"{path}: {what} idx payload: header says shape {tuple(shape)} of "
            f"{dtype.newbyteorder('=')} = {expected} bytes, found {found} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray | object) -> Path:
    """Write an array as an idx file; gzipped when ``path`` ends in ``.gz``.

    The gzip stream carries no file name and a zero time stamp, so the same
    array always gives the same bytes.

    Args:
        path: Destination; its parent folders are created.
        array: Anything :func:`numpy.asarray` accepts, of a dtype in
            :data:`IDX_DTYPES` (uint8, int8, int16, int32, float32, float64),
            with 1 to 255 dimensions.

    Returns:
        The path written.

    Raises:
        ValueError: The dtype or the number of dimensions cannot be stored.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _idx_code(array.dtype)
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"idx stores 1 to 255 dimensions, got an array of shape {array.shape}")
    if any(n >= 2**32 for n in array.shape):
        raise ValueError(f"idx dimensions must be below 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=handle, compresslevel=9, mtime=0
            ) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            handle.write(header)
            handle.write(payload)
    return path


# --------------------------------------------------------------------------- sources


def split_filenames(split: Split) -> tuple[str, str]:
    """The standard (images, labels) file names of a split, without ``.gz``.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        For example ``("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")`` for ``"test"``.

    Raises:
        ValueError: Unknown split.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    stem = "train" if split == "train" else "t10k"
    return f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"


def default_data_root() -> Path:
    """The data root: ``$PDRO_DATA`` if set, else ``~/.cache/perceptual-dro/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT.expanduser()


@dataclass(frozen=True)
class DataSource:
    """One place where Fashion-MNIST idx files may be.

    Attributes:
        name: ``"torchvision"``, ``"debian"`` or ``"bundled"``.
        folder: The folder holding the idx files.
        description: A human-readable description for messages.
    """

    name: str
    folder: Path
    description: str

    def files(self, split: Split) -> tuple[Path, Path] | None:
        """The (images, labels) files of ``split`` here, or None if either is missing.

        A ``.gz`` file is preferred over an uncompressed one of the same name.
        """
        found = []
        for name in split_filenames(split):
            for candidate in (self.folder / f"{name}.gz", self.folder / name):
                if candidate.is_file():
                    found.append(candidate)
                    break
            else:
                return None
        return found[0], found[1]

    def has(self, split: Split) -> bool:
        """Whether both files of ``split`` are here."""
        return self.files(split) is not None


def fashion_mnist_sources(root: str | os.PathLike[str] | None = None) -> list[DataSource]:
    """The places searched for Fashion-MNIST, in the order ``source="auto"`` tries them.

    Args:
        root: Data root for torchvision's layout; defaults to :func:`default_data_root`.

    Returns:
        The torchvision layout ``<root>/FashionMNIST/raw``, the Debian package
        folder :data:`DEBIAN_DIR` and the bundled subset :data:`BUNDLED_DIR`.
    """
    base = Path(root).expanduser() if root is not None else default_data_root()
    return [
        DataSource("torchvision", base / "FashionMNIST" / "raw", "torchvision download layout"),
        DataSource("debian", Path(DEBIAN_DIR), f"Debian package {DEBIAN_PACKAGE}"),
        DataSource("bundled", Path(BUNDLED_DIR), "bundled subset (test split only)"),
    ]


def _not_found_message(split: Split, searched: list[DataSource]) -> str:
    images, labels = split_filenames(split)
    torchvision_dir = next((s.folder for s in searched if s.name == "torchvision"), None)
    if torchvision_dir is None:
        torchvision_dir = default_data_root() / "FashionMNIST" / "raw"
    lines = [f"Fashion-MNIST {split} split not found ({images}[.gz] and {labels}[.gz]). Searched:"]
    lines += [f"  - {s.name}: {s.folder} ({s.description})" for s in searched]
    lines += [
        "To get the full data set (no network is needed afterwards), either:",
        f"  - install the Debian package: apt install {DEBIAN_PACKAGE} (files in {DEBIAN_DIR}), or",
        f"  - put the four idx .gz files from {FASHION_MNIST_URL} into {torchvision_dir} "
        f"(set {DATA_ENV} or pass root= to choose the data root), which is what torchvision's "
        "datasets.FashionMNIST(root, download=True) does; "
        "core.data.download_fashion_mnist(root) calls it for you when online.",
    ]
    if split == "train":
        lines.append(f"The bundled subset in {BUNDLED_DIR} only holds {BUNDLED_SIZE} test images.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True, eq=False)
class FashionMNIST:
    """A loaded Fashion-MNIST split.

    Attributes:
        x: Images, read-only uint8 array of shape (N, 28, 28), values 0..255.
        y: Labels, read-only int64 array of shape (N,), values 0..9.
        classes: Class names, indexed by label (:data:`FASHION_MNIST_CLASSES`).
        source: Where the data came from: ``"torchvision"``, ``"debian"`` or ``"bundled"``.
        path: The folder the idx files were read from.
        split: ``"train"`` or ``"test"``.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str
    path: Path
    split: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def tensors(
        self, device: str | torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The data as torch tensors.

        Args:
            device: Optional device to put them on.

        Returns:
            Images as float32 of shape (N, 1, 28, 28) in [0, 1] and labels as int64 of shape (N,).
        """
        import torch

        images = torch.from_numpy(self.x.astype(np.float32)).div_(255.0).unsqueeze(1)
        labels = torch.from_numpy(self.y.astype(np.int64, copy=True))
        if device is not None:
            images, labels = images.to(device), labels.to(device)
        return images, labels


def _read_split(
    source: DataSource, split: Split, images_path: Path, labels_path: Path
) -> FashionMNIST:
    """Read and validate one split's (images, labels) files found in ``source``."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    image_shape = (_IMAGE_SIZE, _IMAGE_SIZE)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != image_shape:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, {_IMAGE_SIZE}, {_IMAGE_SIZE}), "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (N,), "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels to match {images_path}, "
            f"found {labels.shape[0]}"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{labels_path}: expected labels in 0..{len(FASHION_MNIST_CLASSES) - 1}, "
            f"found {int(labels.max())}"
        )
    x = images
    y = labels.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return FashionMNIST(
        x=x,
        y=y,
        classes=FASHION_MNIST_CLASSES,
        source=source.name,
        path=source.folder,
        split=split,
    )


def load_fashion_mnist(
    split: Split = "test",
    *,
    root: str | os.PathLike[str] | None = None,
    source: Source = "auto",
) -> FashionMNIST:
    """Load a Fashion-MNIST split from local files, never from the network.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images; 2,000 in
            the bundled subset).
        root: Data root of torchvision's layout ``<root>/FashionMNIST/raw``;
            defaults to ``$PDRO_DATA`` or ``~/.cache/perceptual-dro/data``.
        source: ``"auto"`` takes the first of ``"torchvision"``, ``"debian"``,
            ``"bundled"`` that has both files of the split; a named source is
            used alone.

    Returns:
        The loaded split; ``result.source`` tells where it came from.

    Raises:
        ValueError: Unknown split or source; the split is not found (the message
            lists the folders searched and how to get the data); or a file is
            corrupt or of the wrong shape.
    """
    split_filenames(split)  # validates split
    if source != "auto" and source not in SOURCES:
        raise ValueError(f"source must be 'auto' or one of {SOURCES}, got {source!r}")
    candidates = fashion_mnist_sources(root)
    if source != "auto":
        candidates = [c for c in candidates if c.name == source]
    for candidate in candidates:
        files = candidate.files(split)
        if files is not None:
            return _read_split(candidate, split, *files)
    raise ValueError(_not_found_message(split, candidates))


def download_fashion_mnist(root: str | os.PathLike[str] | None = None) -> Path:
    """Download both splits with torchvision (needs internet) into torchvision's layout.

    Afterwards ``load_fashion_mnist(root=root)`` finds them offline.

    Args:
        root: Data root; defaults to :func:`default_data_root`.

    Returns:
        The folder holding the idx files, ``<root>/FashionMNIST/raw``.
    """
    from core.compat import torchvision

    base = Path(root).expanduser() if root is not None else default_data_root()
    base.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        torchvision.datasets.FashionMNIST(str(base), train=train, download=True)
    return base / "FashionMNIST" / "raw"
