"""Command line (``python -m core``): attack reports, the written PNG, options, one-line errors, listings."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from core.cli import main
from core.data import FASHION_MNIST_CLASSES
from core.imageio import load_tensor
from core.measures import MEASURES, available_measures
from core.models import MODELS, load_model

REPO = Path(__file__).resolve().parents[1]
GALLERY = REPO / "assets" / "gallery" / "fashion_mnist"
# A T-shirt the bundled model classifies correctly (class 0, p = 0.99); every attack below flips it
# with p_adv > 0.9, so the reload check of the written PNG runs for all four attacks.
IMAGE = GALLERY / "00035_t-shirt-top.png"
EPS_LINF = 8 / 255
EPS_L2 = 1.0
BUDGET = 0.02
BUDGET_RTOL = 1e-4  # the budget form's final line search is exact up to float rounding
N_CLASSES = 10

ATTACK_ARGS = {
    "wdro": ["--budget", str(BUDGET), "--steps", "30"],
    "pgd-linf": ["--eps", repr(EPS_LINF), "--steps", "5"],
    "pgd-l2": ["--eps", repr(EPS_L2), "--steps", "5"],
    "fgsm": ["--eps", repr(EPS_LINF)],
}


@pytest.fixture(scope="module")
def model():
    return load_model("fmnist-cnn")


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    return load_tensor(IMAGE, channels=1, size=28)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Call ``main`` in-process; return (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def attack_argv(out: Path, *extra: str, image: Path | str = IMAGE) -> list[str]:
    return ["attack", "--model", "fmnist-cnn", "--image", str(image), "--out", str(out), *extra]


def attack_json(capsys, out: Path, *extra: str) -> dict:
    code, stdout, stderr = run(capsys, *attack_argv(out, *extra, "--json"))
    assert code == 0, stderr
    assert stdout.count("\n") == 1, "--json prints exactly one line"
    return json.loads(stdout)


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return env


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (8-bit gray) with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# --- attack --json --------------------------------------------------------------------------------


def test_gallery_image_is_a_correctly_classified_t_shirt(model, clean):
    assert clean.shape == (1, 1, 28, 28)
    with torch.no_grad():
        prob = model(clean).softmax(1)[0]
    assert int(prob.argmax()) == 0 == FASHION_MNIST_CLASSES.index("T-shirt/top")
    assert float(prob.max()) > 0.9


@pytest.mark.parametrize("attack", list(ATTACK_ARGS))
def test_attack_json_report_and_png(capsys, tmp_path, model, clean, attack):
    out = tmp_path / f"{attack}.png"
    r = attack_json(capsys, out, "--attack", attack, *ATTACK_ARGS[attack])

    assert r["attack"] == attack
    assert r["model"] == "fmnist-cnn"
    assert r["out"] == str(out)
    assert isinstance(r["success"], bool)
    for key in ("pred_clean", "pred_adv", "label"):
        assert type(r[key]) is int and 0 <= r[key] < N_CLASSES, key
    assert r["label"] == r["pred_clean"] == 0  # no --label: the clean prediction is the label
    assert r["success"] == (r["pred_clean"] != r["pred_adv"])
    assert r["class_clean"] == FASHION_MNIST_CLASSES[r["pred_clean"]]
    assert r["class_adv"] == FASHION_MNIST_CLASSES[r["pred_adv"]]
    assert 0.0 <= r["prob_clean"] <= 1.0 and 0.0 <= r["prob_adv"] <= 1.0

    m = r["measures"]
    assert set(m) == set(available_measures((1, 1, 28, 28)))
    assert {"ssim", "psnr", "l2", "linf"} <= set(m)
    assert 0.0 <= m["ssim"] <= 1.0 + 1e-6
    assert m["ssim"] < 1.0  # the image did change
    assert 0.0 < m["psnr"] <= 80.0 + 1e-3
    assert m["l2"] > 0.0
    assert 0.0 < m["linf"] <= 1.0
    assert m["l2"] >= m["linf"] - 1e-6  # ||d||_2 >= ||d||_inf

    if attack == "wdro":
        assert r["measure"] == "ssim-padded"  # the default cost
        assert isinstance(r["gamma"], float) and r["gamma"] > 0.0
        assert r["steps"] == 30
        assert 0.0 < r["cost"] <= BUDGET * (1 + BUDGET_RTOL)
        assert r["cost"] == pytest.approx(1.0 - m["ssim-padded"], abs=1e-5)  # cost is 1 - padded SSIM
    else:
        assert r["gamma"] is None
    if attack in ("pgd-linf", "fgsm"):
        assert r["measure"] == "linf"
        assert m["linf"] <= EPS_LINF + 1e-6
        assert r["cost"] == pytest.approx(m["linf"], abs=1e-6)
        assert r["steps"] == (5 if attack == "pgd-linf" else 1)
    if attack == "pgd-l2":
        assert r["measure"] == "l2"
        assert m["l2"] <= EPS_L2 * (1 + 1e-5)
        assert r["cost"] == pytest.approx(m["l2"], rel=1e-5)

    # The written PNG: 28x28 grayscale, close to the clean image, and classified as reported.
    with Image.open(out) as img:
        assert img.size == (28, 28)
        assert img.mode == "L"
    x_png = load_tensor(out, channels=1)
    assert x_png.shape == (1, 1, 28, 28)
    if attack in ("pgd-linf", "fgsm"):
        # The clean image is on the 8-bit grid and eps = 8/255, so rounding keeps the PNG in the ball.
        assert float((x_png - clean).abs().max()) <= EPS_LINF + 1e-6
    # The PNG is 8-bit: the prediction can only be relied on when the attack was confident.
    # Choice: check it when prob_adv > 0.9 (true for all four attacks on this image).
    if r["prob_adv"] > 0.9:
        with torch.no_grad():
            assert int(model(x_png).argmax(1)) == r["pred_adv"]


def test_attack_human_output(capsys, tmp_path):
    out = tmp_path / "adv.png"
    r = attack_json(capsys, tmp_path / "json.png", "--attack", "fgsm", "--eps", repr(EPS_LINF))
    code, stdout, stderr = run(capsys, *attack_argv(out, "--attack", "fgsm", "--eps", repr(EPS_LINF)))
    assert code == 0 and stderr == ""
    assert r["class_clean"] != r["class_adv"]  # so that both names are really checked
    assert r["class_clean"] in stdout and r["class_adv"] in stdout
    assert "SUCCESS" in stdout
    assert f"wrote {out}" in stdout
    assert out.is_file()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stdout)
    assert (tmp_path / "json.png").read_bytes() == out.read_bytes()  # same seed, same image


def test_attack_gamma_penalty_form(capsys, tmp_path):
    r = attack_json(capsys, tmp_path / "g.png", "--attack", "wdro", "--gamma", "5", "--steps", "20")
    assert r["measure"] == "ssim-padded"
    assert r["gamma"] == pytest.approx(5.0, rel=1e-6)  # fixed multiplier, reported as given
    assert r["steps"] == 20
    assert r["cost"] > 0.0
    assert r["cost"] == pytest.approx(1.0 - r["measures"]["ssim-padded"], abs=1e-5)
    assert r["success"] == (r["pred_adv"] != r["pred_clean"])


def test_attack_label_is_honoured(capsys, tmp_path):
    # With --label 6 (Shirt) on a T-shirt, success means "not predicted Shirt", which the clean
    # prediction already is: success is True although the prediction may not change.
    r = attack_json(capsys, tmp_path / "l.png", "--attack", "fgsm", "--eps", repr(EPS_LINF), "--label", "6")
    assert r["label"] == 6
    assert r["pred_clean"] == 0
    assert r["success"] == (r["pred_adv"] != 6)
    assert r["success"] is True
    # The attack pushed away from class 6, not from class 0: it differs from the default run.
    default = attack_json(capsys, tmp_path / "d.png", "--attack", "fgsm", "--eps", repr(EPS_LINF))
    assert default["label"] == 0
    assert (tmp_path / "l.png").read_bytes() != (tmp_path / "d.png").read_bytes()
    # --label equal to the clean prediction is the default behaviour.
    same = attack_json(capsys, tmp_path / "s.png", "--attack", "fgsm", "--eps", repr(EPS_LINF), "--label", "0")
    assert (tmp_path / "s.png").read_bytes() == (tmp_path / "d.png").read_bytes()
    assert same["success"] == default["success"] and same["pred_adv"] == default["pred_adv"]


@pytest.mark.parametrize("attack", ["pgd-linf", "wdro"])
def test_attack_seed_reproducible(capsys, tmp_path, attack):
    extra = ["--attack", attack, "--steps", "5"] + (["--gamma", "5"] if attack == "wdro" else [])
    a = attack_json(capsys, tmp_path / "a.png", *extra, "--seed", "1")
    b = attack_json(capsys, tmp_path / "b.png", *extra, "--seed", "1")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert a["measures"] == b["measures"] and a["cost"] == b["cost"]
    if attack == "pgd-linf":  # a uniform random start in the eps-ball: another seed, another image
        attack_json(capsys, tmp_path / "c.png", *extra, "--seed", "2")
        assert (tmp_path / "c.png").read_bytes() != (tmp_path / "a.png").read_bytes()


# --- errors ---------------------------------------------------------------------------------------


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "x.png"
    path.write_bytes(random.Random(0).randbytes(2048))
    return path


def _huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(7000, 7000))  # 49 megapixels > the 40 MP limit; no pixels decoded
    return path


ERRORS = {
    # name: (image factory, extra args, exit code, expected text in the one-line message)
    "missing file": (lambda p: p / "nope.png", ["--attack", "fgsm"], 1, "no such file"),
    "corrupt file": (_corrupt, ["--attack", "fgsm"], 1, "could not read the image"),
    "image too large": (_huge, ["--attack", "fgsm"], 1, "image is too large: 7000x7000"),
    "image smaller than the measure": (None, ["--attack", "wdro", "--measure", "ms_ssim"], 1,
                                       "needs images of at least 161x161 pixels, got 28x28"),
    "fsim needs RGB": (None, ["--attack", "wdro", "--measure", "fsim"], 1, "needs RGB"),
    "unknown model": (None, ["--attack", "fgsm", "--model", "nope"], 1, "unknown model 'nope'"),
    "unknown attack": (None, ["--attack", "nope"], 2, "invalid choice: 'nope'"),
    "unknown measure": (None, ["--attack", "wdro", "--measure", "nope"], 2, "invalid choice: 'nope'"),
    "eps with wdro": (None, ["--attack", "wdro", "--eps", "0.03"], 1, "eps is for pgd-linf"),
    "budget with pgd-linf": (None, ["--attack", "pgd-linf", "--budget", "0.02"], 1, "pgd-linf takes eps, not a budget"),
    "gamma with fgsm": (None, ["--attack", "fgsm", "--gamma", "1"], 1, "fgsm takes eps, not a budget, gamma"),
    "budget and gamma": (None, ["--attack", "wdro", "--budget", "0.02", "--gamma", "1"], 2, "not allowed with"),
    "negative budget": (None, ["--attack", "wdro", "--budget", "-0.1"], 1, "budget: expected a positive number"),
    "negative gamma": (None, ["--attack", "wdro", "--gamma", "-1"], 1, "gamma: expected a positive number"),
    "zero eps": (None, ["--attack", "pgd-l2", "--eps", "0"], 1, "eps: expected a positive number"),
    "nan eps": (None, ["--attack", "fgsm", "--eps", "nan"], 1, "eps: expected a positive number"),
    "zero steps": (None, ["--attack", "pgd-linf", "--steps", "0"], 2, "--steps: expected a whole number from 1 to 10,000"),
    "a billion steps": (None, ["--attack", "wdro", "--steps", "1000000000"], 2, "from 1 to 10,000, got '1000000000'"),
    "label 99": (None, ["--attack", "fgsm", "--label", "99"], 1, "--label: expected a class in [0, 10), got 99"),
    "label -1": (None, ["--attack", "fgsm", "--label", "-1"], 1, "--label: expected a class in [0, 10), got -1"),
    "non-numeric budget": (None, ["--attack", "wdro", "--budget", "abc"], 2, "invalid float value"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_attack_errors_are_one_line(capsys, tmp_path, case):
    make_image, extra, expected_code, text = ERRORS[case]
    image = make_image(tmp_path) if make_image else IMAGE
    out = tmp_path / "out.png"
    argv = attack_argv(out, image=image)
    if "--model" in extra:  # replace the default model
        i = argv.index("--model")
        del argv[i:i + 2]
    code, stdout, stderr = run(capsys, *argv, *extra, "--json")
    assert code == expected_code
    assert stdout == ""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert text in stderr
    if expected_code == 1:
        assert stderr.startswith("error: ")
    assert not out.exists()
    if case == "fsim needs RGB":
        assert "RGB" in stderr and "FSIM" in stderr


def test_unknown_device_is_one_line(capsys):
    code, stdout, stderr = run(capsys, "--device", "bogus", "models")
    assert code == 1
    assert stderr.startswith("error: ") and stderr.count("\n") == 1


def test_cuda_device_without_cuda_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, stdout, stderr = run(capsys, "--device", "cuda", "models")
    assert code == 1 and stdout == ""
    assert stderr == "error: device 'cuda' was asked for, but CUDA is not available on this machine\n"


@pytest.mark.slow
def test_subprocess_attack_exit_code_zero(tmp_path):
    out = tmp_path / "adv.png"
    proc = subprocess.run(
        [sys.executable, "-m", "core", *attack_argv(out, "--attack", "fgsm", "--eps", repr(EPS_LINF), "--json")],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["attack"] == "fgsm" and r["success"] == (r["pred_clean"] != r["pred_adv"])
    assert out.is_file()


@pytest.mark.parametrize(
    ("extra", "expected_code", "text"),
    [
        (["--attack", "fgsm", "--image", "does-not-exist.png"], 1, "error: could not read the image: no such file"),
        (["--attack", "nope", "--image", str(IMAGE)], 2, "invalid choice: 'nope'"),
    ],
    ids=["missing-file", "unknown-attack"],
)
@pytest.mark.slow
def test_subprocess_errors_are_one_line(tmp_path, extra, expected_code, text):
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "core", "attack", "--model", "fmnist-cnn", "--out", str(out), *extra],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == expected_code
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert text in proc.stderr
    assert not out.exists()


# --- listings -------------------------------------------------------------------------------------


def test_models_json(capsys):
    code, stdout, stderr = run(capsys, "models", "--json")
    assert code == 0 and stderr == ""
    rows = {r["name"]: r for r in json.loads(stdout)}
    fm = rows["fmnist-cnn"]
    assert fm["available_offline"] is True
    assert fm["input"] == "1x28x28"
    assert fm["classes"] == 10
    assert all(isinstance(r["available_offline"], bool) for r in rows.values())


def test_models_human(capsys):
    code, stdout, _ = run(capsys, "models")
    assert code == 0
    line = next(line for line in stdout.splitlines() if line.startswith("fmnist-cnn"))
    assert "offline" in line and "needs weights" not in line


def test_measures_json(capsys):
    code, stdout, stderr = run(capsys, "measures", "--json")
    assert code == 0 and stderr == ""
    rows = json.loads(stdout)
    assert [r["name"] for r in rows] == list(MEASURES)
    for r in rows:
        m = MEASURES[r["name"]]
        assert (r["label"], r["min_size"], r["needs_rgb"], r["higher_is_better"]) == (
            m.label, m.min_size, m.needs_rgb, m.higher_is_better
        )
    assert {r["name"]: r["needs_rgb"] for r in rows}["fsim"] is True


def test_no_command_is_a_usage_error(capsys):
    code, stdout, stderr = run(capsys)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "required" in stderr


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.weights])
def test_attack_command_works_on_every_bundled_model(capsys, tmp_path, name):
    out = tmp_path / f"{name}.png"
    code, stdout, stderr = run(capsys, "attack", "--model", name, "--image", str(IMAGE), "--attack", "wdro",
                               "--budget", "0.02", "--steps", "30", "--out", str(out), "--json")
    assert code == 0, stderr
    r = json.loads(stdout)
    assert r["model"] == name and r["cost"] <= 0.02 * (1 + 1e-4)
    assert 0.0 <= r["measures"]["ssim"] <= 1.0 and out.is_file()


# --- hostile inputs: refused in one line, under a measured memory bound ------------------------------

# What a refused hostile input may cost beyond a normal run of the same command (max RSS, measured
# in a fresh wrapper process whose only child is the command). Before the bounds, the 1,800,000 x 1
# image cost ~4 GB and the weights bomb ~6.5 GB.
EXTRA_RSS_MB = 150


def max_rss_mb(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``python -m core ARGV`` in a fresh wrapper; return the child's max RSS in MB and the process."""
    wrapper = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode, p.stdout, p.stderr]))")
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "core", *argv], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    rss_kb, code, out, err = json.loads(proc.stdout)
    return rss_kb / 1024, subprocess.CompletedProcess(argv, code, out, err)


