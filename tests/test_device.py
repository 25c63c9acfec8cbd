"""Device choice and the app's CPU thread count."""

from __future__ import annotations

import os

import pytest
import torch

from core.device import default_device, describe_device, server_threads


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (8, 4), (64, 32)])
def test_server_threads_is_half_the_cores_and_at_least_one(cores, threads):
    assert server_threads(cores) == threads


def test_default_device_and_its_description():
    assert default_device("cpu") == torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        text = describe_device(torch.device("cpu"))
        assert text == "CPU (1 thread)" if os.cpu_count() == 1 else text == f"CPU (1 thread of {os.cpu_count()} cores)"
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:N'"):
        default_device("tpu!")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            default_device("cuda")
