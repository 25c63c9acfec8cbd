"""Classifiers: architectures, the normalisation wrapper, and the model registry.

Attacks work in [0, 1] pixel space; mean/std normalisation lives in
:class:`Normalized`, never in an attack. :data:`MODELS` is the one registry the
command line and the app share: the bundled Fashion-MNIST classifiers and the
torchvision ImageNet classifiers, whose weights live in torch hub's cache. Weights
are plain state dicts read with ``torch.load(weights_only=True)``: nothing is
ever unpickled.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from core.compat import torchvision
from core.data import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD
from core.registry import Registry

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODEL_DIR = ASSETS / "models"

NO_WEIGHTS = (
    "no weights for model {name!r}: expected the file {path}. "
    "Regenerate it with `{command}`, or pass a weight file."
)
BAD_WEIGHTS = "could not load weights for model {name!r} from {path}: {reason}"
NO_HUB_WEIGHTS = (
    "no weights for model {name!r}: the file {file} is not in torch hub's cache and could not be "
    "downloaded ({reason}). Download {url} and put it in the folder {folder}, "
    "or pass a local file (--weights PATH on the command line, load_model(..., weights=PATH) in Python)."
)
NOT_TORCH_ARCHIVE = "not a file written by torch.save (expected its zip archive)"
INFLATES = ("its members declare {declared:.1f} MB but the archive holds {size:.1f} MB "
            "(torch.save stores members uncompressed); refused without inflating")
TOO_LARGE = ("its members declare {declared:.1f} MB, more than the {limit:.1f} MB this architecture's "
             "weights need; refused without inflating")
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # torch's pre-1.6 format: pickled magic number
ARCHIVE_SLACK = 1 << 20  # bytes a torch.save archive may declare beyond its own size (headers, records)
BAD_TORCHSCRIPT = "could not load the TorchScript model {path}: {reason}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """Wrap a classifier that expects normalised inputs so that it takes images in [0, 1].

    Args:
        model: The classifier, applied to ``(x - mean) / std``.
        mean: Per-channel mean, length C.
        std: Per-channel standard deviation, length C.

    Shape:
        Input (N, C, H, W) float in [0, 1]; output (N, n_classes) logits.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class SmallCNN(nn.Module):
    """Four 3x3 convolutions and two linear layers for 28x28 images (about 0.47 M parameters).

    Shape:
        Input (N, C, 28, 28); output (N, n_classes).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.args = {"in_channels": in_channels, "n_classes": n_classes, "width": width}  # saved with checkpoints
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, w, 14, 14)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2w, 7, 7)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * w * 7 * 7, 128), nn.ReLU(), Dropout(0.25), nn.Linear(128, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = (
            nn.Identity() if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """A ResNet for 28x28 images: a 3x3 stem and three stages of two basic blocks (about 0.7 M parameters).

    Shape:
        Input (N, C, 28, 28); output (N, n_classes).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.args = {"in_channels": in_channels, "n_classes": n_classes, "width": width}  # saved with checkpoints
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.stages = nn.Sequential(
            _BasicBlock(w, w, 1), _BasicBlock(w, w, 1),  # (N, w, 28, 28)
            _BasicBlock(w, 2 * w, 2), _BasicBlock(2 * w, 2 * w, 1),  # (N, 2w, 14, 14)
            _BasicBlock(2 * w, 4 * w, 2), _BasicBlock(4 * w, 4 * w, 1),  # (N, 4w, 7, 7)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model registry.

    Attributes:
        name: Registry key, e.g. ``"fmnist-cnn"``.
        description: One line for people.
        labels: Class names, index = class id.
        channels: Input channels the model expects (1 or 3).
        input_size: Side of the square input the model expects, in pixels.
        mean: Normalisation mean (applied by :class:`Normalized`).
        std: Normalisation standard deviation.
        build: Returns the bare architecture (randomly initialised).
        weights: File name of the bundled weights under ``assets/models``, if any.
        train_command: How the bundled weights are regenerated.
        torchvision_weights: Full name of a torchvision weights enum member, e.g.
            ``"ResNet18_Weights.IMAGENET1K_V1"``; its file lives in torch hub's cache
            (``<torch.hub.get_dir()>/checkpoints``) and is downloaded there when missing.
    """

    name: str
    description: str
    labels: tuple[str, ...]
    channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    build: Callable[[], nn.Module]
    weights: str | None = None
    train_command: str = ""
    torchvision_weights: str | None = None

    @property
    def weights_path(self) -> Path | None:
        """Where the weights are expected: the bundled file, or the torch hub cache file."""
        if self.torchvision_weights:
            return hub_weights_path(self.torchvision_weights)
        return MODEL_DIR / self.weights if self.weights else None

    def available_offline(self) -> bool:
        """Whether the weights are on this machine now."""
        return self.weights_path is not None and self.weights_path.is_file()


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add an entry to :data:`MODELS` (its name must be new)."""
    return MODELS.add(spec.name, spec)


def hub_weights_path(weights: str) -> Path:
    """The torch hub cache file of a torchvision weights enum member named like ``"ResNet18_Weights.IMAGENET1K_V1"``."""
    url = torchvision.models.get_weight(weights).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def resolve_weights(spec: ModelSpec) -> Path | None:
    """The weight file of a registry entry, downloading a torchvision entry's file into the hub cache if missing.

    Returns:
        The file's path (``None`` for an entry without weights); the caller checks a bundled file exists.

    Raises:
        ValueError: a torchvision entry whose file is not cached and cannot be downloaded.
    """
    path = spec.weights_path
    if not spec.torchvision_weights or path is None or path.is_file():
        return path
    member = torchvision.models.get_weight(spec.torchvision_weights)
    try:  # the file torchvision's weights API would fetch, hash-checked, written without printing
        path.parent.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(path.name)
        torch.hub.download_url_to_file(member.url, str(path), match.group(1) if match else None, progress=False)
    except Exception as err:  # offline: URLError, OSError, hash mismatch, ...
        raise ValueError(NO_HUB_WEIGHTS.format(
            name=spec.name, file=path.name, url=member.url, folder=path.parent, reason=_first_line(err),
        )) from None
    return path


def get_model_spec(name: str) -> ModelSpec:
    """Look a registry entry up by name, with a clear error listing the known names."""
    return MODELS.lookup(name)


def load_model(
    name: str,
    *,
    device: torch.device | str = "cpu",
    weights: str | Path | bytes | None = None,
    pretrained: bool = True,
) -> Normalized:
    """Build a registered model, load its weights, wrap it in :class:`Normalized`, put it in eval mode.

    Args:
        name: Registry key.
        device: Where the model lives.
        weights: A state-dict file (a path, or its bytes) to load instead of the bundled (or torch
            hub cached) one. Its declared size is checked against the architecture's before
            anything is inflated (see :func:`load_state_dict`).
        pretrained: Load weights (default). ``False`` gives the randomly initialised architecture.

    Raises:
        ValueError: unknown name, missing weights, or a weight file that is corrupt,
            truncated or does not match the architecture.
    """
    spec = get_model_spec(name)
    net = spec.build()
    if pretrained:
        if isinstance(weights, (bytes, bytearray)):
            source: Path | bytes = bytes(weights)
        else:
            source = Path(weights) if weights is not None else resolve_weights(spec)  # type: ignore[assignment]
            if source is None or not source.is_file():
                raise ValueError(NO_WEIGHTS.format(name=name, path=source, command=spec.train_command or "n/a"))
        limit = 2 * state_dict_bytes(net) + ARCHIVE_SLACK  # float32 weights plus room for the archive's records
        try:
            net.load_state_dict(load_state_dict(source, name=name, max_bytes=limit))
        except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
            where = "the uploaded file" if isinstance(source, bytes) else source
            raise ValueError(BAD_WEIGHTS.format(name=name, path=where, reason=_first_line(err))) from None
    model = Normalized(net, spec.mean, spec.std)
    return model.to(device).eval()


def load_torchscript(path: str | Path, *, device: torch.device | str = "cpu") -> nn.Module:
    """Load a user's classifier saved with ``torch.jit.save``, in eval mode.

    **TorchScript is code.** A scripted module runs its own program when loaded and called:
    it can read and write files (``torch.from_file(..., shared=True)`` creates one) and is
    not sandboxed. Load only files you would run as a script; the safe way to bring weights
    is a state dict for a registered architecture (:func:`load_model` with ``weights=``).

    The module must take (N, C, H, W) images in [0, 1] and return logits (put any
    normalisation inside it). TorchScript archives hold TorchScript code and tensors,
    not arbitrary pickled Python objects; a plain state dict is refused here (load it
    into a registered architecture with ``load_model(name, weights=PATH)`` instead).

    Raises:
        ValueError: missing, corrupt or truncated file, or not a TorchScript archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(BAD_TORCHSCRIPT.format(path=path, reason="no such file"))
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        raise ValueError(BAD_TORCHSCRIPT.format(
            path=path, reason="not a TorchScript archive (expected a zip file written by torch.jit.save)")) from None
    if not any("/code/" in n for n in names):
        raise ValueError(BAD_TORCHSCRIPT.format(
            path=path, reason="the archive holds no TorchScript code (a state dict? pass it as weights of a "
            "registered architecture)"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript, still loads it
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # truncated members, foreign archives, ...
        raise ValueError(BAD_TORCHSCRIPT.format(path=path, reason=_first_line(err))) from None
    return module.eval()


def load_state_dict(
    source: str | Path | bytes, *, name: str = "?", max_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """Read a state dict safely; clear ``ValueError`` on a bad file.

    Nothing is unpickled (``weights_only=True``) and nothing is inflated before the
    archive's central directory has been read: a file whose members declare more bytes
    than the archive holds (a zip bomb; ``torch.save`` stores its members uncompressed)
    or more than ``max_bytes`` is refused first.

    Args:
        source: A file path, or the file's bytes (an upload; messages then say "the uploaded file").
        name: The model's name, for messages.
        max_bytes: Largest accepted total of the members' declared sizes (``None``: no limit
            beyond the archive's own size).
    """
    where = "the uploaded file" if isinstance(source, (bytes, bytearray)) else str(source)
    buffer = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        check_torch_archive(buffer, max_bytes=max_bytes)
    except ValueError as err:
        raise ValueError(BAD_WEIGHTS.format(name=name, path=where, reason=err)) from None
    if isinstance(buffer, io.BytesIO):
        buffer.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" on foreign files
            state = torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = "not a readable state-dict file (truncated, corrupt, or not saved with torch.save)"
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
            reason = "the file holds objects other than tensors; it is refused without being unpickled"
        raise ValueError(BAD_WEIGHTS.format(name=name, path=where, reason=reason)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(BAD_WEIGHTS.format(name=name, path=where, reason="expected a dict of tensors"))
    return state


def check_torch_archive(source: str | Path | IO[bytes], *, max_bytes: int | None = None) -> int:
    """Check a ``torch.save`` file's declared size without inflating or unpickling anything.

    A zip archive (what ``torch.save`` writes) is checked on its central directory; a file
    in torch's legacy format (uncompressed) on its own size.

    Returns:
        The bytes that loading it would produce: the members' declared sizes (zip), or the
        file's size (legacy).

    Raises:
        ValueError: neither format, a directory that cannot be read, members declaring more
            bytes than the archive holds (``torch.save`` stores members uncompressed), or a
            total over ``max_bytes``.
    """
    try:
        if hasattr(source, "seek"):
            size = source.seek(0, io.SEEK_END)
            source.seek(0)
            head = source.read(len(LEGACY_MAGIC))
        else:
            size = Path(source).stat().st_size
            with open(source, "rb") as handle:
                head = handle.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            declared = size
        else:
            with zipfile.ZipFile(source) as archive:
                declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ValueError(NOT_TORCH_ARCHIVE) from None
    if declared > size + ARCHIVE_SLACK:
        raise ValueError(INFLATES.format(declared=declared / 1e6, size=size / 1e6))
    if max_bytes is not None and declared > max_bytes:
        raise ValueError(TOO_LARGE.format(declared=declared / 1e6, limit=max_bytes / 1e6))
    return declared


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of a module's state dict (parameters and buffers): what its weight file should hold."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw ``module``'s initial weights from ``generator`` (PyTorch's default rules), in place.

    Convolutions and linear layers get PyTorch's default initialisation (Kaiming-uniform
    weights with ``a = sqrt(5)``, biases uniform in +-1/sqrt(fan_in)), normalisation layers
    ones and zeros, in the order the modules were built: with a generator seeded with ``s``
    this equals building the module right after seeding torch's global generator with ``s``,
    without touching that process-wide generator (two trainings in one process stay independent).

    Raises:
        TypeError: a module with parameters of another kind (its default rule is unknown here).
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
            if sub.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(sub.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
        elif isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)):
            sub.reset_parameters()  # deterministic: ones and zeros (and running statistics)
        elif any(True for _ in sub.parameters(recurse=False)):
            raise TypeError(f"init_parameters: no initialisation rule for {type(sub).__name__}")
    return module


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws its mask from a generator of its own while :func:`use_generator` is on.

    Training sets a generator of its own run, so two trainings in one process never share
    torch's process-wide generator. With the generator seeded like the global one, the masks
    are the same as ``nn.Dropout``'s on the CPU. Scriptable (TorchScript sees a plain dropout).
    """

    __jit_ignored_attributes__ = ["generator"]

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p, inplace)
        self.generator: torch.Generator | None = None
        self.seeded = False  # True while a generator is set (a plain bool, visible to TorchScript)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.seeded and self.p > 0:
            return self._seeded(x)
        return F.dropout(x, self.p, self.training, self.inplace)

    @torch.jit.unused
    def _seeded(self, x):  # no annotations: TorchScript reads them as Tensor -> Tensor
        noise = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator).div_(1 - self.p)
        return x * noise


