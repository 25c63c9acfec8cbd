"""The bundled fairness demo: regeneration on the bundled subset, the evaluation schema, loading; CLI train/fairness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.cli import main
from core.data import load_group_dataset
from core.services.fairness_demo import DEMO_DIR, load_demo, load_demo_evaluation, make_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    evaluation = make_demo(folder, n_attacked=24, epochs=1, data_options={"source": "bundled"})
    return folder, evaluation


@pytest.mark.slow
def test_make_demo_writes_the_documented_schema(demo):
    folder, evaluation = demo
    assert evaluation == load_demo_evaluation(folder)
    assert evaluation["groups"] == ["standard", "inverted"] and evaluation["n_attacked"] == 24
    assert evaluation["n_clean"] == 500  # the bundled test split
    for name in ("erm", "wdro", "group-dro"):
        entry = evaluation["models"][name]
        clean = entry["clean"]
        assert set(clean["by_group"]) == {"standard", "inverted"}
        accs = [row["accuracy"] for row in clean["by_group"].values()]
        assert clean["worst_group_accuracy"] == min(accs)
        assert clean["gap"] == pytest.approx(max(accs) - min(accs))
        lo, hi = clean["ci"]["gap"]
        assert lo <= clean["gap"] <= hi
        for attack in ("wdro", "pgd-linf"):
            r = entry["under_attack"][attack]
            for group in ("standard", "inverted"):  # robust accuracy never exceeds clean accuracy
                assert r["robust"]["by_group"][group]["accuracy"] <= r["clean"]["by_group"][group]["accuracy"]
        assert len(entry["history"]) == 1 and "val" in entry["history"][0]
        assert not (folder / name / "checkpoint.pt").exists()
        assert (folder / name / "model.pt").stat().st_size < 500_000  # float16, width 16
    assert evaluation["models"]["erm"]["transport_cost_by_group"] is None
    assert evaluation["models"]["group-dro"]["transport_cost_by_group"] is None
    cost = evaluation["models"]["wdro"]["transport_cost_by_group"]
    assert set(cost) == {"standard", "inverted"} and all(v > 0 for v in cost.values())


def test_load_demo_reproduces_the_clean_accuracy(demo):
    from core.data import load_group_dataset

    folder, evaluation = demo
    model, entry = load_demo("erm", folder=folder)
    x, y, g = load_group_dataset("fmnist-groups", "test", source="bundled").tensors()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(entry["clean"]["mean_accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="unknown demo model"):
        load_demo("nope", folder=folder)
    with pytest.raises(ValueError, match="make_fairness_demo"):
        load_demo("erm", folder=folder / "missing")


def test_bundled_demo_files_load():
    if not (DEMO_DIR / "evaluation.json").is_file():
        pytest.skip("assets/fairness not generated in this checkout")
    for name in ("erm", "wdro", "group-dro"):
        model, entry = load_demo(name)
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
        assert 0 <= entry["clean"]["worst_group_accuracy"] <= entry["clean"]["mean_accuracy"] <= 1


def test_cli_train_then_fairness(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--dataset", "fmnist-groups", "--data-option", "source=bundled", "--method", "wdro",
            "--epochs", "1", "--width", "4", "--budget", "0.02", "--out", str(out), "--quiet"]
    assert main(args) == 0
    info = json.loads((out / "train.json").read_text())
    assert info["config"]["method"] == "wdro" and info["config"]["budget"] == 0.02
    val = info["history"][0]["val"]
    assert set(val["by_group"]) == {"standard", "inverted"} and all(row["n"] > 0 for row in val["by_group"].values())
    assert val["worst_group_accuracy"] == val["by_group"][val["worst_group"]]["accuracy"]  # one shape, as the reports
    assert set(info["history"][0]["cost_by_group"]) == {"standard", "inverted"}
    capsys.readouterr()
    assert main(["fairness", "--data-option", "source=bundled", "--model", str(out), "--model",
                 str(out / "checkpoint.pt"), "--json", "--bootstrap", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    test = load_group_dataset("fmnist-groups", "test", source="bundled")  # the command's default split
    assert len(rows) == 2 and rows[0]["by_group"] == rows[1]["by_group"]  # model.pt and checkpoint agree
    for row in rows:
        accs = [group["accuracy"] for group in row["by_group"].values()]
        assert row["worst_group_accuracy"] == min(accs) and row["gap"] == pytest.approx(max(accs) - min(accs))
        assert [group["n"] for group in row["by_group"].values()] == np.bincount(test.g).tolist()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["fairness", "--data-option", "source=bundled", "--model", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert main(["train", "--method", "erm", "--budget", "0.1", "--out", str(tmp_path)]) == 1
    assert "--budget and --gamma are for wdro" in capsys.readouterr().err
