"""Layering: the library under core/ never imports the UI framework (streamlit)."""

from __future__ import annotations

import pytest

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core"
FORBIDDEN = "streamlit"


def forbidden_imports(source: str, filename: str = "<string>") -> list[str]:
    """``line: statement`` for every import of streamlit (or a submodule) in ``source``.

    Catches ``import streamlit``, ``import streamlit.x as y``, ``from streamlit import x``,
    ``from streamlit.x import y`` anywhere (also inside functions), and the dynamic forms
    ``importlib.import_module("streamlit")`` / ``__import__("streamlit")`` with a literal name.
    """

    def hits(name: str | None) -> bool:
        return name is not None and (name == FORBIDDEN or name.startswith(FORBIDDEN + "."))

    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if hits(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and hits(node.module):
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                if hits(node.args[0].value):
                    found.append(f"{node.lineno}: {called}({node.args[0].value!r})")
    return found


def test_checker_catches_every_form():
    assert forbidden_imports("import os\nimport torch\nfrom core import cli\n") == []
    assert forbidden_imports("import streamlit_like_name\nfrom mystreamlit import x\n") == []
    for source in (
        "import streamlit",
        "import streamlit as st",
        "import os, streamlit.components.v1 as c",
        "from streamlit import session_state",
        "from streamlit.runtime import exists",
        "def f():\n    import streamlit\n",
        "import importlib\nimportlib.import_module('streamlit')",
        "__import__('streamlit.web')",
    ):
        assert len(forbidden_imports(source)) == 1, source


def test_no_module_under_core_imports_streamlit():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 10  # the package really was found
    assert CORE / "cli.py" in files and CORE / "attacks" / "wdro.py" in files
    offenders = {
        str(path.relative_to(REPO)): hits
        for path in files
        if (hits := forbidden_imports(path.read_text(encoding="utf-8"), str(path)))
    }
    assert offenders == {}


@pytest.mark.slow
def test_importing_cli_and_attacks_does_not_load_streamlit():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", "import core.cli, core.attacks, sys; print('streamlit' in sys.modules)"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "False\n"


def test_the_library_never_imports_the_app_services():
    """core.services (explore, compare, figures, the fairness demo, jobs) sits on top of the library, not under it."""
    library = [p for p in CORE.rglob("*.py") if "services" not in p.relative_to(CORE).parts]
    assert CORE / "training" / "loop.py" in library and len(library) >= 30
    offenders = []
    for path in library:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.startswith("core.services")]
    assert offenders == []


def test_the_architecture_doc_names_every_module():
    """docs/architecture.md's "Every module" has a line for every module of core/ (a new module needs one)."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = doc.split("## Every module", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"[\w/]*?(\w+\.py)\b", block))
    modules = {p.name for p in CORE.rglob("*.py") if p.name != "__init__.py"}
    assert len(modules) >= 40 and "protocol.py" in modules
    assert sorted(modules - named) == []
