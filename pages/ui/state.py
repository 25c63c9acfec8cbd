"""Choices that survive moving between pages, and the one navigation: every page calls :func:`keep_choices` first."""

from __future__ import annotations

import streamlit as st

SAVED = "saved."  # session-state prefix of the copies that outlive a widget
KEPT = "kept.keys"  # the widget keys whose values are copied
RUN = "kept.run"  # counts the script runs of the session (keep_choices starts each)
DRAWN = "kept.drawn"  # {widget key: the run in which keep() last saw it drawn}
NAVIGATION_CHECKED = "nav.checked"  # see _use_navigation
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

    Why a private flag: Streamlit has no supported way to keep a ``pages/`` folder beside an
    entry point that calls ``st.navigation`` (its documentation says to rename the folder), and
    the design card fixes the folder's name. The alternatives are worse: a ``pages/`` without
    the pages in it, or a ``[client] showSidebarNavigation`` setting that hides the navigation
    itself. The flag is read with ``getattr`` so a Streamlit without it runs the page as is.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False) and NAVIGATION_CHECKED not in st.session_state:
        st.session_state[NAVIGATION_CHECKED] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
