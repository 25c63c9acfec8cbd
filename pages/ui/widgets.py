"""Widgets and boxes the pages share: images for display, the presentation view, uploads, errors, data choices."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from core.imageio import tensor_to_image
from core.safepaths import DATA_ROOTS_VARIABLE, data_roots, resolve_inside, unpacked
from pages.ui.state import keep

MAX_IMAGE_MB = 20  # per-widget upload limits, in MB (the server's own limit is .streamlit/config.toml's)
MAX_ZIP_MB = 200
DISPLAY_SIDE = 224  # small images are enlarged (nearest neighbour) to this side for display


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
