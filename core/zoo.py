"""Training the bundled classifiers: one seeded command regenerates the weights and their card.

    python -m core train-bundled --model fmnist-cnn

reads the full Fashion-MNIST (the Debian package ``dataset-fashion-mnist`` or
torchvision's download, see :mod:`core.data`), trains with a fixed seed, measures
accuracy on the full 10,000-image test set, and writes
``assets/models/<name>.pt`` (a state dict) and ``assets/models/<name>.json`` (the card).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.data import load_fashion_mnist
from core.evaluation import evaluate
from core.fileio import atomic_save, atomic_write
from core.models import MODEL_DIR, Normalized, get_model_spec, init_parameters, use_generator


@dataclass(frozen=True)
class ZooConfig:
    """Hyper-parameters of the bundled classifiers (chosen to pass 91% in a few CPU minutes)."""

    epochs: int = 6  # full passes over the 60k training images
    batch_size: int = 128
    lr: float = 2e-3  # AdamW, cosine-decayed to 0 over all steps
    weight_decay: float = 5e-4
    flip: bool = True  # random horizontal flips (clothes are left-right symmetric)
    seed: int = 0


# Per-model settings: the ResNet needs more epochs to pass 93% (about 2 minutes on one GPU).
CONFIGS: dict[str, ZooConfig] = {"fmnist-cnn": ZooConfig(), "fmnist-resnet": ZooConfig(epochs=20, lr=3e-3)}


def train_bundled(
    name: str,
    *,
    cfg: ZooConfig | None = None,
    out_dir: Path = MODEL_DIR,
    device: torch.device | str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train registry model ``name`` on Fashion-MNIST and write its weights and card.

    Returns:
        The card (also written as JSON beside the weights).
    """
    spec = get_model_spec(name)
    cfg = cfg if cfg is not None else CONFIGS.get(name, ZooConfig())
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    x_train, y_train = (t.to(device) for t in train.tensors())  # 190 MB: fine on a GPU or in RAM
    x_test, y_test = test.tensors(device)
    model = Normalized(init_parameters(spec.build(), torch.Generator().manual_seed(cfg.seed)), spec.mean, spec.std)
    model = model.to(device)
    dropout_gen = torch.Generator(device).manual_seed(cfg.seed + 1)  # the run's own: never torch's global one
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if cfg.flip:
                flip = (torch.rand(len(idx), generator=generator) < 0.5).to(device)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            with use_generator(model, dropout_gen):
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, x_test, y_test, batch_size=1000).clean_accuracy
        if progress is not None:
            progress(f"epoch {epoch + 1}/{cfg.epochs}: test accuracy {acc:.4f} ({time.perf_counter() - start:.0f} s)")
    card = {
        "name": name,
        "architecture": type(model.model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": "Fashion-MNIST (Zalando Research, MIT licence)",
        "train_source": train.source,
        "input_size": spec.input_size,
        "channels": spec.channels,
        "normalisation": {"mean": list(spec.mean), "std": list(spec.std)},
        "test_accuracy": round(acc, 4),
        "test_images": len(x_test),
        "training_command": spec.train_command,
        "trained_on": str(torch.device(device)),
        "config": asdict(cfg),
        "train_seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    atomic_save(model.model.state_dict(), out_dir / f"{name}.pt")
    atomic_write(out_dir / f"{name}.json", json.dumps(card, indent=2) + "\n")
    return card
