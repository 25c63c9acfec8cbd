"""The Streamlit app starts and renders its home page (AppTest runs the real script)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.models import MODELS

ROOT = Path(__file__).resolve().parent.parent


def test_home_page_renders_device_and_models():
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert "imperceptible" in app.title[0].value
    assert app.metric[0].label == "Running on"
    assert app.metric[0].value.startswith(("CPU", "GPU"))
    table = app.dataframe[0].value
    assert list(table["model"]) == list(MODELS)
    assert bool(table.loc[table["model"] == "fmnist-cnn", "available offline"].item())
