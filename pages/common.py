"""What the pages share: cached models and data, choices that survive moving between pages, error boxes.

Not a page itself (``app.py`` lists the pages).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from core.data import load_fashion_mnist
from core.device import default_device, server_threads
from core.imageio import tensor_to_image
from core.services.jobs import Job, JobSlots
from core.models import MODELS, get_model_spec, load_model, state_dict_bytes
from core.safepaths import DATA_ROOTS_VARIABLE, data_roots, resolve_inside, unpacked

SAVED = "saved."  # session-state prefix of the copies that outlive a widget
KEPT = "kept.keys"  # the widget keys whose values are copied
RUN = "kept.run"  # counts the script runs of the session (keep_choices starts each)
DRAWN = "kept.drawn"  # {widget key: the run in which keep() last saw it drawn}
NAVIGATION_CHECKED = "nav.checked"  # see _use_navigation
MAX_IMAGE_MB = 20  # per-widget upload limits, in MB (the server's own limit is .streamlit/config.toml's)
MAX_ZIP_MB = 200
DISPLAY_SIDE = 224  # small images are enlarged (nearest neighbour) to this side for display
_NO_DEFAULT = object()


def keep(key: str, default: object = _NO_DEFAULT) -> str:
    """A widget key whose value survives moving to another page and back, or the widget being hidden.

    Streamlit forgets a widget's value at the end of a run in which the widget was not
    drawn (another page, or a branch of the page not taken). The value is copied to
    ``saved.<key>`` at the start of every run (:func:`keep_choices`, which every page calls
    first) and written back here, before the widget is drawn again. ``default`` seeds the
    widget the first time (instead of its ``value=``).

    A widget that was not drawn in the previous run gets its value written through the
    Session State API even while the server still holds it: the browser built that widget
    anew, showing the widget's own default (for ``st.select_slider``, its first option),
    and a value Streamlit thinks unchanged is not sent to it, so the next click would send
    the default back (a DRO budget of 0.01 came back as 0.0001 after switching the attack
    away and back).
    """
    state = st.session_state
    state.setdefault(KEPT, set()).add(key)
    drawn = state.setdefault(DRAWN, {})
    run = state.get(RUN, 0)
    if key not in state or drawn.get(key) not in (run - 1, run):
        if key in state:
            state[key] = state[key]
        elif SAVED + key in state:
            state[key] = state[SAVED + key]
        elif default is not _NO_DEFAULT:
            state[key] = default
    drawn[key] = run
    return key


def keep_choices() -> None:
    """Copy the current value of every kept widget (see :func:`keep`); every page calls it first.

    Also leaves Streamlit's old multipage mode when a page was started in it (see
    :func:`_use_navigation`).
    """
    _use_navigation()
    state = st.session_state
    state[RUN] = state.get(RUN, 0) + 1
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
def cached_model(name: str, weights_digest: str | None = None, _weights: bytes | None = None) -> torch.nn.Module:
    """A registry model on the app's device, shared by every session and never modified.

    ``_weights`` are the bytes of an uploaded state dict (never written to disk; checked
    before anything is inflated, see :func:`core.models.load_state_dict`), cached under
    their ``weights_digest`` (:func:`weights_digest`). Its parameters are frozen
    (``requires_grad=False``): attacks differentiate with respect to the input only, and
    training works on a copy.
    """
    model = load_model(name, device=device(), weights=_weights)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@st.cache_data(show_spinner=False)
def weights_upload_mb(name: str) -> int:
    """The upload limit for a model's state dict, in MB: what load_model accepts for its architecture."""
    return int(2 * state_dict_bytes(get_model_spec(name).build()) / 1e6) + 2


def weights_digest(data: bytes) -> str:
    """The cache key of uploaded weight bytes."""
    return hashlib.sha256(data).hexdigest()


# -- background training: bounded per server, one per session, cancelled when the session ends ---------

MAX_JOBS_VARIABLE = "PDRO_MAX_JOBS"  # how many trainings may run at once on this server (default 2)


@dataclass
class SessionJobs:
    """The background job of one browser session (see :func:`session_jobs`)."""

    job: Job | None = None
    ended: bool = False  # the session is gone: nobody will see the job's result

    def cancel(self) -> None:
        self.ended = True
        if self.job is not None:
            self.job.cancel()


def _release_session_jobs(jobs: SessionJobs) -> None:
    jobs.cancel()


@st.cache_resource(scope="session", on_release=_release_session_jobs, show_spinner=False)
def session_jobs() -> SessionJobs:
    """This session's job holder; Streamlit releases it, cancelling the job, when the session ends."""
    return SessionJobs()


