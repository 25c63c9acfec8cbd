"""Every page of the Streamlit app, run as a real script by AppTest: widgets set, Run clicked, outputs checked."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.compat import torchvision
from core.services.explore import ATTACK_LABELS
from core.models import MODELS, hub_weights_path, load_model

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds per script run: importing torch alone takes ~2 s, the compare page runs ~10 attacks


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


def _page(name: str) -> AppTest:
    app = _app()
    app.switch_page(f"pages/{name}.py").run()
    assert not app.exception, app.exception
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, and downloads that fail at once without touching the network."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


def test_home_page_renders_device_and_models():
    app = _app()
    assert not app.exception
    assert "imperceptible" in app.title[0].value
    assert app.metric[0].label == "Running on"
    assert app.metric[0].value.startswith(("CPU", "GPU"))
    table = app.dataframe[0].value
    assert list(table["model"]) == list(MODELS)
    assert bool(table.loc[table["model"] == "fmnist-cnn", "available offline"].item())


def test_explorer_runs_the_default_attack():
    app = _page("explorer")
    assert app.selectbox(key="keep.model").value == "fmnist-cnn"
    assert app.button(key="explore.run").disabled is False
    measure_options = app.selectbox(key="keep.measure.1x28").options
    assert "SSIM" in measure_options and "MS-SSIM" not in measure_options  # MS-SSIM needs 161 px
    app.button(key="explore.run").click().run()
    assert not app.exception and not app.error
    shown = _metrics(app)
    assert shown["Attack succeeded"] == "yes"
    assert shown["Prediction"] != "Trouser"  # the first gallery image is a trouser
    assert 0.0 < float(shown["Cost spent"]) <= 0.02 * (1 + 1e-4)  # the default budget holds
    assert float(shown["L-inf (not optimised)"].split("/")[0]) > 0  # a measure the attack did not optimise
    table = app.dataframe[0].value.set_index("measure")
    assert table.loc["SSIM (padded)", "attack's cost"] == "yes"  # the default transport cost
    assert table.loc["SSIM (padded)", "score"] >= 1 - 0.02 - 1e-4
    assert 0.0 <= table.loc["HaarPSI", "score"] <= 1.0 and table.loc["PSNR (dB)", "score"] > 20
    assert 0.0 < table.loc["L-inf (x255)", "score"] <= 255.0  # in 1/255, the unit of the slider and the metric
    assert "MS-SSIM" not in table.index  # not defined at 28 px: said under the table, with why
    assert any("Not defined at this image size" in c.value and "MS-SSIM" in c.value and "161" in c.value
               for c in app.caption)
    assert len(app.get("download_button")) == 5  # image, perturbation (.npy, PNG), the figure row (PNG, PDF)
    assert len(app.get("plotly_chart")) == 1 and len(app.get("image")) == 6  # top-5 chart; clean, attacked, change,
    # SSIM map, and clean and attacked at their natural size

    # the shared cached model is frozen and unchanged by the attack
    from pages.ui.resources import cached_model

    cached = cached_model("fmnist-cnn")
    fresh = load_model("fmnist-cnn")
    assert not any(p.requires_grad for p in cached.parameters())
    assert all(torch.equal(a, b) for a, b in zip(cached.state_dict().values(), fresh.state_dict().values()))

    # the amplification changes the display without running the attack again
    result = app.session_state["explore.result"]["out"]
    app.slider(key="keep.factor").set_value(80).run()
    assert app.session_state["explore.result"]["out"] is result
    assert any("x80" in c for img in app.get("image") for c in img.captions)

    # two runs compare by eye: another attack keeps the amplification and the heat map's range
    app.selectbox(key="keep.attack").set_value("pgd-linf").run()
    app.button(key="explore.run").click().run()
    assert app.session_state["explore.result"]["out"] is not result
    captions = [c for img in app.get("image") for c in img.captions]
    assert any("x80" in c for c in captions) and any("0 to 0.2 (max" in c for c in captions)


def test_explorer_pgd_linf_respects_eps_and_choices_survive_pages():
    app = _page("explorer")
    app.selectbox(key="keep.attack").set_value("pgd-linf").run()
    app.slider(key="keep.eps_linf").set_value(4).run()
    app.selectbox(key="keep.gallery.1").set_value(10).run()
    app.button(key="explore.run").click().run()
    assert not app.exception
    shown = _metrics(app)
    assert shown["Cost spent"].endswith("/255") and float(shown["Cost spent"].split("/")[0]) <= 4.0 + 0.05  # the slider's unit
    app.switch_page("pages/method.py").run()
    app.switch_page("pages/explorer.py").run()
    assert app.selectbox(key="keep.attack").value == "pgd-linf"
    assert app.slider(key="keep.eps_linf").value == 4
    assert app.selectbox(key="keep.gallery.1").value == 10
    assert "explore.result" in app.session_state  # the last result is still shown
    assert _metrics(app)["Cost spent"] == shown["Cost spent"]


@pytest.mark.slow
def test_explorer_offers_every_registered_attack_with_its_own_options():
    from core.attacks import ATTACKS

    app = _page("explorer")
    assert set(app.selectbox(key="keep.attack").options) == {ATTACK_LABELS[a] for a in ATTACKS}
    measured = {}
    for attack, own in (("ddn", "L2"), ("alma-ssim", "SSIM"), ("perc-al", "CIEDE2000")):
        app.selectbox(key="keep.attack").set_value(attack).run()
        labels = [w.label for w in app.number_input]
        assert any(label.startswith(f"Largest {own}") for label in labels)  # its own distance, no budget
        assert "keep.loss" not in [w.key for w in app.radio] and f"keep.step.{attack}" not in [w.key for w in app.number_input]
        app.number_input(key=f"keep.steps.{attack}").set_value(30).run()
        app.button(key="explore.run").click().run()
        assert not app.exception and not app.error
        shown = _metrics(app)
        assert shown["Attack succeeded"] == "yes"  # uncapped: a minimal attack fools the gallery image
        table = app.dataframe[0].value.set_index("measure")
        measured[attack] = float(shown["Cost spent"])
        assert table.loc[own, "attack's cost"] == "yes"
        assert any("the smallest change that fools" in h.value for h in app.subheader)
    # a cap below what it needs: it gives up, and says so
    app.selectbox(key="keep.attack").set_value("ddn").run()
    app.number_input(key="keep.cap.ddn").set_value(measured["ddn"] / 10).run()
    app.button(key="explore.run").click().run()
    assert _metrics(app)["Attack succeeded"] == "no" and float(_metrics(app)["Cost spent"]) == 0.0


def test_explorer_wdro_options(monkeypatch):
    app = _page("explorer")
    app.selectbox(key="keep.measure.1x28").set_value("haarpsi").run()
    app.select_slider(key="keep.budget.haarpsi").set_value(0.05).run()
    app.number_input(key="keep.steps.wdro").set_value(30).run()
    app.button(key="explore.run").click().run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("measure")
    assert table.loc["HaarPSI", "attack's cost"] == "yes"
    assert table.loc["HaarPSI", "score"] >= 1 - 0.05 - 1e-4
    app.checkbox(key="keep.penalty").check().run()
    app.number_input(key="keep.gamma").set_value(1e5).run()
    app.button(key="explore.run").click().run()
    assert not app.exception
    assert _metrics(app)["Attack succeeded"] == "no"  # gamma = 1e5 makes any change too expensive
    assert any("gamma = 1e+05" in s.value or "gamma = 100000" in s.value for s in app.subheader)


def test_explorer_missing_imagenet_weights_give_a_message(offline_hub):
    app = _page("explorer")
    app.selectbox(key="keep.model").set_value("resnet18").run()
    assert not app.exception
    assert any("not on this machine" in i.value for i in app.info)
    app.button(key="explore.download").click().run()
    assert not app.exception
    assert any("Download failed" in e.value and "resnet18" in e.value and "Upload a state dict" in e.value
               for e in app.error)
    assert not any(str(offline_hub) in e.value for e in app.error)  # no server path shown to a visitor


def test_explorer_runs_an_imagenet_model_from_the_hub_cache(offline_hub):
    path = hub_weights_path(MODELS["resnet18"].torchvision_weights)
    assert path.parent == offline_hub
    offline_hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)  # random weights, real file
    app = _page("explorer")
    app.selectbox(key="keep.model").set_value("resnet18").run()
    options = app.selectbox(key="keep.measure.3x224").options
    assert {"MS-SSIM", "FSIM", "VIF"} <= set(options)  # valid at 224 px RGB
    assert app.selectbox(key="keep.gallery.3").options[0] == "astronaut"
    app.selectbox(key="keep.attack").set_value("fgsm").run()
    app.button(key="explore.run").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value.set_index("measure")
    assert table["score"].notna().all()  # every measure applies to a 224 px photo
    assert table.loc["L-inf (x255)", "score"] == pytest.approx(8, abs=0.3)


@pytest.mark.slow
def test_compare_page_matches_damage():
    app = _page("compare")
    assert any("Run the comparison" in i.value for i in app.info)
    app.slider(key="keep.cmp_n").set_value(16).run()
    app.number_input(key="keep.cmp_steps").set_value(20).run()
    app.button(key="compare.run").click().run()
    assert not app.exception and not app.error
    shown = _metrics(app)
    pgd, wdro = (float(shown[k].rstrip("%")) / 100 for k in ("PGD-L-inf success", "W-DRO success"))
    assert pgd == wdro > 0  # matched damage: the same images fooled, counted exactly
    haar_pgd, haar_wdro = map(float, shown["HaarPSI, PGD / W-DRO"].split(" / "))
    assert 0.0 < haar_pgd < haar_wdro < 1.0  # a measure neither attack optimised, on the fooled images
    cmp = app.session_state["compare.result"]["cmp"]
    both = cmp.pgd.success & cmp.wdro.success
    assert float(cmp.wdro.measures["ssim-padded"][both].mean()) > float(cmp.pgd.measures["ssim-padded"][both].mean())
    assert float(shown["Matched budget delta"]) == pytest.approx(cmp.budget, rel=0.05) and cmp.budget > 0
    assert len(app.get("plotly_chart")) == 2 + 4  # the benchmark tab's frontiers; distributions, histogram, two frontiers
    assert [p.param for p in cmp.pgd_sweep] == sorted(p.param for p in cmp.pgd_sweep) and len(cmp.pgd_sweep) >= 3
    shown_images = min(8, int((cmp.pgd.success | cmp.wdro.success).sum()))
    assert len(app.get("image")) == 5 * shown_images + 1  # clean, PGD, its change, W-DRO, its change; the benchmark grid
    app.toggle(key="keep.cmp_present").set_value(True).run()  # presentation view: one example, no rerun of attacks
    assert len(app.get("image")) == 5 + 1 and app.session_state["compare.result"]["cmp"] is cmp
    assert [b.label for b in app.get("download_button")][-2:] == ["This example (PNG)", "This example (PDF)"]
    tables = [d.value for d in app.dataframe if "HaarPSI ↑" in d.value.columns]  # the benchmark tab, as data frames
    committed = json.loads((ROOT / "assets/benchmark/heldout/fmnist-cnn-a/results.json").read_text())
    attacks = list(committed["results"]["0.9"])
    assert len(tables) == 2 and all(t["attack"].tolist() == attacks for t in tables)  # 90 % and 99 %, every attack
    assert "wdro-flips" in attacks and "alma-ssim-padded" in attacks
    assert all(t["HaarPSI ↑"].str.endswith("★").sum() == 1 for t in tables)  # one best per column
    assert any("fool" in i.value and "is better on" in i.value for i in app.info)  # the sentence to notice


def test_method_page_has_the_formulation_and_references():
    app = _page("method")
    assert len(app.latex) >= 4
    assert any("sup_{Q" in tex.value for tex in app.latex)
    text = " ".join(m.value for m in app.markdown)
    assert "2111.15603" in text and "Blanchet" in text and "gamma" in text
    assert list(app.dataframe[0].value["measure"])[0] == "SSIM"


@pytest.mark.slow
def test_fairness_page_shows_the_demo_and_trains_a_copy(monkeypatch):
    import core.services.fairness_demo
    from core.services.fairness_demo import load_demo_evaluation, load_fairness_map, map_verdict
    from pages.fairness import demo_model

    monkeypatch.setattr(core.services.fairness_demo, "TRAIN_NOW_ATTACKED", 64)  # what the page runs, on fewer images

    from core.services.fairness_demo import load_shortcut_summary, shortcut_verdict

    evaluation = load_demo_evaluation()
    app = _page("fairness")
    assert not app.error
    assert app.multiselect(key="keep.fair_models").value == ["ERM", "W-DRO", "Group DRO"]
    shown = _metrics(app)
    erm = evaluation["models"]["erm"]["clean"]
    assert shown["ERM"] == f"{erm['worst_group_accuracy']:.1%}"
    # the page leads with the case where W-DRO helps: the shortcut runs' bars and map, a verdict from their numbers
    shortcut = load_shortcut_summary()
    mark = shortcut_verdict(shortcut, "mark")
    said = " ".join(m.value for m in app.markdown)
    assert f"{mark['worst'][0]:+.1f} worst-group points over {mark['seeds']} seeds" in said
    assert any(f"W-DRO's worst group: {mark['worst'][0]:+.1f} ± {mark['worst'][1] or 0:.1f} points" in c.value
               for c in app.caption)
    assert len(app.get("image")) == 4  # the cue on four images: two aligned, two conflicting
    assert len(app.get("plotly_chart")) == 6  # shortcut bars and map; grouped bars, curves, cost per group, the map
    app.radio(key="keep.fair_cue").set_value("pattern").run()
    assert not app.exception
    pattern = shortcut_verdict(shortcut, "pattern")
    assert any(f"W-DRO's worst group: {pattern['worst'][0]:+.1f}" in c.value for c in app.caption)
    table = app.dataframe[0].value
    assert len(table) == 3 * 3  # three models, clean and two attacks
    assert set(table["worst group"]) <= set(evaluation["groups"])
    # the headline and the map read the 3-seed protocol's numbers (assets/fairness/map.json), not fixed text
    verdict = map_verdict(load_fairness_map())
    captions = " ".join(c.value for c in app.caption)
    assert f"W-DRO's worst-group accuracy is {verdict['inverted']['worst'][0]:+.1f}" in captions
    assert ("target is not met" in captions) != verdict["inverted"]["helps"]
    rows = app.dataframe[1].value
    assert list(rows["minority rendering"]) == list(verdict)
    assert list(rows["W-DRO worst group vs ERM"]) == [f"{v['worst'][0]:+.1f} ± {v['worst'][1] or 0:.1f}"
                                                      for v in verdict.values()]
    app.radio(key="keep.fair_selection").set_value("val-mean").run()
    assert not app.exception
    by_mean = map_verdict(load_fairness_map(), selection="val-mean")
    assert list(app.dataframe[1].value["W-DRO mean vs ERM"]) == [f"{v['mean'][0]:+.1f} ± {v['mean'][1] or 0:.1f}"
                                                                  for v in by_mean.values()]

    # train a W-DRO copy of the ERM demo model for one epoch on 1,000 images, in the background
    before = {k: v.clone() for k, v in demo_model("erm").state_dict().items()}
    app.selectbox(key="keep.fair_start").set_value("erm").run()
    app.slider(key="keep.fair_epochs").set_value(1).run()
    app.select_slider(key="keep.fair_n").set_value(1000).run()
    app.button(key="fair.train").click().run()
    assert not app.exception and "fair.job" in app.session_state
    job = app.session_state["fair.job"]
    assert job.wait(300) and job.error is None
    app.run()
    assert not app.exception and not app.error
    models = app.multiselect(key="keep.fair_models").value
    assert len(models) == 4 and models[3].startswith("#1 W-DRO SSIM (padded) 0.03, 1 epoch")
    entry = app.session_state["fair.trained"][models[3]]["entry"]
    assert 0.0 <= entry["clean"]["worst_group_accuracy"] <= entry["clean"]["mean_accuracy"] <= 1.0
    assert set(entry["under_attack"]) == {"wdro", "pgd-linf"} and all(u["n"] == 64 for u in entry["under_attack"].values())  # both attacks ran, on 64 images
    assert entry["history"][0]["cost_mean"] > 0  # W-DRO spent transport budget
    assert len(app.dataframe[0].value) == 4 * 3  # three demo models and the new one
    after = demo_model("erm").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the cached model was copied, not trained


@pytest.mark.slow
def test_fairness_page_cancel_and_missing_folder(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("server-secret-content\n")
    monkeypatch.delenv("PDRO_DATA_ROOTS", raising=False)
    app = _page("fairness")
    app.selectbox(key="keep.fair_dataset").set_value("celeba").run()
    assert not app.exception
    assert app.radio(key="keep.fair_from.celeba").options == ["Upload a .zip"]  # no server folder unless allowed
    assert any("PDRO_DATA_ROOTS" in c.value for c in app.caption)
    assert app.button(key="fair.train").disabled

    root = tmp_path / "allowed"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    monkeypatch.setenv("PDRO_DATA_ROOTS", str(root))
    app = _page("fairness")
    app.selectbox(key="keep.fair_dataset").set_value("celeba").run()
    app.radio(key="keep.fair_from.celeba").set_value("A folder on this server").run()
    for escape in ("../secret.txt", str(secret), "link/secret.txt", "../missing"):
        app.text_input(key="keep.fair_root.celeba").input(escape).run()
        assert not app.exception and app.button(key="fair.train").disabled
        messages = [e.value for e in app.error]
        assert messages == ["Cannot use that folder: the data folder must be a relative path inside allowed, "
                            "without '..' or links that lead out"], messages
    app.text_input(key="keep.fair_root.celeba").input("celeba-root").run()
    app.button(key="fair.train").click().run()  # the job fails at once, maybe before the page reruns
    if "fair.job" in app.session_state:
        assert app.session_state["fair.job"].wait(60)
        app.run()
    assert "fair.job" not in app.session_state
    assert any("Training failed" in e.value and "CelebA not found" in e.value for e in app.error)
    assert not any("server-secret-content" in e.value for e in app.error)

    app.selectbox(key="keep.fair_dataset").set_value("fmnist-groups").run()
    app.slider(key="keep.fair_epochs").set_value(10).run()
    app.button(key="fair.train").click().run()
    job = app.session_state["fair.job"]
    job.cancel()
    assert job.wait(120)
    app.run()
    assert not app.exception
    trained = app.session_state["fair.trained"] if "fair.trained" in app.session_state else {}
    # cancelled at once: either before the first step (nothing kept) or after a few steps (kept, marked)
    assert all(label.endswith("(cancelled)") for label in trained)
    assert any("cancelled" in w.value for w in app.warning) or trained


def test_the_server_holds_an_upload_to_its_box_limit():
    """The widgets' max_upload_size is the browser's check; the page checks the size the server recorded."""
    from types import SimpleNamespace

    from pages.ui.widgets import MAX_IMAGE_MB, upload_bytes

    read = []
    big = SimpleNamespace(name="huge.tif", size=MAX_IMAGE_MB * 2**20 + 1, getvalue=lambda: read.append(1) or b"x")
    assert upload_bytes(big, MAX_IMAGE_MB) is None and read == []  # refused before its bytes are read
    small = SimpleNamespace(name="ok.png", size=3, getvalue=lambda: b"png")
    assert upload_bytes(small, MAX_IMAGE_MB) == b"png"


@pytest.mark.slow
def test_fairness_page_trains_on_the_shortcut_data_set(monkeypatch):
    """Train a model now on fmnist-shortcut: no flips, W-DRO's five inner steps and the chosen budget, the cue
    chosen in the page; what a short run shows is said before it starts."""
    import core.services.fairness_demo
    from core.services.fairness_demo import SHORTCUT_WDRO

    monkeypatch.setattr(core.services.fairness_demo, "TRAIN_NOW_ATTACKED", 32)
    app = _page("fairness")
    app.selectbox(key="keep.fair_dataset").set_value("fmnist-shortcut").run()
    assert not app.exception
    assert any("a short run does not show the shortcut's effect" in c.value for c in app.caption)
    assert app.select_slider(key="keep.fair_budget.fmnist-shortcut").value == SHORTCUT_WDRO["budget"]
    app.radio(key="keep.fair_train_cue").set_value("pattern").run()
    app.slider(key="keep.fair_epochs").set_value(1).run()
    app.select_slider(key="keep.fair_n").set_value(1000).run()
    app.button(key="fair.train").click().run()
    job = app.session_state["fair.job"]
    assert job.wait(300) and job.error is None
    app.run()
    assert not app.exception and not app.error
    label = app.multiselect(key="keep.fair_models").value[-1]
    entry = app.session_state["fair.trained"][label]["entry"]
    assert entry["dataset"] == "fmnist-shortcut" and entry["groups"] == ["aligned", "conflicting"]
    assert entry["config"]["flip"] is False and entry["config"]["inner_steps"] == SHORTCUT_WDRO["inner_steps"]
