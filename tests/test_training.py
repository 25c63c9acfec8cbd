"""DRO training (core.training): pure pieces with hand-worked values, copies, cancelling, resuming, budgets."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from core.data import GroupDataset, load_group_dataset
from core.training import (
    CHECKPOINT,
    METHOD_CLASSES,
    MODEL_FILE,
    TrainConfig,
    build_classifier,
    load_trained,
    lr_at,
    train_model,
)
from core.dro import group_mean, update_group_weights
from core.dro import training_dual_step as dual_update

N_TINY = 64  # images of the tiny training set: 2 steps of 32 per epoch


@pytest.fixture(scope="module")
def tiny() -> GroupDataset:
    """64 bundled fmnist-groups training images, a quarter of them inverted (so both groups show up)."""
    data = load_group_dataset("fmnist-groups", "train", source="bundled", minority_fraction=0.25)
    return _subset(data, N_TINY)


@pytest.fixture(scope="module")
def tiny_val() -> GroupDataset:
    return _subset(load_group_dataset("fmnist-groups", "val", source="bundled"), 40)


def _subset(data: GroupDataset, n: int) -> GroupDataset:
    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:n].sort().values.numpy()
    return GroupDataset(name=data.name, split=data.split, x=data.x[keep], y=data.y[keep], g=data.g[keep],
                        classes=data.classes, groups=data.groups, description="tiny", source=data.source)


def _cfg(method: str, **kw) -> TrainConfig:
    base = dict(method=method, epochs=2, batch_size=32, width=4, naive_steps=4, naive_rounds=3, pgd_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- pure pieces


def test_group_mean_hand_worked():
    losses = torch.tensor([1.0, 3.0, 2.0, 6.0])
    g = torch.tensor([0, 0, 1, 1])
    means, counts = group_mean(losses, g, 3)
    assert means.tolist() == [2.0, 4.0, 0.0]  # empty group: 0
    assert counts.tolist() == [2.0, 2.0, 0.0]


def test_group_weights_equal_losses_stay_uniform():
    q = torch.full((3,), 1 / 3)
    assert torch.allclose(update_group_weights(q, torch.tensor([0.7, 0.7, 0.7]), 0.5), q)


def test_group_weights_one_step_from_uniform():
    # q_0 = 0.5 e^{1*1} / (0.5 e + 0.5 e^0) = e / (e + 1)
    q = torch.tensor([0.5, 0.5])
    new = update_group_weights(q, torch.tensor([1.0, 0.0]), 1.0)
    assert new[0].item() == pytest.approx(math.e / (math.e + 1), abs=1e-6)
    assert new.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert q.tolist() == [0.5, 0.5]  # not modified in place


def test_dual_update_moves_gamma_towards_the_budget():
    assert dual_update(0.0, 0.02, 0.02, 0.1) == 0.0
    assert dual_update(0.0, 0.04, 0.02, 0.1) == pytest.approx(0.1 * math.log(2))  # over budget: price up
    assert dual_update(0.0, 0.01, 0.02, 0.1) == pytest.approx(-0.1 * math.log(2))  # under: price down
    assert dual_update(0.0, 1.0, 0.02, 0.1) == pytest.approx(0.1)  # clipped at +1
    assert dual_update(0.0, 0.0, 0.02, 0.1) == pytest.approx(-0.1)  # clipped at -1


def test_lr_schedule_warmup_and_cosine():
    assert lr_at(0, 100, 1.0) == pytest.approx(1 / 15)
    assert lr_at(14, 100, 1.0) == pytest.approx(1.0)
    assert lr_at(15, 100, 1.0) == pytest.approx(1.0)
    assert lr_at(15 + 85 // 2, 100, 1.0) == pytest.approx(0.5, abs=0.02)


def test_config_reads_files_written_before_measure_was_named():
    old = {"method": "wdro", "metric": "ssim", "budget": 0.05}  # train.json and checkpoints before the rename
    assert TrainConfig.from_dict(old).measure == "ssim"
    assert TrainConfig.from_dict({**old, "measure": "l2"}).measure == "l2"  # the new key wins


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="sgd")
    with pytest.raises(ValueError, match="exactly one of budget"):
        TrainConfig(method="wdro", budget=0.1, gamma=1.0)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown measure|known"):
        TrainConfig(method="wdro", measure="nope")
    with pytest.raises(ValueError, match="budget_mode"):
        TrainConfig(method="wdro", budget_mode="max")
    assert TrainConfig(method="wdro", budget_mode="mean").budget_mode == "distributional"  # the old name
    with pytest.raises(ValueError, match="budget_mode"):
        TrainConfig(method="wdro", budget=None, gamma=1.0, budget_mode="pointwise")
    with pytest.raises(ValueError, match="clean_weight"):
        TrainConfig(method="wdro", clean_weight=1.0)
    with pytest.raises(ValueError, match="clean_weight"):
        TrainConfig(method="erm", clean_weight=0.5)


# --------------------------------------------------------------------------- the loop


def test_copy_leaves_the_callers_model_untouched(tiny):
    cfg = _cfg("erm", epochs=1)
    torch.manual_seed(1)
    model = build_classifier(cfg, channels=1, n_classes=10, size=28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_model(model, tiny, cfg=cfg)
    assert result.model is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not _same_weights(result.model, model)
    in_place = train_model(model, tiny, cfg=cfg, copy_model=False)
    assert in_place.model is model and not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", ["erm", "wdro", "pgd-at", "group-dro", "jtt"])
def test_same_seed_same_weights(tiny, method):
    cfg = _cfg(method, epochs=1)
    assert _same_weights(train_model(None, tiny, cfg=cfg).model, train_model(None, tiny, cfg=cfg).model)


@pytest.mark.parametrize("method", [name for name, cls in METHOD_CLASSES.items() if not cls.reads_groups])
def test_group_labels_are_not_read(tiny, method):
    """Only Group DRO may use g: scrambling it leaves the weights of the other methods bitwise equal."""
    cfg = _cfg(method, epochs=1)
    scrambled = GroupDataset(name=tiny.name, split=tiny.split, x=tiny.x, y=tiny.y, g=np.roll(tiny.g, 7),
                             classes=tiny.classes, groups=tiny.groups, description="", source=tiny.source)
    assert _same_weights(train_model(None, tiny, cfg=cfg).model, train_model(None, scrambled, cfg=cfg).model)
    if method == "erm":  # ... while Group DRO does read it
        gd = _cfg("group-dro", epochs=1, group_step=1.0)
        assert not _same_weights(train_model(None, tiny, cfg=gd).model, train_model(None, scrambled, cfg=gd).model)


def test_progress_and_cancel(tiny, tmp_path):
    events = []
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # steps 1-2 (epoch 1) and 1 of epoch 2 run, then cancel

    result = train_model(None, tiny, cfg=_cfg("wdro"), progress=events.append, should_stop=stop, out_dir=tmp_path)
    assert result.cancelled and result.epochs_done == 1
    kinds = [(e.kind, e.epoch, e.step) for e in events]
    assert kinds == [("step", 1, 1), ("step", 1, 2), ("epoch", 1, 2), ("step", 2, 1)]
    assert events[-1].total_steps == 4 and events[-1].fraction == pytest.approx(3 / 4)
    assert {"gamma", "cost"} <= set(events[0].metrics)
    assert (tmp_path / CHECKPOINT).is_file() and (tmp_path / MODEL_FILE).is_file()
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # atomic writes leave no temporary file


@pytest.mark.parametrize("method", ["wdro", "group-dro"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny, tiny_val, tmp_path, method):
    """A run killed in epoch 2 (an exception, as a kill would) resumes from epoch 1 to the same weights, bitwise."""
    cfg = _cfg(method, epochs=3)
    full = train_model(None, tiny, cfg=cfg, val=tiny_val)

    def kill(p) -> None:
        if p.kind == "step" and p.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(None, tiny, cfg=cfg, val=tiny_val, out_dir=tmp_path, progress=kill)
    _, info = load_trained(tmp_path / CHECKPOINT)
    assert info["epochs_done"] == 1
    resumed = train_model(None, tiny, cfg=cfg, val=tiny_val, out_dir=tmp_path, resume=True)
    assert resumed.epochs_done == 3 and not resumed.cancelled
    assert _same_weights(full.model, resumed.model)
    timeless = [{k: v for k, v in h.to_dict().items() if k != "seconds"} for h in resumed.history]
    assert timeless == [{k: v for k, v in h.to_dict().items() if k != "seconds"} for h in full.history]
    assert [h.loss for h in resumed.history] == [h.loss for h in full.history]


def test_resume_refuses_another_runs_checkpoint(tiny, tmp_path):
    train_model(None, tiny, cfg=_cfg("erm", epochs=1), out_dir=tmp_path)
    with pytest.raises(ValueError, match="another run: its seed"):
        train_model(None, tiny, cfg=_cfg("erm", epochs=1, seed=5), out_dir=tmp_path, resume=True)


def test_saved_model_round_trip_and_half(tiny, tmp_path):
    result = train_model(None, tiny, cfg=_cfg("erm", epochs=1), out_dir=tmp_path / "a")
    train_model(None, tiny, cfg=_cfg("erm", epochs=1), out_dir=tmp_path / "b", half=True)
    model, info = load_trained(tmp_path / "a")
    x = torch.from_numpy(tiny.x[:8].copy()).float() / 255
    with torch.no_grad():
        assert torch.equal(model(x), result.model(x))
    assert info["config"]["method"] == "erm" and len(info["history"]) == 1
    half, _ = load_trained(tmp_path / "b" / MODEL_FILE)
    assert (tmp_path / "b" / MODEL_FILE).stat().st_size < 0.6 * (tmp_path / "a" / MODEL_FILE).stat().st_size
    with torch.no_grad():
        assert torch.allclose(half(x), result.model(x), atol=0.05)
    with pytest.raises(ValueError, match="expected a training output"):
        load_trained(tmp_path / "nothing")


def test_naive_wdro_holds_the_budget_every_batch(tiny):
    """The reference pulls every batch back onto the budget, so the epoch's mean cost is <= budget."""
    budget = 0.02
    result = train_model(None, tiny, cfg=_cfg("wdro-naive", epochs=1, budget=budget))
    row = result.history[0]
    assert 0 < row.cost_mean <= budget * (1 + 1e-4)
    assert set(row.cost_by_group) == {"standard", "inverted"}