@pytest.fixture(scope="module")
def reference_rss_mb(tmp_path_factory) -> float:
    out = tmp_path_factory.mktemp("ref") / "o.png"
    rss, proc = max_rss_mb(["attack", "--model", "fmnist-cnn", "--image", str(IMAGE), "--attack", "fgsm", "--eps",
                            "0.03", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return rss


def _elongated(path: Path) -> None:
    Image.new("L", (1_800_000, 1)).save(path)  # 1.8 KB on disk


def _too_wide(path: Path) -> None:
    Image.new("L", (15_000, 500)).save(path)  # 30:1, over the 20:1 aspect limit


def _huge_header(path: Path) -> None:
    path.write_bytes(png_header_only(50_000, 50_000))  # claims 2.5 gigapixels


@pytest.mark.parametrize(("make", "text"), [
    (_elongated, "error: image is too large: 1800000x1, the limit is 20000 pixels a side"),
    (_too_wide, "error: image is too elongated: 15000x500 (aspect ratio 30:1), the limit is 20:1"),
    (_huge_header, "error: image is too large (refused as a possible decompression bomb)"),
], ids=["1800000x1", "15000x500", "50000x50000-header"])
@pytest.mark.slow
def test_hostile_images_are_refused_within_a_memory_bound(tmp_path, reference_rss_mb, make, text):
    image = tmp_path / "w.png"
    make(image)
    rss, proc = max_rss_mb(["attack", "--model", "fmnist-cnn", "--image", str(image), "--attack", "wdro",
                            "--budget", "0.02", "--out", str(tmp_path / "o.png")])
    assert proc.returncode == 1 and proc.stderr.startswith(text) and proc.stderr.count("\n") == 1, proc.stderr
    assert rss < reference_rss_mb + EXTRA_RSS_MB, (rss, reference_rss_mb)


@pytest.mark.slow
def test_a_weights_zip_bomb_is_refused_without_inflating(tmp_path, reference_rss_mb):
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb/data/0", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(512):  # 512 MiB of zeros, about 0.5 MB compressed
                member.write(block)
    assert bomb.stat().st_size < 2_000_000
    rss, proc = max_rss_mb(["attack", "--model", "fmnist-cnn", "--weights", str(bomb), "--image", str(IMAGE),
                            "--attack", "fgsm", "--eps", "0.03", "--out", str(tmp_path / "o.png")])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "its members declare 536.9 MB but the archive holds" in proc.stderr and "refused without inflating" in proc.stderr
    assert rss < reference_rss_mb + EXTRA_RSS_MB, (rss, reference_rss_mb)


def test_a_csv_root_that_is_a_server_file_is_not_echoed(tmp_path, capsys):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:secret-content:/root:/bin/bash\n")
    code, out, err = run(capsys, "train", "--dataset", "csv", "--root", str(secret), "--method", "erm",
                         "--out", str(tmp_path / "run"))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "missing column(s) path, label, group" in err and "secret-content" not in err and "root:x" not in err


def test_train_says_loudly_when_it_falls_back_to_the_bundled_images(capsys, monkeypatch, tmp_path):
    """Without the full Fashion-MNIST (no download, no Debian package) training runs on 1,200 images: stderr says so."""
    import core.data.fashion_mnist

    monkeypatch.setattr(core.data.fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("PDRO_DATA", str(tmp_path / "no-download"))
    code, out, err = run(capsys, "train", "--dataset", "fmnist-groups", "--method", "erm", "--epochs", "1",
                         "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0
    assert "NOTE: the full Fashion-MNIST training set was not found" in err and "download_fashion_mnist()" in err
    code, out, err = run(capsys, "train", "--dataset", "fmnist-groups", "--method", "erm", "--epochs", "1",
                         "--data-option", "source=bundled", "--out", str(tmp_path / "run2"), "--quiet")
    assert code == 0 and "NOTE" not in err  # asked for: no notice


@pytest.mark.parametrize("make, text", [
    (lambda p: p.write_text("notes"), "it exists (pass --force to replace it)"),
    (lambda p: p.mkdir(), "it is a folder, not a regular file"),
    (lambda p: os.mkfifo(p), "it is a FIFO, not a regular file"),
    (lambda p: [(p.parent / "target.txt").write_text("notes"), p.symlink_to(p.parent / "target.txt")],
     "it is a symbolic link, not a regular file"),
])
def test_attack_never_replaces_what_it_was_not_asked_to(capsys, tmp_path, make, text):
    out = tmp_path / "out.png"
    make(out)
    before = sorted((p.name, p.is_symlink(), p.is_dir()) for p in tmp_path.iterdir())
    code, stdout, stderr = run(capsys, *attack_argv(out, "--attack", "fgsm", "--eps", "0.03"))
    assert code == 1 and stdout == "" and stderr.count("\n") == 1 and text in stderr, stderr
    assert sorted((p.name, p.is_symlink(), p.is_dir()) for p in tmp_path.iterdir()) == before
    if text.startswith("it exists"):
        assert out.read_text() == "notes"
        code, _, stderr = run(capsys, *attack_argv(out, "--attack", "fgsm", "--eps", "0.03", "--force"))
        assert code == 0, stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # replaced on request
    else:  # --force replaces a regular file only: a folder, a FIFO, a link stay refused
        code, _, stderr = run(capsys, *attack_argv(out, "--attack", "fgsm", "--eps", "0.03", "--force"))
        assert code == 1 and text in stderr
        if out.is_symlink():
            assert (tmp_path / "target.txt").read_text() == "notes"


def test_train_refuses_a_folder_that_holds_a_run_and_leaves_no_folder_when_it_fails(capsys, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"a run of last week")
    argv = ["train", "--method", "erm", "--epochs", "1", "--data-option", "source=bundled", "--quiet"]
    code, _, err = run(capsys, *argv, "--out", str(run_dir))
    assert code == 1 and err.count("\n") == 1 and "holds model.pt (pass --resume" in err
    assert (run_dir / "model.pt").read_bytes() == b"a run of last week"
    import core.training.loop

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 36000000000 bytes.")

    monkeypatch.setattr(core.training.loop, "build_classifier", no_memory)  # fails after the folder check
    fresh = tmp_path / "never-written"
    code, _, err = run(capsys, *argv, "--out", str(fresh))
    assert code == 1 and err.count("\n") == 1 and "not enough memory" in err and not fresh.exists()


@pytest.mark.parametrize("argv, text", [
    (["fairness", "--model", "fmnist-cnn", "--bootstrap", "1000000000"], "--bootstrap: expected a whole number from 0 to 100,000"),
    (["evaluate", "--model", "fmnist-cnn", "--batch-size", "0"], "--batch-size: expected a whole number from 1 to 4,096"),
    (["train", "--method", "erm", "--width", "1000000", "--out", "OUT"], "--width: expected a whole number from 1 to 256"),
    (["train", "--method", "erm", "--epochs", "0", "--out", "OUT"], "--epochs: expected a whole number from 1 to 1,000"),
    (["evaluate", "--model", "fmnist-cnn", "--n", "many"], "--n: expected a whole number from 1 to 60,000, got 'many'"),
])
def test_every_count_is_bounded_with_one_line(capsys, tmp_path, argv, text):
    argv = [str(tmp_path / "run") if a == "OUT" else a for a in argv]
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1 and text in stderr, stderr
    assert not (tmp_path / "run").exists()  # nothing left behind


@pytest.mark.slow
def test_the_command_the_bundled_notice_prints_imports(capsys, monkeypatch, tmp_path):
    """The notice's command runs as printed up to the download itself (which needs a network): its import works."""
    import re as _re

    from core.data import BUNDLED_NOTICE

    code = _re.search(r'python -c "(.+?)"', BUNDLED_NOTICE.replace('\\"', '"')).group(1)
    imports = code.split(";")[0]
    assert imports.startswith("from core.data import download_fashion_mnist")
    proc = subprocess.run([sys.executable, "-c", imports], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr


def test_metric_is_a_deprecated_alias_of_measure(capsys, tmp_path):
    code, stdout, stderr = run(capsys, *attack_argv(tmp_path / "o.png", "--attack", "wdro", "--metric", "ssim",
                                                    "--steps", "3", "--json"))
    assert code == 0 and json.loads(stdout)["measure"] == "ssim"
    assert stderr.strip() == "note: --metric is now --measure (the old name works until the next release)"


def test_jtt_on_the_shortcut_data_set_from_the_command_line(capsys, tmp_path):
    """The shortcut data set trains without flips (a mirror moves its cue) and JTT runs like any method."""
    out = tmp_path / "jtt"
    code, stdout, stderr = run(capsys, "train", "--dataset", "fmnist-shortcut", "--method", "jtt", "--epochs", "1",
                               "--jtt-epochs", "1", "--jtt-upweight", "5", "--width", "8",
                               "--data-option", "source=bundled", "--out", str(out))
    assert code == 0, stderr
    assert "no random flips: a mirror moves fmnist-shortcut's cue" in stdout
    info = json.loads((out / "train.json").read_text())
    assert info["config"]["method"] == "jtt" and info["config"]["flip"] is False
    assert info["config"]["jtt_upweight"] == 5.0 and list(info["history"][0]["val"]["by_group"]) == ["aligned",
                                                                                                    "conflicting"]
    code, stdout, stderr = run(capsys, "fairness", "--dataset", "fmnist-shortcut", "--data-option", "source=bundled",
                               "--model", str(out), "--bootstrap", "0", "--json")
    assert code == 0, stderr
    assert set(json.loads(stdout)[0]["by_group"]) == {"aligned", "conflicting"}
