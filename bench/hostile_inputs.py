"""Hostile inputs against the command line, each in a fresh process: how it ends and what it costs in memory.

    python -m bench.hostile_inputs            # prints a markdown table (about 1 minute on 2 CPU cores)

Every case runs ``python -m core ...`` as a child of a fresh wrapper process and reports the
child's exit code, the first line of its stderr, its peak resident memory (``ru_maxrss``) and
its wall time. "Clear message" means a non-zero exit code (1, or 2 for a bad argument) with a
single line on stderr and no traceback; a refused command that changed any file of the work
folder (replaced, created or left a folder) is flagged. The app uses
the same loaders, so the same limits hold there (tests/test_app.py, tests/test_browser.py).
The last rows train two seeded models in two threads of one process and compare them with a
solo run, bitwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "assets" / "gallery" / "fashion_mnist" / "00035_t-shirt-top.png"
WRAPPER = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode, p.stderr]))")


def run_cli(*argv: str) -> tuple[float, int, str]:
    """(peak RSS in MB, exit code, stderr) of ``python -m core ARGV`` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "core", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    rss_kb, code, err = json.loads(proc.stdout)
    return rss_kb / 1024, code, err


def verdict(code: int, err: str) -> str:
    if code == 0:
        return "ran"
    if "Traceback" in err:
        return "traceback"
    return "clear message" if err.count("\n") == 1 else f"{err.count(chr(10))} lines"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pdro-hostile-"))
    out = str(work / "o.png")
    attack = ["attack", "--model", "fmnist-cnn", "--attack", "wdro", "--budget", "0.02", "--out", out, "--force"]
    cases: list[tuple[str, list[str]]] = []

    cases.append(("a gallery image (reference)", [*attack, "--image", str(IMAGE)]))
    Image.new("L", (1_800_000, 1)).save(work / "long.png")
    cases.append(("1,800,000 x 1 PNG (1.8 KB)", [*attack, "--image", str(work / "long.png")]))
    Image.new("L", (15_000, 500)).save(work / "wide.png")
    cases.append(("15,000 x 500 PNG (30:1)", [*attack, "--image", str(work / "wide.png")]))
    header = work / "huge.png"
    header.write_bytes(_png_header(50_000, 50_000))
    cases.append(("PNG header claiming 50,000 x 50,000", [*attack, "--image", str(header)]))
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(6300), np.arange(6300)) % 256  # 39.7 megapixels, just under the limit
    Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], axis=-1).astype(np.uint8)).save(work / "big.png")
    cases.append(("6,300 x 6,300 RGB PNG (the largest accepted)", [*attack, "--image", str(work / "big.png")]))
    side = 6300
    Image.new("I;16", (side, side), 3000).save(work / "grey16.png")
    Image.fromarray(np.full((side, side), 0.5, np.float32)).save(work / "float.tiff", compression="tiff_deflate")
    Image.fromarray(np.full((side, side), 7, np.int32)).save(work / "int.tiff", compression="tiff_deflate")
    Image.new("RGBA", (side, side), (1, 2, 3, 100)).save(work / "rgba.png")
    for name, label in (("grey16.png", "16-bit grey PNG"), ("float.tiff", "float32 TIFF"), ("int.tiff", "int32 TIFF"),
                        ("rgba.png", "RGBA PNG")):
        size = (work / name).stat().st_size / 1e3
        cases.append((f"6,300 x 6,300 {label} ({size:.0f} KB)", [*attack, "--image", str(work / name)]))
    Image.fromarray(np.full((3160, 3160), 0.5, np.float32)).save(work / "float-max.tiff", compression="tiff_deflate")
    cases.append(("3,160 x 3,160 float32 TIFF (the largest float accepted)", [*attack, "--image", str(work / "float-max.tiff")]))
    inner = _png_header(9400, 9400)
    ico = (b"\x00\x00\x01\x00\x01\x00" + bytes([0, 0, 0, 0]) + (1).to_bytes(2, "little") + (32).to_bytes(2, "little")
           + len(inner).to_bytes(4, "little") + (22).to_bytes(4, "little") + inner)
    (work / "icon.png").write_bytes(ico)
    cases.append(("ICO saying 256 x 256, holding a 9,400 x 9,400 PNG", [*attack, "--image", str(work / "icon.png")]))

    bomb = work / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb/data/0", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(3 * 1024):  # 3 GiB of zeros
                member.write(block)
    fgsm = ["attack", "--model", "fmnist-cnn", "--attack", "fgsm", "--eps", "0.03", "--image", str(IMAGE), "--out", out, "--force"]
    cases.append((f"weights: zip bomb, 3 GiB member in {bomb.stat().st_size / 1e6:.1f} MB", [*fgsm, "--weights", str(bomb)]))
    (work / "random.pt").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases.append(("weights: 4 KB of random bytes", [*fgsm, "--weights", str(work / "random.pt")]))

    passwd = work / "passwd"
    passwd.write_text("root:x:0:0:SECRET-LINE:/root:/bin/bash\n")
    train = ["train", "--method", "erm", "--epochs", "1", "--out", str(work / "run")]
    cases.append(("train: a server file as the CSV root", [*train, "--dataset", "csv", "--root", str(passwd)]))
    data = work / "data"
    (data / "imgs").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i,) * 3).save(data / "imgs" / f"{i}.png")
    rows = [f"imgs/{i}.png,{i % 2},{i % 2},train" for i in range(4)] + ["../passwd,0,1,train"]
    (data / "metadata.csv").write_text("path,label,group,split\n" + "\n".join(rows) + "\n")
    cases.append(("train: a CSV row '../passwd'", [*train, "--dataset", "csv", "--root", str(data)]))
    (work / "file").write_text("x")
    cases.append(("train: output folder under a file (unwritable)",
                  ["train", "--method", "erm", "--epochs", "1", "--out", str(work / "file" / "run")]))
    (work / "notes.txt").write_text("my notes\n")
    fgsm_to = ["attack", "--model", "fmnist-cnn", "--attack", "fgsm", "--eps", "0.03", "--image", str(IMAGE), "--out"]
    cases.append(("attack --out: an existing text file", [*fgsm_to, str(work / "notes.txt")]))
    os.mkfifo(work / "fifo")
    cases.append(("attack --out: a FIFO, with --force", [*fgsm_to, str(work / "fifo"), "--force"]))
    (work / "link.png").symlink_to(work / "notes.txt")
    cases.append(("attack --out: a symbolic link to a file", [*fgsm_to, str(work / "link.png"), "--force"]))
    cases.append(("fairness --bootstrap 1,000,000,000", ["fairness", "--model", "fmnist-cnn", "--bootstrap", "1000000000"]))
    cases.append(("attack --steps 1,000,000,000", [*attack, "--image", str(IMAGE), "--steps", "1000000000"]))
    cases.append(("evaluate --batch-size 0", ["evaluate", "--model", "fmnist-cnn", "--batch-size", "0"]))
    cases.append(("train --width 1,000,000", ["train", "--method", "erm", "--width", "1000000", "--out", str(work / "wide")]))

    print("| input | ended | peak RSS (MB) | seconds | first line of stderr |")
    print("| --- | --- | --- | --- | --- |")
    for name, argv in cases:
        before = _listing(work)
        start = time.perf_counter()
        rss, code, err = run_cli(*argv)
        seconds = time.perf_counter() - start
        first = (err.strip().splitlines() or [""])[0].replace(str(work), "<tmp>").replace("|", "\\|")
        leaked = " **(file content shown)**" if "SECRET-LINE" in err else ""
        changed = "" if code == 0 or _listing(work) == before else " **(files changed)**"
        print(f"| {name} | {verdict(code, err)}{leaked}{changed} | {rss:.0f} | {seconds:.1f} | {first[:150]} |")
    print()
    print(concurrent_vs_solo())
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    print("\nServer configuration in force (.streamlit/config.toml):",
          ", ".join(f"{section}.{k} = {v!r}" for section, values in config.items() for k, v in values.items()))


def _listing(folder: Path) -> list[tuple[str, str, int, float]]:
    """Every entry under ``folder``: name, kind, size, modification time (what a refused command must leave)."""
    entries = []
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        entries.append((str(path.relative_to(folder)), kind, st.st_size, st.st_mtime))
    return entries


def concurrent_vs_solo() -> str:
    """Two seeded W-DRO trainings in two threads against one alone: equal weights, bitwise?"""
    import torch

    from core.data import load_group_dataset
    from core.training import TrainConfig, train_model

    data = load_group_dataset("fmnist-groups", "train", source="bundled")
    cfg = TrainConfig(method="wdro", epochs=1, batch_size=64, width=8)
    solo = train_model(None, data, cfg=cfg).model.state_dict()
    results: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, train_model(None, data, cfg=cfg).model.state_dict()))
               for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = all(all(torch.equal(solo[n], results[k][n]) for n in solo) for k in range(2))
    return (f"Concurrent vs solo training (fast W-DRO, 1 epoch on the {len(data)} bundled training images, two threads): "
            f"{'bitwise equal' if same else 'DIFFERENT'}")


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


if __name__ == "__main__":
    main()