def test_fast_wdro_costs_two_passes_per_batch_naive_many(tiny):
    """Forward passes with gradients per batch: fast = inner_steps + 1 (the training pass), naive >= steps * rounds."""
    counts = {}
    for method in ("wdro", "wdro-naive"):
        cfg = _cfg(method, epochs=1)
        torch.manual_seed(cfg.seed)
        model = build_classifier(cfg, channels=1, n_classes=10, size=28)
        n = {"grad": 0}

        def hook(module, inputs, output, n=n) -> None:
            n["grad"] += int(torch.is_grad_enabled())

        model.register_forward_hook(hook)
        train_model(model, tiny, cfg=cfg, copy_model=False)
        counts[method] = n["grad"] / 2  # 2 batches
    assert counts["wdro"] == 2
    assert counts["wdro-naive"] >= 4 * 3


def test_fast_wdro_gamma_follows_the_budget(tiny):
    """Budget far above what is spent: gamma falls every batch; far below: it rises."""
    low = train_model(None, tiny, cfg=_cfg("wdro", epochs=1, budget=0.5))
    high = train_model(None, tiny, cfg=_cfg("wdro", epochs=1, budget=1e-6, gamma_init=1.0))
    assert low.history[0].gamma < 1.0  # the default start
    assert high.history[0].gamma > 1.0


