"""Perceptual W-DRO attacks and fairness (Hua, Xu, Blanchet, Nguyen, arXiv 2111.15603)."""

from core import compat as _compat  # noqa: F401  (must run before torchvision or piq are imported)
