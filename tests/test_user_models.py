"""A user's own classifier: TorchScript loads, anything else is refused with a clear message."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from core.cli import main
from core.models import Normalized, SmallCNN, load_torchscript

IMAGE = "assets/gallery/fashion_mnist/00035_t-shirt-top.png"


@pytest.fixture
def scripted(tmp_path):
    torch.manual_seed(0)
    module = torch.jit.script(Normalized(SmallCNN(n_classes=7), (0.5,), (0.25,)).eval())
    path = tmp_path / "mine.pt"
    module.save(str(path))
    return module, path


def test_torchscript_model_loads_in_eval_mode_and_agrees(scripted):
    module, path = scripted
    loaded = load_torchscript(path)
    assert not loaded.training
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(x), module(x))


def test_attack_command_on_a_torchscript_file(scripted, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    _, path = scripted
    out = tmp_path / "adv.png"
    code = main(["attack", "--model", str(path), "--channels", "1", "--size", "28", "--image", IMAGE,
                 "--attack", "pgd-linf", "--eps", "0.05", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file()
    assert report["class_clean"] == f"class {report['pred_clean']}" and 0 <= report["pred_clean"] < 7
    assert report["measures"]["linf"] <= 0.05 + 1e-6


def test_torchscript_on_a_wrong_input_is_one_line(scripted, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    _, path = scripted
    code = main(["attack", "--model", str(path), "--image", IMAGE, "--attack", "fgsm",
                 "--out", str(tmp_path / "x.png")])  # 3 channels by default: the model takes 1
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--channels" in err


class _Payload:
    """Unpickling this would create a file: it must never be unpickled."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("kind", ["state dict", "pickle payload", "random bytes", "truncated", "missing"])
def test_other_files_are_refused_with_a_clear_message(scripted, tmp_path, kind):
    _, good = scripted
    path = tmp_path / "bad.pt"
    marker = tmp_path / "pwned"
    if kind == "state dict":
        torch.save(SmallCNN().state_dict(), path)
        reason = "holds no TorchScript code"
    elif kind == "pickle payload":
        torch.save({"x": _Payload(str(marker))}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
        reason = "holds no TorchScript code"
    elif kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
        reason = "not a TorchScript archive"
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        reason = "not a TorchScript archive"
    else:
        reason = "no such file"
    with pytest.raises(ValueError, match=f"could not load the TorchScript model .*{reason}"):
        load_torchscript(path)
    assert not marker.exists()
