"""core.training.zoo: the bundled classifiers are trained by core.training's loop and written with their card."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from core.data import load_fashion_mnist
from core.evaluation import evaluate
from core.models import load_model
from core.training import TrainConfig, train_model
from core.training.zoo import CONFIGS, one_group, train_bundled


@pytest.fixture(scope="module")
def small():
    data = load_fashion_mnist("test", source="bundled")  # 2,000 images: 1,500 to train, 500 to test
    train = replace(data, x=data.x[:1500], y=data.y[:1500], split="train")
    test = replace(data, x=data.x[1500:], y=data.y[1500:])
    return train, test


@pytest.mark.slow
def test_train_bundled_is_erm_of_the_training_package_and_writes_weights_and_card(small, tmp_path):
    train, test = small
    cfg = replace(CONFIGS["fmnist-cnn"], epochs=1, batch_size=100)
    lines = []
    card = train_bundled("fmnist-cnn", cfg=cfg, out_dir=tmp_path, data=small, progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1: test accuracy")
    stored = json.loads((tmp_path / "fmnist-cnn.json").read_text())
    assert stored == card and card["config"]["method"] == "erm" and card["test_images"] == 500
    model = load_model("fmnist-cnn", weights=tmp_path / "fmnist-cnn.pt")
    x, y = test.tensors()
    assert evaluate(model, x, y).clean_accuracy == pytest.approx(card["test_accuracy"], abs=1e-4)
    assert card["test_accuracy"] > 0.5  # one epoch on 1,500 images already learns something
    # the same weights as the training package's loop run directly on the same data and start
    from core.models import Normalized, get_model_spec, init_parameters

    spec = get_model_spec("fmnist-cnn")
    net = Normalized(init_parameters(spec.build(), torch.Generator().manual_seed(cfg.seed)), spec.mean, spec.std)
    direct = train_model(net, one_group(train, "train"), cfg=cfg, copy_model=False).model
    stored_weights = torch.load(tmp_path / "fmnist-cnn.pt", weights_only=True)
    assert all(torch.equal(stored_weights[k], v) for k, v in direct.model.state_dict().items())


def test_train_bundled_refuses_other_methods(small, tmp_path):
    with pytest.raises(ValueError, match="train_bundled trains with ERM, got method='wdro'"):
        train_bundled("fmnist-cnn", cfg=TrainConfig(method="wdro"), out_dir=tmp_path, data=small)
    assert not any(tmp_path.iterdir())