def test_penalty_form_keeps_gamma(tiny):
    result = train_model(None, tiny, cfg=_cfg("wdro", epochs=1, budget=None, gamma=7.0))
    assert result.history[0].gamma == pytest.approx(7.0)


def test_group_dro_needs_two_groups(tiny):
    one = GroupDataset(name=tiny.name, split=tiny.split, x=tiny.x, y=tiny.y, g=0 * tiny.g, classes=tiny.classes,
                       groups=("all",), description="", source=tiny.source)
    with pytest.raises(ValueError, match="group-dro needs group labels"):
        train_model(None, one, cfg=_cfg("group-dro", epochs=1))


def test_group_dro_weights_follow_the_group_losses(tiny):
    """One epoch of Group DRO moves q off uniform and keeps it a distribution."""
    q = train_model(None, tiny, cfg=_cfg("group-dro", epochs=1, group_step=1.0)).history[0].q
    assert sum(q.values()) == pytest.approx(1.0, abs=1e-6)
    assert abs(q["inverted"] - 0.5) > 1e-4


def test_pointwise_budget_holds_every_example_and_drops_gamma(tiny):
    result = train_model(None, tiny, cfg=_cfg("wdro", epochs=1, budget=0.02, budget_mode="pointwise"))
    row = result.history[0]
    assert row.gamma is None and "gamma" not in row.to_dict()  # no multiplier: the projection holds the budget
    assert 0 < row.cost_mean <= 0.02 * (1 + 1e-4)
    assert max(row.cost_by_group.values()) <= 0.02 * (1 + 1e-4)