@contextmanager
def use_generator(module: nn.Module, generator: torch.Generator) -> Iterator[nn.Module]:
    """Within the block, every :class:`Dropout` of ``module`` draws from ``generator``."""
    layers = [m for m in module.modules() if isinstance(m, Dropout)]
    for layer in layers:
        layer.generator, layer.seeded = generator, True
    try:
        yield module
    finally:
        for layer in layers:
            layer.generator, layer.seeded = None, False


_FMNIST = dict(
    labels=tuple(FASHION_MNIST_CLASSES), channels=1, input_size=28, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD
)

register_model(ModelSpec(
    name="fmnist-cnn",
    description="Small CNN (4 conv + 2 linear) trained on Fashion-MNIST",
    build=lambda: SmallCNN(in_channels=1, n_classes=10),
    weights="fmnist-cnn.pt",
    train_command="python -m core train-bundled --model fmnist-cnn",
    **_FMNIST,
))

register_model(ModelSpec(
    name="fmnist-resnet",
    description="Small ResNet (3 stages of 2 basic blocks) trained on Fashion-MNIST",
    build=lambda: SmallResNet(in_channels=1, n_classes=10),
    weights="fmnist-resnet.pt",
    train_command="python -m core --device cuda train-bundled --model fmnist-resnet",
    **_FMNIST,
))

IMAGENET_MODELS = ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "vit_b_16")


def _register_torchvision(name: str) -> ModelSpec:
    """Register a torchvision ImageNet classifier with its official DEFAULT weights."""
    member = torchvision.models.get_model_weights(name).DEFAULT
    full_name = f"{type(member).__name__}.{member.name}"
    return register_model(ModelSpec(
        name=name,
        description=f"torchvision {name}, ImageNet-1k ({full_name})",
        labels=tuple(member.meta["categories"]),
        channels=3,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=partial(torchvision.models.get_model, name, weights=None),
        torchvision_weights=full_name,
    ))


for _name in IMAGENET_MODELS:
    _register_torchvision(_name)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


__all__ = [
    "Dropout",
    "IMAGENET_MODELS",
    "MODELS",
    "ModelSpec",
    "Normalized",
    "SmallCNN",
    "SmallResNet",
    "check_torch_archive",
    "get_model_spec",
    "hub_weights_path",
    "init_parameters",
    "load_model",
    "load_state_dict",
    "load_torchscript",
    "register_model",
    "resolve_weights",
    "state_dict_bytes",
    "use_generator",
]
