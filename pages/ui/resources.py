"""Cached resources the pages share: the device, models, test images, background-job slots."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import streamlit as st
import torch

from core.data import load_fashion_mnist
from core.device import default_device, server_threads
from core.models import MODELS, get_model_spec, load_model, state_dict_bytes
from core.services.jobs import Job, JobSlots


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