def test_clean_weight_mixes_in_the_clean_loss_with_one_more_pass(tiny):
    """clean_weight > 0 changes the weights and adds one forward pass per batch; 0 is the default run."""
    def run(**kw):
        cfg = _cfg("wdro", epochs=1, **kw)
        torch.manual_seed(cfg.seed)
        model = build_classifier(cfg, channels=1, n_classes=10, size=28)
        n = {"grad": 0}
        model.register_forward_hook(lambda m, i, o: n.__setitem__("grad", n["grad"] + int(torch.is_grad_enabled())))
        return train_model(model, tiny, cfg=cfg, copy_model=False).model, n["grad"] / 2

    base, passes = run()
    zero, _ = run(clean_weight=0.0)
    mixed, mixed_passes = run(clean_weight=0.5)
    assert _same_weights(base, zero) and not _same_weights(base, mixed)
    assert (passes, mixed_passes) == (2, 3)


# --------------------------------------------------------------------------- serving: threads and disks


@pytest.mark.parametrize("method", ["wdro", "erm"])
def test_two_concurrent_runs_equal_a_solo_run_bitwise(tiny, method):
    """Two seeded trainings in two threads of one process (two app sessions) each give what one gives alone.

    Every draw (initial weights, dropout, random starts, flips) comes from the run's own generators;
    a third thread hammers torch's global generator meanwhile, which must change nothing.
    """
    import threading

    cfg = _cfg(method, epochs=2)
    solo = train_model(None, tiny, cfg=cfg)
    results: dict[int, object] = {}
    stop = threading.Event()

    def train(k: int) -> None:
        results[k] = train_model(None, tiny, cfg=cfg)

    def noise() -> None:
        while not stop.is_set():
            torch.rand(1000)
            torch.manual_seed(int(torch.randint(0, 1000, ())))

    threads = [threading.Thread(target=train, args=(k,)) for k in range(2)] + [threading.Thread(target=noise)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    stop.set()
    threads[2].join()
    assert all(_same_weights(solo.model, results[k].model) for k in range(2))
    assert [h.loss for h in results[0].history] == [h.loss for h in solo.history]


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_temporary(tiny, tmp_path, monkeypatch):
    from core import fileio
    from core.fileio import WriteError

    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):  # the first epoch's checkpoint is written, the second finds the disk full
        calls["n"] += 1
        if calls["n"] > 2:  # 1: the folder check, 2: epoch 1's checkpoint
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with pytest.raises(WriteError) as err:
        train_model(None, tiny, cfg=_cfg("wdro", epochs=3), out_dir=tmp_path)
    assert str(err.value) == f"could not write {CHECKPOINT} in {tmp_path}: No space left on device"
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    _, info = load_trained(tmp_path / CHECKPOINT)
    assert info["epochs_done"] == 1  # the last good checkpoint, readable; --resume continues from it
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT]


