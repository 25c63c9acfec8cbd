"""One attack on one image, as the attack explorer shows it.

Everything here is plain torch: the app's explorer page reads its widgets, calls
:func:`run_attack`, and renders what :class:`Exploration` holds.

Example:
    >>> model = load_model("fmnist-cnn")
    >>> x = load_tensor("assets/gallery/fashion_mnist/00002_trouser.png", channels=1, size=28)
    >>> out = run_attack(model, x, AttackSettings(attack="wdro", measure="ssim", budget=0.02))
    >>> out.success, out.measures["ssim"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from core.attacks import ATTACKS, AttackResult, get_attack
from core.attacks.options import MINIMAL, AttackOptions
from core.measures import MEASURES, get_measure, ssim_map
from core.models import ASSETS, ModelSpec
from core.progress import Counter

GALLERY = ASSETS / "gallery"
_FIRST = ("wdro", "pgd-linf", "pgd-l2", "fgsm")
ATTACK_CHOICES = (*(a for a in _FIRST if a in ATTACKS), *sorted(a for a in ATTACKS if a not in _FIRST))  # every registered one
ATTACK_LABELS = {name: cls.label or name for name, cls in ATTACKS.items()}  # each attack class's own label
_GALLERY_NAME = re.compile(r"^\d+_(?P<label>.+)$")


@dataclass(frozen=True)
class AttackSettings(AttackOptions):
    """What a person chose for one attack in the explorer: :class:`~core.attacks.options.AttackOptions`
    (the options and defaults the command line shares) and the seed of the random start.

    Attributes:
        seed: Seed of the random start.
    """

    seed: int = 0

    def describe(self) -> str:
        """One line for captions, e.g. ``"W-DRO (perceptual), SSIM cost, budget delta = 0.02"``."""
        name = ATTACK_LABELS.get(self.attack, self.attack)
        if self.attack == "wdro":
            cost = get_measure(self.measure).label
            form = f"gamma = {self.gamma:g}" if self.gamma is not None else f"budget delta = {self.effective_budget:g}"
            return f"{name}, {cost} cost, {form}"
        eps = self.effective_eps
        if self.attack in MINIMAL:
            cost = f", {get_measure(self.measure).label} cost" if get_attack(self.attack).takes_measure else ""
            return f"{name}{cost}, the smallest change that fools" + ("" if eps is None else f", at most {eps:.4g}")
        return name if eps is None else f"{name}, eps = {eps:.4g}"


@dataclass(frozen=True)
class Exploration:
    """One attacked image and what the explorer shows of it.

    Attributes:
        x: Clean image, (1, C, H, W) in [0, 1].
        result: The attack's result on it.
        labels: Class names of the model.
        settings: The settings the attack ran with.
        difference: (H, W) local dissimilarity ``1 - SSIM`` map, in [0, 2] (0 where the images agree).
        measures: ``{measure name: score}`` for every measure valid at this size.
        skipped: ``{measure name: why}`` for the measures this image is too small or too gray for.
        labelled: Whether the image's true class was given; if not, the attack's label is the
            model's clean prediction and :attr:`label` says so.
    """

    x: torch.Tensor
    result: AttackResult
    labels: tuple[str, ...]
    settings: AttackSettings
    difference: torch.Tensor
    measures: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    labelled: bool = True

    @property
    def x_adv(self) -> torch.Tensor:
        return self.result.x_adv

    @property
    def success(self) -> bool:
        return bool(self.result.success[0])

    @property
    def label(self) -> str:
        """The true class, or ``"unknown (attacked: <clean prediction>)"`` for an unlabelled image."""
        name = self.labels[int(self.result.y[0])]
        return name if self.labelled else f"unknown (attacked: {name})"

    @property
    def pred_clean(self) -> str:
        return self.labels[int(self.result.pred_clean[0])]

    @property
    def pred_adv(self) -> str:
        return self.labels[int(self.result.pred_adv[0])]

    def top_classes(self, k: int = 5) -> list[dict[str, float | str]]:
        """The ``k`` classes most probable before or after, with both probabilities.

        Rows are ordered by the clean probability, then the union with the attacked
        image's top ``k`` (so the class the attack moved to is always listed).
        """
        before, after = self.result.prob_clean[0].cpu(), self.result.prob_adv[0].cpu()
        k = min(k, before.numel())
        order = before.topk(k).indices.tolist()
        order += [i for i in after.topk(k).indices.tolist() if i not in order]
        return [{"class": self.labels[i], "before": float(before[i]), "after": float(after[i])} for i in order]

    def perturbation(self, factor: float) -> torch.Tensor:
        """The perturbation for display: ``0.5 + factor * (x_adv - x)``, clipped to [0, 1], (C, H, W)."""
        return perturbation_image(self.x[0], self.x_adv[0], factor)

    def raw_perturbation(self) -> torch.Tensor:
        """The signed perturbation ``x_adv - x``, (C, H, W), float32 on the CPU."""
        return (self.x_adv[0] - self.x[0]).float().cpu()


def perturbation_image(x: torch.Tensor, x_adv: torch.Tensor, factor: float) -> torch.Tensor:
    """``0.5 + factor * (x_adv - x)`` clipped to [0, 1]: grey is no change, brighter is added light."""
    if not factor > 0:
        raise ValueError(f"factor: expected a positive amplification, got {factor!r}")
    return (0.5 + factor * (x_adv - x)).clamp(0.0, 1.0).cpu()


def suggested_factor(x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """An amplification that makes the largest change reach about half the grey range (1 to 100)."""
    peak = float((x_adv - x).abs().max())
    return float(min(100.0, max(1.0, round(0.5 / peak)))) if peak > 0 else 1.0


def measure_support(shape: tuple[int, ...]) -> tuple[list[str], dict[str, str]]:
    """The measures valid for images of ``shape``, and why each of the others is not."""
    valid, skipped = [], {}
    for name, measure in MEASURES.items():
        try:
            measure.check(shape)
            valid.append(name)
        except ValueError as err:
            skipped[name] = str(err)
    return valid, skipped


def run_attack(
    model: nn.Module,
    x: torch.Tensor,
    settings: AttackSettings,
    *,
    labels: tuple[str, ...] | None = None,
    label: int | None = None,
    progress: Counter | None = None,
) -> Exploration:
    """Attack one image and collect what the explorer shows.

    Args:
        model: Classifier on [0, 1] images (left unchanged: no parameter or mode is modified).
        x: The image, (1, C, H, W) or (C, H, W), float in [0, 1], on the model's device.
        settings: Attack and its parameters.
        labels: Class names (default ``"class i"``).
        label: True class; ``None`` takes the model's clean prediction, so success means the
            attack changed the prediction.
        progress: Called with ``(step, total)`` after each ascent step.

    Raises:
        ValueError: bad image, a cost measure that does not apply to this image's size or
            channels, a label out of range, or bad attack parameters.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image of shape (1, C, H, W), got {tuple(x.shape)}")
    if settings.attack == "wdro":
        get_measure(settings.measure).check(x.shape)
    attack = settings.build(model)
    attack.on_step = progress
    with torch.no_grad():
        logits = model(x)
    n_classes = logits.shape[1]
    labels = tuple(labels) if labels is not None else tuple(f"class {i}" for i in range(n_classes))
    if len(labels) != n_classes:
        raise ValueError(f"the model has {n_classes} outputs but {len(labels)} class names were given")
    if label is not None and not 0 <= int(label) < n_classes:
        raise ValueError(f"label: expected a class in [0, {n_classes}), got {label}")
    y = torch.tensor([int(label) if label is not None else int(logits.argmax(1))], device=x.device)
    result = attack(x, y, seed=settings.seed)
    _, skipped = measure_support(tuple(x.shape))
    smap = ssim_map(x, result.x_adv)[0, 0] if MEASURES["ssim-padded"].applies_to(x.shape) else None
    difference = (1.0 - smap).cpu() if smap is not None else (result.x_adv - x)[0].abs().amax(0).cpu()
    return Exploration(
        x=x.detach(),
        result=result,
        labels=labels,
        settings=settings,
        difference=difference,
        measures={name: float(v[0]) for name, v in result.measures.items()},
        skipped=skipped,
        labelled=label is not None,
    )


