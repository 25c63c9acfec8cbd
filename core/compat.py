"""Make torchvision (and so piq) importable on a CPU-only torch.

torchvision 0.28.0 from PyPI is a CUDA build. Next to the CPU build of
torch 2.13.0 its C extension does not load, and ``import torchvision`` stops
with ``RuntimeError: operator torchvision::nms does not exist`` because its
Python side registers fake and autograd kernels for operators that the
extension would have declared. ``piq`` imports ``torchvision.models`` and fails
with it.

:func:`ensure_torchvision` declares the operator schemas (copied from
torchvision's ``csrc/ops/*.cpp``) when, and only when, the extension did not
load. Models, transforms and weights then work; the C++ detection operators
(``nms``, ``roi_align``, ...) raise when called because they have no kernel.
Where torchvision's own extension loads, nothing is changed.

Every part of the project imports torchvision and piq through this module::

    from core.compat import piq, torchvision
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

import torch

# Operator schemas of torchvision 0.28 (torchvision/csrc/ops/*.cpp, TORCH_LIBRARY_FRAGMENT).
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
    "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
    "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)

_MISSING_OP = "does not exist"
_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def ensure_torchvision() -> ModuleType:
    """Import torchvision, declaring its operator schemas first if its extension cannot load.

    Returns:
        The ``torchvision`` module.

    Raises:
        ImportError: torchvision is not installed, or fails for another reason.
    """
    global _LIBRARY
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as err:
        if _MISSING_OP not in str(err) or _LIBRARY is not None:
            raise
    # The failed import left half-initialised modules behind; drop them and retry.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _LIBRARY = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 (kept at module level)
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)
    warnings.filterwarnings("ignore", message=r".*Failed to load image Python extension.*")
    return importlib.import_module("torchvision")


def has_native_ops() -> bool:
    """Whether torchvision's own C++ extension loaded (False when the schemas were declared here)."""
    ensure_torchvision()
    return _LIBRARY is None


torchvision = ensure_torchvision()
piq = importlib.import_module("piq")

__all__ = ["ensure_torchvision", "has_native_ops", "piq", "torchvision"]
