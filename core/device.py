"""Choosing the device once, to be passed explicitly everywhere else."""

from __future__ import annotations

import os

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
    """A human-readable name: ``"CPU (2 threads)"``, ``"CPU (1 thread of 2 cores)"`` or ``"GPU: NVIDIA H100 (cuda:0)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU: {torch.cuda.get_device_name(index)} (cuda:{index})"
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    used = f"{threads} thread" + ("s" if threads != 1 else "")
    return f"CPU ({used})" if threads == cores else f"CPU ({used} of {cores} cores)"


def server_threads(cpu_count: int | None = None) -> int:
    """Intra-op CPU threads for a long-running server (the app): half the cores, at least one.

    The app's process shares the machine with the Streamlit server, the browser and often
    other work. With as many torch threads as cores, one attack step waits on the slowest
    thread, and on a busy 2-core machine a 100-step W-DRO attack on a 28 x 28 image was
    measured at 8 to 48 s with 2 threads against 0.3 to 0.4 s with one (``bench.app_speed``).
    """
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // 2)