def test_an_unwritable_output_folder_fails_before_the_first_step(tiny, tmp_path):
    from core.fileio import WriteError

    (tmp_path / "file").write_text("x")
    steps = []
    with pytest.raises(WriteError, match="Not a directory"):
        train_model(None, tiny, cfg=_cfg("erm", epochs=1), out_dir=tmp_path / "file" / "run", progress=steps.append)
    assert steps == []  # no work is lost: nothing ran


def test_one_class_per_method_and_its_state_round_trips():
    from core.training import METHOD_CLASSES, METHODS

    assert tuple(METHOD_CLASSES) == METHODS
    x_all = torch.rand(6, 1, 28, 28)
    for name, cls in METHOD_CLASSES.items():
        extra = {"budget": 0.03} if name in ("wdro", "wdro-naive") else {}
        method = cls(TrainConfig(method=name, **extra), x_all, 2)
        state = method.state_dict()
        assert "log_gamma" in state  # the checkpoint layout of earlier runs
        if name == "wdro":
            state = {**state, "log_gamma": 1.5, "delta": torch.full_like(x_all, 0.01), "visited": torch.ones(6, dtype=torch.bool)}
        if name == "group-dro":
            state = {**state, "q": torch.tensor([0.25, 0.75])}
        again = cls(TrainConfig(method=name, **extra), x_all, 2)
        again.load_state_dict(state)
        for key, value in state.items():
            got = again.state_dict()[key]
            assert torch.equal(torch.as_tensor(got), torch.as_tensor(value)), (name, key)


def test_checkpoints_store_the_architecture_arguments(tiny, tmp_path):
    """As nanoGPT's do: the model's own arguments, not a guess from state-dict key names."""
    import json

    from core.models import Normalized, SmallCNN
    from core.training import INFO_FILE

    net = Normalized(SmallCNN(in_channels=1, n_classes=10, width=8), mean=(0.5,), std=(0.5,))
    result = train_model(net, tiny, cfg=_cfg("erm", epochs=1, width=8), out_dir=tmp_path)
    info = json.loads((tmp_path / INFO_FILE).read_text())
    assert info["shape"] == {"arch": "SmallCNN", "channels": 1, "width": 8, "n_classes": 10, "size": 28}
    model, _ = load_trained(tmp_path)
    assert model.model.args == {"in_channels": 1, "n_classes": 10, "width": 8}
    assert _same_weights(model, result.model)


def test_every_method_is_registered_once_with_its_label_and_whether_it_reads_groups():
    from core.training import METHOD_CLASSES, METHODS

    assert tuple(METHOD_CLASSES) == METHODS  # the config's names are the registry's, in its order
    assert all(cls.name == name and cls.label for name, cls in METHOD_CLASSES.items())
    assert {name for name, cls in METHOD_CLASSES.items() if cls.reads_groups} == {"group-dro"}


def test_each_method_declares_its_options_and_the_cli_offers_them():
    """The CLI's method options come from the methods: each is a TrainConfig field, and it reaches the config."""
    import dataclasses

    from core.cli import build_parser
    from core.training import METHOD_CLASSES

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    declared = {o.field: name for name, cls in METHOD_CLASSES.items() for o in cls.options}
    assert set(declared) <= fields and {"jtt_upweight", "inner_steps", "eps", "group_step"} <= set(declared)
    args = build_parser().parse_args(["train", "--method", "jtt", "--jtt-upweight", "7", "--jtt-epochs", "2",
                                      "--pgd-steps", "3", "--out", "x"])
    assert (args.jtt_upweight, args.jtt_epochs, args.pgd_steps, args.inner_steps) == (7.0, 2, 3, TrainConfig.inner_steps)
    with pytest.raises(SystemExit):  # a whole-number option keeps its bounds
        build_parser().parse_args(["train", "--method", "jtt", "--jtt-epochs", "0", "--out", "x"])
