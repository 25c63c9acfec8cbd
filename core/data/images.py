"""Image files into one uint8 array: the loop the CelebA and CSV loaders share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def load_images(
    names: Sequence[str],
    resolve: Callable[[str], Path],
    *,
    channels: int,
    size: int,
    error: Callable[[int, str, ValueError], str],
) -> np.ndarray:
    """(N, channels, size, size) uint8: the image ``resolve(name)`` of each name, centre-cropped and resized.

    ``resolve`` turns a name into a path (and refuses one outside its folder with ValueError);
    a refused or unreadable image raises ValueError with the message ``error(k, name, err)``.
    Inside :func:`core.cancel.cancellable`, a cancelled job raises :class:`core.cancel.Cancelled`
    before the next file.
    """
    from core.cancel import check_cancelled
    from core.imageio import load_tensor

    x = np.empty((len(names), channels, size, size), dtype=np.uint8)
    for k, name in enumerate(names):
        check_cancelled()  # a job's Cancel stops the loop between two files
        try:
            image = load_tensor(resolve(name), channels=channels, size=size)
        except ValueError as err:
            raise ValueError(error(k, name, err)) from None
        x[k] = image[0].mul(255.0).round_().byte().numpy()
    return x
