"""The fair protocol (core.training.protocol), the minority renderings, the CVaR extension and the benchmark's CelebA path."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_fake_celeba

from core.data import load_group_dataset
from core.data.fmnist_groups import BLUR_KERNEL, RENDERINGS
from core.training import TrainConfig, train_model
from core.training.methods import FastWDRO
from core.training.protocol import SELECTIONS, choose_epochs, train_selected

BUNDLED = {"source": "bundled"}


def test_each_rendering_changes_only_the_minority_and_names_the_group():
    plain = load_group_dataset("fmnist-groups", "test", eval_minority_fraction=0.0, **BUNDLED)
    for name in RENDERINGS:
        data = load_group_dataset("fmnist-groups", "test", minority=name, **BUNDLED)
        assert data.groups == ("standard", name) and name in data.description
        np.testing.assert_array_equal(data.y, plain.y)
        minority = data.g == 1
        assert 0.45 < minority.mean() < 0.55
        np.testing.assert_array_equal(data.x[~minority], plain.x[~minority])  # the majority is untouched
        assert (data.x[minority] != plain.x[minority]).mean() > 0.3
    x = plain.x[(load_group_dataset("fmnist-groups", "test", **BUNDLED).g == 1)].astype(np.int64)
    inverted = load_group_dataset("fmnist-groups", "test", **BUNDLED)
    np.testing.assert_array_equal(inverted.x[inverted.g == 1], 255 - x)  # the default, as before
    fog = load_group_dataset("fmnist-groups", "test", minority="fog", **BUNDLED)
    np.testing.assert_array_equal(fog.x[fog.g == 1], np.rint(0.45 * x + 0.45 * 255))  # black -> 115, white -> 230
    noise = load_group_dataset("fmnist-groups", "test", minority="noise", **BUNDLED)
    diff = noise.x[noise.g == 1].astype(np.int64) - x
    mid = (x > 80) & (x < 175)  # no clipping within 3 sd of 51
    assert abs(diff[mid].std() / 255 - 0.2) < 0.01 and abs(diff[mid].mean()) < 1.0
    again = load_group_dataset("fmnist-groups", "test", minority="noise", **BUNDLED)
    np.testing.assert_array_equal(again.x, noise.x)  # drawn once per image, seeded


def test_blur_is_the_5x5_binomial_filter():
    assert BLUR_KERNEL.shape == (5, 5) and math.isclose(BLUR_KERNEL.sum(), 1.0)
    assert BLUR_KERNEL[2, 2] == 36 / 256 and BLUR_KERNEL[0, 0] == 1 / 256
    render = RENDERINGS["blur"][0]
    x = np.zeros((1, 1, 9, 9), dtype=np.uint8)
    x[0, 0, 4, 4] = 255  # an impulse becomes the kernel
    out = render(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, 0, 2:7, 2:7], np.rint(255 * BLUR_KERNEL))
    flat = np.full((1, 1, 9, 9), 200, dtype=np.uint8)
    assert (render(flat, np.random.default_rng(0))[0, 0, 2:7, 2:7] == 200).all()  # away from the border


def test_unknown_rendering_is_refused():
    with pytest.raises(ValueError, match="minority: expected one of inverted, fog, blur, noise, got 'sepia'"):
        load_group_dataset("fmnist-groups", "train", minority="sepia", **BUNDLED)


@pytest.fixture(scope="module")
def small_split():
    train = load_group_dataset("fmnist-groups", "train", minority_fraction=0.25, **BUNDLED)
    val = load_group_dataset("fmnist-groups", "val", **BUNDLED)
    return train, val


@pytest.mark.slow
def test_train_selected_keeps_the_epochs_each_rule_picks_and_trains_as_train_model(small_split):
    train, val = small_split
    cfg = TrainConfig(epochs=4, batch_size=64, width=4)
    run = train_selected(train, val, cfg)
    plain = train_model(None, train, cfg=cfg, val=val)
    for a, b in zip(run.result.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)  # the selection does not change the run
    assert set(run.selected) == set(SELECTIONS)
    vals = [h.val for h in plain.history]
    means = [v["mean_accuracy"] for v in vals]
    worsts = [v["worst_group_accuracy"] for v in vals]
    assert run.selected["last"].epoch == 4
    assert run.selected["val-mean"].epoch == 1 + means.index(max(means))  # ties: the earlier epoch
    assert run.selected["val-worst"].epoch == 1 + worsts.index(max(worsts))
    x, y, g = val.tensors()
    for sel, chosen in run.selected.items():
        pred = run.model(sel)(x).argmax(1)
        assert math.isclose(float((pred == y).float().mean()), chosen.val["mean_accuracy"], abs_tol=1e-6)
    assert run.model("last") is not run.result.model


@pytest.mark.slow
def test_choose_epochs_stops_when_a_longer_run_adds_too_little(small_split):
    train, val = small_split
    cfg = TrainConfig(batch_size=64, width=4)
    epochs, trace = choose_epochs(train, val, cfg=cfg, candidates=(1, 2, 3), min_gain=0.0)
    means = [t["val_mean"] for t in trace]
    stop = next((i for i in range(1, len(means)) if means[i] <= means[i - 1]), None)  # the first run that did not improve
    assert [t["epochs"] for t in trace] == [1, 2, 3][: len(trace)]
    assert len(trace) == (3 if stop is None else stop + 1)
    assert epochs == (3 if stop is None else trace[stop - 1]["epochs"])
    always, trace = choose_epochs(train, val, cfg=cfg, candidates=(1, 2), min_gain=1.0)  # nothing gains 100 points
    assert always == 1 and len(trace) == 2


def test_loss_by_group_averages_to_the_epoch_loss(small_split):
    train, _ = small_split
    result = train_model(None, train, cfg=TrainConfig(epochs=1, batch_size=64, width=4))
    row = result.history[0]
    counts = train.group_counts()
    total = sum(row.loss_by_group[name] * counts[name] for name in train.groups) / len(train)
    assert math.isclose(total, row.loss, rel_tol=1e-6)
    assert row.loss_by_group["inverted"] > row.loss_by_group["standard"]  # the minority is learned worse


def test_cvar_one_is_plain_wdro_and_cvar_trains_on_the_highest_losses(small_split):
    train, _ = small_split
    base = dict(method="wdro", epochs=1, batch_size=64, width=4, budget=0.03)
    plain = train_model(None, train, cfg=TrainConfig(**base))
    one = train_model(None, train, cfg=TrainConfig(**base, cvar=1.0))
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(), one.model.state_dict().values()))
    cvar = train_model(None, train, cfg=TrainConfig(**base, cvar=0.25))
    assert not all(torch.equal(a, b) for a, b in zip(cvar.model.state_dict().values(), plain.model.state_dict().values()))
    # The objective: mean of the k highest losses (minus their cost); no input gradient to the others.
    cfg = TrainConfig(**base, cvar=0.25)
    x_all = train.tensors()[0][:8]
    method = FastWDRO(cfg, x_all, 2)
    method.cost_of = method.measure.prepare(x_all)
    logits = torch.randn(8, 10, requires_grad=True)
    y = torch.arange(8) % 10
    x_train = x_all.clone().requires_grad_(True)
    objective = method.cvar_objective(logits, y, x_train)
    losses = F.cross_entropy(logits, y, reduction="none")
    top = losses.topk(2).indices
    cost = method.cost_of(x_all)
    assert torch.isclose(objective, (losses[top] - method.gamma * cost[top]).mean())
    objective.backward()
    kept = torch.zeros(8, dtype=torch.bool)
    kept[top] = True
    assert (logits.grad[~kept] == 0).all() and (logits.grad[kept] != 0).any()
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"cvar: expected a number in \(0, 1\]"):
            TrainConfig(**{**base, "cvar": bad})
    with pytest.raises(ValueError, match="cvar: expected 1.0 unless method='wdro'"):
        TrainConfig(method="erm", cvar=0.5)


@pytest.mark.slow
def test_the_benchmark_runs_the_protocol_on_a_celeba_folder(tmp_path, monkeypatch, capsys):
    from bench import fairness_benchmark

    write_fake_celeba(tmp_path / "data", n=48)
    out = tmp_path / "runs"
    argv = ["fairness_benchmark", "--dataset", "celeba", "--root", str(tmp_path / "data"), "--out", str(out),
            "--seeds", "0", "--epoch-candidates", "1", "2", "--attacked", "8", "--size", "16"]
    monkeypatch.setattr(sys, "argv", argv)
    fairness_benchmark.main()
    rows = {name: json.loads((out / f"celeba-seed0-{fairness_benchmark.slug(name)}.json").read_text())
            for name in fairness_benchmark.METHODS}  # one file per method: every method ran
    for row in rows.values():
        assert row["groups"] == ["not Male", "Male"] and row["epochs"] in (1, 2) and row["dataset"] == "celeba"
        assert set(row["selected"]) == set(SELECTIONS) and len(row["history"]) == row["epochs"]
        assert set(row["under_attack"]) == {"wdro", "pgd-linf"}
        for attack in row["under_attack"].values():
            for name, group in attack["robust"]["by_group"].items():
                assert group["accuracy"] <= attack["clean"]["by_group"][name]["accuracy"]
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["fairness_benchmark", "--report", str(out), "--asset", str(tmp_path / "m.json")])
    fairness_benchmark.main()
    printed = capsys.readouterr().out
    assert "## celeba (" in printed and "| Group DRO | val-worst |" in printed and "| yes |" in printed
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["renderings"]["celeba"]["methods"]["ERM"]["selected"]["last"]["mean_accuracy"][0] >= 0


def _row(rendering, seed, method, worst, mean, distance_groups=("standard", "inverted")):
    test = {"mean_accuracy": mean, "worst_group_accuracy": worst, "gap": 0.1,
            "by_group": {distance_groups[0]: {"accuracy": worst + 0.1}, distance_groups[1]: {"accuracy": worst}}}
    return {"rendering": rendering, "dataset": "fmnist-groups", "seed": seed, "epochs": 18, "method": method,
            "groups": list(distance_groups), "minority": distance_groups[1], "seconds": 1.0,
            "history": [{"loss_by_group": {g: 1.0 for g in distance_groups}}],
            "selected": {sel: {"epoch": 18, "test": test} for sel in SELECTIONS}}


def test_report_pairs_seeds_and_the_verdict_reads_the_target(tmp_path, capsys):
    from bench.fairness_benchmark import main, slug
    from core.services.fairness_demo import map_coverage, map_verdict
    from pages.ui.figures import AXIS_FLOOR, fairness_map

    cases = {  # rendering: (ERM worst, W-DRO worst, ERM mean, W-DRO mean) per seed
        "inverted": ([0.70, 0.72, 0.74], [0.76, 0.77, 0.81], [0.80, 0.81, 0.82], [0.795, 0.80, 0.82]),
        "blur": ([0.80, 0.81, 0.82], [0.78, 0.80, 0.79], [0.85, 0.85, 0.85], [0.85, 0.85, 0.85]),
    }
    for rendering, (ew, ww, em, wm) in cases.items():
        (tmp_path / f"{rendering}-epochs.json").write_text(json.dumps({"epochs": 18, "trace": [], "distance": 0.5}))
        for seed in range(3):
            for method, worst, mean in (("ERM", ew, em), ("W-DRO", ww, wm)):
                path = tmp_path / f"{rendering}-seed{seed}-{slug(method)}.json"
                path.write_text(json.dumps(_row(rendering, seed, method, worst[seed], mean[seed])))
    argv = ["fairness_benchmark", "--report", str(tmp_path), "--asset", str(tmp_path / "map.json")]
    import sys

    old, sys.argv = sys.argv, argv
    try:
        main()
    finally:
        sys.argv = old
    summary = json.loads((tmp_path / "map.json").read_text())
    vs = summary["renderings"]["inverted"]["methods"]["W-DRO"]["vs_erm"]["last"]
    assert vs["worst_group_accuracy"][0] == pytest.approx(6.0)  # paired differences 6, 5, 7 points
    assert vs["worst_group_accuracy"][1] == pytest.approx(4.303 * 1.0 / math.sqrt(3))  # t(0.975, 2 df) * sd / sqrt(3)
    assert vs["mean_accuracy"][0] == pytest.approx(-0.5)
    verdict = map_verdict(summary)
    assert verdict["inverted"]["helps"] and not verdict["inverted"]["harms"]
    assert not verdict["blur"]["helps"] and verdict["blur"]["harms"]  # -2 worst-group points
    assert verdict["blur"]["worst"][0] == pytest.approx(-2.0)
    fig = fairness_map(summary)
    bars = [trace for trace in fig.data if trace.name == "W-DRO"]
    assert list(bars[0].y) == pytest.approx([6.0, -2.0])  # equal distances: the map's order
    assert fig.layout.yaxis.range is None  # nothing below the floor: the whole axis
    vs["worst_group_accuracy"] = [-50.0, 3.0]  # a collapse would flatten the other bars
    cut = fairness_map(summary)
    assert tuple(cut.layout.yaxis.range)[0] == AXIS_FLOOR and cut.layout.yaxis2.range is None
    assert "-50" in [a.text for a in cut.layout.annotations]  # the cut bar keeps its value
    assert "| W-DRO | val-worst |" in capsys.readouterr().out
    assert map_coverage(summary) == ""  # every method on every rendering
    del summary["renderings"]["blur"]["methods"]["W-DRO"]
    assert map_coverage(summary) == "Run under this protocol: W-DRO only on inverted. "


def test_the_bundled_map_is_the_report_of_the_bundled_runs(tmp_path, monkeypatch, capsys):
    """assets/fairness/map.json (the page's map and verdict) is what --report makes of the committed runs."""
    from bench import fairness_benchmark
    from core.services.fairness_demo import DEMO_DIR

    runs = DEMO_DIR / "protocol"
    assert len(list(runs.glob("*-seed*-*.json"))) >= 24  # 4 renderings x (ERM, W-DRO, Group DRO) x >= 2 seeds
    monkeypatch.setattr(sys, "argv", ["fairness_benchmark", "--report", str(runs), "--asset", str(tmp_path / "m.json")])
    fairness_benchmark.main()
    capsys.readouterr()
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads((DEMO_DIR / "map.json").read_text())
    summary = json.loads((DEMO_DIR / "map.json").read_text())
    assert set(summary["renderings"]) == {"inverted", "fog", "blur", "noise"}
    for entry in summary["renderings"].values():
        assert entry["epochs"] == 18 and 0 < entry["distance"]
        assert len(entry["methods"]["W-DRO"]["seeds"]) >= 2