@st.cache_resource(show_spinner=False)
def job_slots() -> JobSlots:
    """The server-wide bound on concurrent background jobs (``PDRO_MAX_JOBS``, default 2)."""
    try:
        limit = int(os.environ.get(MAX_JOBS_VARIABLE, "2"))
    except ValueError:
        limit = 2
    return JobSlots(max(limit, 1))


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


def display_image(x: torch.Tensor | Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """A (C, H, W) or (1, C, H, W) tensor (or a PIL image) for display, small ones enlarged without smoothing."""
    img = x if isinstance(x, Image.Image) else tensor_to_image(x[0] if x.dim() == 4 else x)
    if max(img.size) < side:
        scale = side // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


# The presentation view gives the images the whole window: no sidebar (the page's toggle brings it back),
# narrow side padding. At 1024 x 768 each of four images is then about 240 px wide instead of 129.
PRESENTATION_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {display: none;}
[data-testid="stMainBlockContainer"] {padding-left: 1.5rem; padding-right: 1.5rem; max-width: none;}
</style>"""


def presentation_layout() -> None:
    """Switch the page to the presentation layout for this run (see :data:`PRESENTATION_CSS`)."""
    st.html(PRESENTATION_CSS)


UPLOAD_TOO_LARGE = "{name} is {size:.1f} MB; the limit for this box is {limit} MB"


def upload_bytes(upload, limit_mb: int) -> bytes | None:
    """The bytes of an uploaded file, or ``None`` with a one-line error when it is over ``limit_mb``.

    The widget's ``max_upload_size`` is enforced by the browser only: a client that posts to the server
    directly is held to the limit here, on the size the server recorded, before the bytes are read.
    """
    if upload.size > limit_mb * 2**20:
        show_error(ValueError(UPLOAD_TOO_LARGE.format(name=upload.name, size=upload.size / 2**20, limit=limit_mb)),
                   what="Cannot use that file")
        return None
    return upload.getvalue()


def show_error(err: BaseException, *, what: str) -> None:
    """An error box for a failure the person can act on, never a traceback (one line)."""
    text = " ".join(str(err).split())
    st.error(f"{what}: {text}", icon=":material/error:")


# -- data a visitor trains on: a folder the server allows, or an uploaded zip --------------------------


@dataclass(frozen=True)
class DataChoice:
    """Where a visitor's data set is: a folder inside an allowed root, an uploaded zip, or nothing yet."""

    path: Path | None = None  # a folder inside one of core.safepaths.data_roots()
    archive: bytes | None = None  # an uploaded zip, unpacked only while it is used

    @property
    def ready(self) -> bool:
        return self.path is not None or self.archive is not None

    def folder(self):
        """A context manager giving the data's folder (``None`` for the bundled data)."""
        if self.archive is not None:
            return unpacked(self.archive)
        return nullcontext(self.path)


def data_source_ui(dataset: str) -> DataChoice:
    """Widgets that choose a data set's files; visitors name no server path outside the allowed roots."""
    roots = data_roots()
    sources = ["Upload a .zip", "A folder on this server"] if roots else ["Upload a .zip"]
    how = st.radio("Data from", sources, horizontal=True, key=keep(f"keep.fair_from.{dataset}"))
    if how == "A folder on this server":
        root = st.selectbox("Allowed data folder", roots, format_func=lambda r: r.name or str(r),
                            key=keep("keep.fair_root_base"))
        inner = st.text_input("Folder inside it (relative; empty for the folder itself)",
                              key=keep(f"keep.fair_root.{dataset}", "")).strip()
        try:
            path = resolve_inside(root, inner or ".", what="the data folder", shown_root=root.name or str(root))
        except ValueError as err:
            show_error(err, what="Cannot use that folder")
            return DataChoice()
        return DataChoice(path=path)
    upload = st.file_uploader("Data set: a .zip with images and metadata.csv (path,label,group[,split])"
                              if dataset == "csv" else "Data set: a .zip holding celeba/ in torchvision's layout",
                              type=["zip"], key=f"fair.zip.{dataset}", max_upload_size=MAX_ZIP_MB)
    if not roots:
        st.caption(f"Folders on the server are off: whoever runs the server can allow some with "
                   f"{DATA_ROOTS_VARIABLE} (see the README).")
    archive = upload_bytes(upload, MAX_ZIP_MB) if upload is not None else None
    return DataChoice(archive=archive) if archive is not None else DataChoice()
