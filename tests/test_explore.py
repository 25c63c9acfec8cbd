"""core.services.explore: one attacked image, as the explorer page shows it."""

from __future__ import annotations

import pytest
import torch

from core.services.explore import (
    AttackSettings,
    gallery,
    gallery_for,
    label_index,
    measure_support,
    perturbation_image,
    run_attack,
    suggested_factor,
)
from core.imageio import load_tensor
from core.models import get_model_spec, load_model


@pytest.fixture(scope="module")
def bundled():
    return load_model("fmnist-cnn"), get_model_spec("fmnist-cnn")


def test_gallery_labels_are_the_model_classes(bundled):
    _, spec = bundled
    items = gallery_for(spec)
    assert len(items) == 30
    indices = [label_index(spec, item.label) for item in items]
    assert None not in indices and set(indices) == set(range(10))  # every class, three each
    assert {label_index(spec, "T-shirt-top"), label_index(spec, "ankle boot")} == {0, 9}
    assert [p.label for p in gallery("photos")] == [None] * 4
    with pytest.raises(ValueError, match="gallery"):
        gallery("cifar")


def test_run_attack_on_a_gallery_image(bundled):
    model, spec = bundled
    item = gallery_for(spec)[0]
    x = load_tensor(item.path, channels=1, size=28)
    steps = []
    out = run_attack(model, x, AttackSettings(attack="wdro", measure="ssim", budget=0.01), labels=spec.labels,
                     label=label_index(spec, item.label), progress=lambda t, n: steps.append((t, n)))
    assert steps == [(t, 100) for t in range(1, 101)]
    assert out.label == "Trouser" and out.pred_clean == "Trouser"
    assert out.success and out.pred_adv != "Trouser"
    assert out.measures["ssim"] >= 1 - 0.01 - 1e-4  # the budget holds on one image
    assert 0.0 <= out.measures["haarpsi"] <= 1.0 and out.measures["psnr"] > 20
    assert set(out.skipped) == {"ms_ssim", "fsim", "vif"}  # too small or not RGB at 28 px gray
    assert out.difference.shape == (28, 28) and float(out.difference.min()) >= -1e-6
    rows = out.top_classes(5)
    assert rows[0]["class"] == "Trouser" and out.pred_adv in [r["class"] for r in rows]
    assert all(0.0 <= r["before"] <= 1.0 and 0.0 <= r["after"] <= 1.0 for r in rows)
    assert out.raw_perturbation().abs().max() == pytest.approx(out.measures["linf"], abs=1e-6)


def test_run_attack_without_a_label_attacks_the_prediction(bundled):
    model, spec = bundled
    x = load_tensor(gallery_for(spec)[5].path, channels=1, size=28)
    out = run_attack(model, x, AttackSettings(attack="pgd-linf", eps=8 / 255), labels=spec.labels)
    assert int(out.result.y[0]) == int(out.result.pred_clean[0])
    assert not out.labelled and out.label == f"unknown (attacked: {out.pred_clean})"  # never called the true class
    assert out.measures["linf"] <= 8 / 255 + 1e-6


def test_run_attack_refuses_bad_input(bundled):
    model, spec = bundled
    x = load_tensor(gallery_for(spec)[0].path, channels=1, size=28)
    with pytest.raises(ValueError, match="MS-SSIM"):
        run_attack(model, x, AttackSettings(attack="wdro", measure="ms_ssim"))
    with pytest.raises(ValueError, match="label"):
        run_attack(model, x, AttackSettings(attack="fgsm"), label=10)
    with pytest.raises(ValueError, match="one image"):
        run_attack(model, x.repeat(2, 1, 1, 1), AttackSettings(attack="fgsm"))
    with pytest.raises(ValueError, match="class names"):
        run_attack(model, x, AttackSettings(attack="fgsm"), labels=("a", "b"))


def test_model_is_not_modified_by_an_attack(bundled):
    model, spec = bundled
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = load_tensor(gallery_for(spec)[3].path, channels=1, size=28)
    run_attack(model, x, AttackSettings(attack="wdro", steps=5))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_perturbation_display():
    x = torch.full((1, 4, 4), 0.5)
    x_adv = x.clone()
    x_adv[0, 0, 0] = 0.51
    shown = perturbation_image(x, x_adv, 10)
    assert float(shown[0, 0, 0]) == pytest.approx(0.6) and float(shown[0, 1, 1]) == 0.5
    assert float(perturbation_image(x, x_adv, 1000).max()) == 1.0  # clipped
    assert suggested_factor(x, x_adv) == 50.0 and suggested_factor(x, x) == 1.0
    with pytest.raises(ValueError, match="factor"):
        perturbation_image(x, x_adv, 0)


def test_measure_support_names_the_reason():
    valid, skipped = measure_support((1, 1, 28, 28))
    assert {"ssim", "haarpsi", "psnr", "l2", "linf"} <= set(valid)
    assert "161" in skipped["ms_ssim"] and "RGB" in skipped["fsim"]
    valid, skipped = measure_support((1, 3, 224, 224))
    assert skipped == {}
    _, skipped = measure_support((1, 3, 10, 10))
    assert "ssim" in skipped and "11" in skipped["ssim"]


def test_settings_describe_and_build(bundled):
    model, _ = bundled
    assert AttackSettings(attack="wdro", budget=0.02).describe() == "W-DRO (perceptual), SSIM (padded) cost, budget delta = 0.02"
    assert "gamma = 5" in AttackSettings(attack="wdro", gamma=5.0).describe()
    assert AttackSettings(attack="pgd-l2", eps=1.0).describe() == "PGD-L2, eps = 1"
    attack = AttackSettings(attack="wdro", gamma=5.0, steps=7, step_size=0.02, loss="ce").build(model)
    assert (attack.gamma, attack.budget, attack.steps, attack.step_size, attack.loss) == (5.0, None, 7, 0.02, "ce")
