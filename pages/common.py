"""What the pages share: cached models and data, choices that survive moving between pages, error boxes.

Not a page itself (``app.py`` lists the pages).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from core.datasets import load_fashion_mnist
from core.device import default_device, server_threads
from core.imageio import tensor_to_image
from core.models import MODELS, get_model_spec, load_model

SAVED = "saved."  # session-state prefix of the copies that outlive a widget
KEPT = "kept.keys"  # the widget keys whose values are copied
NAVIGATION_CHECKED = "nav.checked"  # see _use_navigation
DISPLAY_SIDE = 224  # small images are enlarged (nearest neighbour) to this side for display
_NO_DEFAULT = object()


def keep(key: str, default: object = _NO_DEFAULT) -> str:
    """A widget key whose value survives moving to another page and back.

    Streamlit forgets a widget's value at the end of a run in which the widget was not
    drawn (another page). The value is copied to ``saved.<key>`` at the start of every run
    (:func:`keep_choices`, which every page calls first) and written back here, before the
    widget is drawn again. ``default`` seeds the widget the first time (instead of its ``value=``).
    """
    state = st.session_state
    state.setdefault(KEPT, set()).add(key)
    if key not in state:
        if SAVED + key in state:
            state[key] = state[SAVED + key]
        elif default is not _NO_DEFAULT:
            state[key] = default
    return key


def keep_choices() -> None:
    """Copy the current value of every kept widget (see :func:`keep`); every page calls it first.

    Also leaves Streamlit's old multipage mode when a page was started in it (see
    :func:`_use_navigation`).
    """
    _use_navigation()
    state = st.session_state
    for key in state.get(KEPT, ()):
        if key in state:
            state[SAVED + key] = state[key]


def _use_navigation() -> None:
    """Run the app through ``app.py``'s ``st.navigation`` even when a page is opened first by its URL.

    Streamlit treats a folder named ``pages/`` beside the entry point as an old-style
    multipage app until ``st.navigation`` has run once in the process: a fresh server whose
    first visitor follows a link to ``/explorer`` runs that page alone, with a sidebar of
    every file in ``pages/`` (``common`` included), and keeps doing so. Here the flag is
    cleared and the run restarted, so the entry point builds the navigation (streamlit
    1.67; ``PagesManager.uses_pages_directory`` is what ``st.navigation`` itself clears).
    Once per session at most: ``AppTest`` sets the flag again before every run, and a rerun
    there would swallow the click that started the run.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and NAVIGATION_CHECKED not in st.session_state:
        st.session_state[NAVIGATION_CHECKED] = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def device() -> torch.device:
    """The device every page uses (CUDA when present), chosen once per process."""
    return _device()


@st.cache_resource(show_spinner=False)
def _device() -> torch.device:
    torch.set_num_threads(server_threads())  # once per process: see core.device.server_threads
    return default_device()


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def cached_model(name: str, weights: str | None = None) -> torch.nn.Module:
    """A registry model on the app's device, shared by every session and never modified.

    Its parameters are frozen (``requires_grad=False``): attacks differentiate with respect
    to the input only, and training works on a copy.
    """
    model = load_model(name, device=device(), weights=weights)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def save_uploaded_weights(data: bytes) -> str:
    """Store uploaded state-dict bytes under the temp folder, named by their hash; return the path."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "perceptual-dro-weights" / f"{digest}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


@st.cache_resource(show_spinner="Loading test images ...")
def test_set() -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fashion-MNIST test images (N, 1, 28, 28), labels, and where they came from."""
    data = load_fashion_mnist("test")
    x, y = data.tensors()
    return x, y, data.source


def has_test_set(name: str) -> bool:
    """Whether labelled test images are available offline for a model (the Fashion-MNIST ones)."""
    return get_model_spec(name).channels == 1


def model_label(name: str) -> str:
    """A model's name for select boxes, marking the ones whose weights are not on this machine."""
    return name if MODELS[name].available_offline() else f"{name} (weights not downloaded)"


def display_image(x: torch.Tensor, side: int = DISPLAY_SIDE) -> Image.Image:
    """A (C, H, W) or (1, C, H, W) tensor as a PIL image, small ones enlarged without smoothing."""
    img = tensor_to_image(x[0] if x.dim() == 4 else x)
    if max(img.size) < side:
        scale = side // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


def show_error(err: BaseException, *, what: str) -> None:
    """An error box for a failure the person can act on, never a traceback."""
    st.error(f"{what}: {err}", icon=":material/error:")
