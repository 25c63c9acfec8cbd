"""core.compat: torchvision and piq import and work on the CPU build of torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.compat import ensure_torchvision, has_native_ops, piq, torchvision
from core.measures import ssim

REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_modules_are_the_real_ones():
    assert torchvision.__name__ == "torchvision" and piq.__name__ == "piq"
    assert sys.modules["torchvision"] is torchvision
    assert ensure_torchvision() is torchvision  # idempotent
    assert hasattr(torchvision, "models") and hasattr(torchvision, "ops")


def test_resnet18_forward():
    net = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 1000)
    assert bool(torch.isfinite(out).all())


def test_piq_ssim_returns_a_number():
    x, y = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    same = piq.ssim(x, x, data_range=1.0)
    assert isinstance(same, torch.Tensor) and same.dim() == 0
    assert float(same) == pytest.approx(1.0, abs=1e-6)
    different = piq.ssim(y, x, data_range=1.0, reduction="none")
    assert different.shape == (2,)
    assert bool((different < 0.5).all())  # independent noise is dissimilar
    assert torch.allclose(different, ssim(x, y), atol=1e-4)  # and agrees with our separable SSIM


def test_has_native_ops_is_a_bool():
    assert isinstance(has_native_ops(), bool)


def test_nms_without_native_ops_raises():
    if has_native_ops():
        pytest.skip("torchvision's C++ extension loaded: nms works here")
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.9]])
    with pytest.raises(RuntimeError) as info:
        torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    # On this machine torchvision's own guard fires first: a plain RuntimeError (not the
    # NotImplementedError subclass a kernel-less operator would give).
    assert type(info.value) is RuntimeError
    assert "C++ ops" in str(info.value)


@pytest.mark.slow
def test_fresh_interpreter_imports_core_then_torchvision_and_piq():
    proc = _python("import core; import torchvision; import piq; print('ok')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


@pytest.mark.slow
def test_without_core_torchvision_fails_here():
    """The control of the test above: the fix is needed where the extension does not load."""
    if has_native_ops():
        pytest.skip("torchvision's C++ extension loads here: nothing to fix")
    proc = _python("import torchvision")
    assert proc.returncode != 0
    assert "operator torchvision::nms does not exist" in proc.stderr
