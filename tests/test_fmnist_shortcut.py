"""core.data.fmnist_shortcut: the shortcut group data set (cue places, group shares, the cue's distance) and JTT."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.data import GROUP_DATASETS, load_group_dataset
from core.data.fmnist_shortcut import CUE_PLACES, PATTERN_CODES, BORDER_CELLS, cue_assignment, cue_distance
from core.evaluation import predict
from core.training import TrainConfig, train_model
from core.training.methods import JTT

OPTS = dict(source="bundled")


def place_of(x: np.ndarray) -> np.ndarray:
    """The class each image's mark names: the place with the brightest pixel among CUE_PLACES."""
    values = np.stack([x[:, 0, r, c] for r, c in CUE_PLACES], axis=1)  # (N, 10)
    return values.argmax(1)


def test_the_mark_names_the_class_on_aligned_images_and_another_class_on_conflicting_ones():
    train = load_group_dataset("fmnist-shortcut", "train", **OPTS)
    assert train.groups == ("aligned", "conflicting") and not GROUP_DATASETS["fmnist-shortcut"].mirror_safe
    bare = load_group_dataset("fmnist-shortcut", "train", cue="none", **OPTS)
    place = place_of(np.asarray(train.x))
    assert (np.asarray(train.x)[np.arange(len(train)), 0, [CUE_PLACES[p][0] for p in place],
                                [CUE_PLACES[p][1] for p in place]] == 255).all()
    y, g = np.asarray(train.y), np.asarray(train.g)
    assert (place[g == 0] == y[g == 0]).all() and (place[g == 1] != y[g == 1]).all()
    for c in range(10):  # exactly round(1% of n_c) conflicting images per class
        assert (g[y == c] == 1).sum() == round(0.01 * (y == c).sum())
    changed = (np.asarray(train.x) != np.asarray(bare.x)).reshape(len(train), -1).sum(1)
    assert changed.max() <= 1  # the mark is one pixel, the rest of the image as it was (0 where it was white)
    test = load_group_dataset("fmnist-shortcut", "test", **OPTS)
    assert test.group_counts() == {"aligned": 250, "conflicting": 250}


def test_the_pattern_brightens_one_class_code_by_its_strength():
    bare = np.asarray(load_group_dataset("fmnist-shortcut", "val", cue="none", **OPTS).x).astype(int)
    data = load_group_dataset("fmnist-shortcut", "val", cue="pattern", strength=0.2, **OPTS)
    added = np.asarray(data.x).astype(int) - bare  # (N, 1, 28, 28)
    assert added.min() >= 0 and added.max() == 51  # 0.2 * 255; less only where the image was near white
    for k in range(20):
        fits = [c for c in range(10) if (added[k, 0][_mask(c) & (bare[k, 0] <= 204)] == 51).all()
                and (added[k, 0][~_mask(c)] == 0).all()]
        assert len(fits) == 1  # exactly one class's code was drawn
    assert PATTERN_CODES.sum(1).tolist() == [12] * 10
    assert min((PATTERN_CODES[a] ^ PATTERN_CODES[b]).sum() for a in range(10) for b in range(a + 1, 10)) >= 6


def _mask(c: int) -> np.ndarray:
    """(28, 28) bool: the border cells class ``c``'s pattern brightens."""
    lit = np.zeros((28, 28), bool)
    for (i, j), on in zip(BORDER_CELLS, PATTERN_CODES[c]):
        if on:
            lit[4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = True
    return lit


def test_a_random_cue_says_nothing_of_the_class():
    y = np.repeat(np.arange(10), 1000)
    g, place = cue_assignment(y, 0.1, np.random.default_rng(0))
    assert (place == y).mean() == pytest.approx(0.1, abs=0.01)
    counts = np.bincount(place[y == 3], minlength=10)
    assert counts.min() > 70 and counts.max() < 130  # about 100 each


def test_the_mark_is_inside_the_perceptual_ball_and_the_pattern_inside_the_linf_ball():
    """The double dissociation the benchmark tests: cost and L-inf of switching each cue (bundled images)."""
    mark = cue_distance(cue="mark", split="val", **OPTS)
    pattern = cue_distance(cue="pattern", split="val", **OPTS)
    assert mark["linf"] == pytest.approx(1.0, abs=0.01) and pattern["linf"] == pytest.approx(0.1, abs=0.005)
    assert 0.03 < mark["cost"] < 0.06  # measured 0.047 on the full data
    assert pattern["cost"] > 3 * mark["cost"]  # measured 0.18: the faint pattern is expensive in SSIM


def test_jtt_upweights_exactly_the_errors_of_its_identification_run():
    train = load_group_dataset("fmnist-shortcut", "train", **OPTS)
    cfg = TrainConfig(method="jtt", epochs=1, jtt_epochs=1, jtt_upweight=7.0, flip=False, width=8)
    method = JTT(cfg, train.tensors()[0], 2)
    method.prepare(train, torch.device("cpu"))
    first = train_model(None, train, cfg=replace(cfg, method="erm"))  # the same run: seeded, bitwise equal
    x, y, _ = train.tensors()
    errors = predict(first.model, x) != y
    assert 0 < int(errors.sum()) < len(train)
    assert torch.equal(method.weights, torch.where(errors, 7.0, 1.0))
    result = train_model(None, train, cfg=cfg)
    assert result.epochs_done == 1 and result.config.method == "jtt"


def test_the_bundled_shortcut_summary_is_the_report_of_the_bundled_runs(tmp_path, monkeypatch, capsys):
    """assets/fairness/shortcut.json (the page's bars, map and verdict) is what --report makes of the committed
    runs, and the W-DRO and JTT settings in use are the ones the committed selection runs choose."""
    import json
    import sys

    from bench import shortcut_benchmark
    from core.services.fairness_demo import DEMO_DIR, SHORTCUT_JTT, SHORTCUT_WDRO, shortcut_verdict

    runs = DEMO_DIR / "shortcut" / "runs"
    monkeypatch.setattr(sys, "argv", ["shortcut_benchmark", "--report", str(runs), "--asset", str(tmp_path / "s.json")])
    shortcut_benchmark.main()
    capsys.readouterr()
    summary = json.loads((DEMO_DIR / "shortcut.json").read_text())
    assert json.loads((tmp_path / "s.json").read_text()) == summary
    for cue in ("mark", "pattern"):
        rows = summary["cues"][cue]["rows"]
        assert {"ERM", "W-DRO", "JTT", "Group DRO", "PGD-AT 0.1", "Random cue"} <= set(rows)
        assert all(len(rows[name]["seeds"]) >= 3 for name in rows)
        assert rows["Group DRO"]["labels_used"] and not rows["W-DRO"]["labels_used"]
        assert shortcut_verdict(summary, cue)["seeds"] >= 3
    chosen = shortcut_benchmark.selected(DEMO_DIR / "shortcut" / "select")
    assert chosen["W-DRO"] == {"method": "wdro", **SHORTCUT_WDRO}
    assert chosen["JTT"] == {"method": "jtt", **SHORTCUT_JTT}