@dataclass(frozen=True)
class GalleryImage:
    """A bundled example image.

    Attributes:
        name: Display name, e.g. ``"trouser (#2)"``.
        path: The file.
        label: Class name the image is known to show (Fashion-MNIST), or ``None`` (photos).
    """

    name: str
    path: Path
    label: str | None


def gallery(kind: str) -> list[GalleryImage]:
    """Bundled example images: ``"fashion_mnist"`` (30 test images) or ``"photos"`` (4 natural photos)."""
    folder = GALLERY / kind
    if kind not in ("fashion_mnist", "photos") or not folder.is_dir():
        raise ValueError(f"gallery: expected 'fashion_mnist' or 'photos', got {kind!r}")
    items = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        match = _GALLERY_NAME.match(path.stem)
        if match:  # "00002_trouser" -> trouser, test index 2
            label = match["label"]
            items.append(GalleryImage(f"{label} (test #{int(path.stem.split('_')[0])})", path, label))
        else:
            items.append(GalleryImage(path.stem, path, None))
    return items


def gallery_for(spec: ModelSpec) -> list[GalleryImage]:
    """The gallery that suits a model: Fashion-MNIST images for 1-channel models, photos for RGB ones."""
    return gallery("fashion_mnist" if spec.channels == 1 else "photos")


def label_index(spec: ModelSpec, name: str | None) -> int | None:
    """The class index of a gallery label in a model's classes (names compared loosely), or ``None``."""
    if name is None:
        return None
    key = _loose(name)
    for i, label in enumerate(spec.labels):
        if _loose(label) == key:
            return i
    return None


def _loose(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())
