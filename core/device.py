"""Choosing the device once, to be passed explicitly everywhere else."""

from __future__ import annotations

import torch


def default_device(prefer: str | None = None) -> torch.device:
    """Return the device to run on: ``prefer`` if given, else CUDA when present, else CPU.

    Args:
        prefer: An explicit device string such as ``"cpu"`` or ``"cuda:1"``.

    Raises:
        ValueError: ``prefer`` is not a device string, or names CUDA but none is available.
    """
    if prefer is not None:
        try:
            device = torch.device(prefer)
        except RuntimeError:
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {prefer!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for, but CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    """A human-readable name: ``"CPU (2 threads)"`` or ``"GPU: NVIDIA H100 (cuda:0)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU: {torch.cuda.get_device_name(index)} (cuda:{index})"
    return f"CPU ({torch.get_num_threads()} threads)"
