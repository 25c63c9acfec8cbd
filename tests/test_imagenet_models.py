"""The torchvision ImageNet entries of the model registry: labels, the hub cache, offline errors.

No test touches the network or the real torch hub cache: ``torch.hub.get_dir`` points at a
temporary folder and the download (``torch.hub.download_url_to_file``) fails at once.
"""

from __future__ import annotations

import json

from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from core.compat import torchvision
from core.models import IMAGENET_MODELS, MODELS, Normalized, hub_weights_path, load_model

RESNET18_FILE = "resnet18-f37072fd.pth"
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
EXPECTED = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
    "mobilenet_v3_large": "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
    "efficientnet_b0": "EfficientNet_B0_Weights.IMAGENET1K_V1",
    "convnext_tiny": "ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
    "vit_b_16": "ViT_B_16_Weights.IMAGENET1K_V1",
}


@pytest.fixture
def hub(tmp_path, monkeypatch) -> dict:
    """An empty torch hub cache under tmp_path, and a download that fails without touching the network."""
    hub_dir = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    calls: list[str] = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        raise URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return {"checkpoints": hub_dir / "checkpoints", "calls": calls}


def _save_resnet18(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_the_six_entries_are_registered(hub):
    assert set(IMAGENET_MODELS) == set(EXPECTED)
    for name, weights in EXPECTED.items():
        spec = MODELS[name]
        assert spec.torchvision_weights == weights
        assert spec.weights is None  # not a bundled file: train-bundled does not list it
        assert len(spec.labels) == 1000
        assert spec.labels[0] == "tench" and spec.labels[-1] == "toilet tissue"
        assert spec.channels == 3 and spec.input_size == 224
        assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
        url = torchvision.models.get_weight(weights).url
        assert spec.weights_path == hub["checkpoints"] / url.rsplit("/", 1)[-1]
        assert spec.available_offline() is False
    assert MODELS["resnet18"].weights_path == hub["checkpoints"] / RESNET18_FILE
    assert hub["calls"] == []  # asking is not downloading


def test_empty_cache_is_a_clear_value_error(hub):
    with pytest.raises(ValueError) as info:
        load_model("resnet18")
    message = str(info.value)
    assert message.startswith("no weights for model 'resnet18': the file resnet18-f37072fd.pth ")
    assert RESNET18_URL in message
    assert f"put it in the folder {hub['checkpoints']}," in message
    assert "URLError" in message and "weights=PATH" in message
    assert "\n" not in message
    assert hub["calls"] == [RESNET18_URL]  # the download was tried once, and failed
    assert not (hub["checkpoints"] / RESNET18_FILE).exists()


def test_cached_weight_file_is_loaded(hub):
    state = _save_resnet18(hub["checkpoints"] / RESNET18_FILE)
    spec = MODELS["resnet18"]
    assert spec.available_offline() is True
    model = load_model("resnet18")
    assert hub["calls"] == []  # no download when the file is cached
    assert isinstance(model, Normalized)
    assert not any(m.training for m in model.modules())
    loaded = model.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(model.mean.flatten(), torch.tensor(spec.mean))
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        logits = model(x)
        expected = model.model((x - model.mean) / model.std)
    assert logits.shape == (1, 1000)
    assert bool(torch.isfinite(logits).all())
    assert torch.equal(logits, expected)


def test_explicit_weight_file_from_another_folder(hub, tmp_path):
    path = tmp_path / "elsewhere" / "my-resnet18.pt"
    state = _save_resnet18(path)
    model = load_model("resnet18", weights=path)
    assert hub["calls"] == [] and MODELS["resnet18"].available_offline() is False
    for key, value in state.items():
        assert torch.equal(model.model.state_dict()[key], value), key


def test_a_successful_download_is_loaded_from_the_cache(hub, monkeypatch):
    """torchvision's download writes the hub cache file; load_model then reads that file."""
    saved = {}

    def download(url, dst, hash_prefix=None, progress=True):
        assert url == RESNET18_URL and hash_prefix == "f37072fd" and progress is False
        assert Path(dst) == hub["checkpoints"] / RESNET18_FILE
        saved.update(_save_resnet18(Path(dst)))

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    model = load_model("resnet18")
    assert saved and all(torch.equal(model.model.state_dict()[k], v) for k, v in saved.items())
    assert MODELS["resnet18"].available_offline() is True


def test_corrupt_cached_file_is_a_clear_value_error(hub):
    path = hub["checkpoints"] / RESNET18_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint" * 64)
    with pytest.raises(ValueError) as info:
        load_model("resnet18")
    message = str(info.value)
    assert message.startswith(f"could not load weights for model 'resnet18' from {path}: ")
    assert "\n" not in message
    assert hub["calls"] == []  # a present file is never replaced by a download


def test_cached_file_of_another_architecture_is_a_clear_value_error(hub):
    path = hub["checkpoints"] / RESNET18_FILE
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"could not load weights for model 'resnet18' from .*: RuntimeError"):
        load_model("resnet18")


def test_mobilenet_random_weights_forward(hub):
    model = load_model("mobilenet_v3_large", pretrained=False)
    assert hub["calls"] == []
    assert not model.training
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 224, 224))
    assert logits.shape == (2, 1000) and bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_architecture_matches_its_weights(name):
    """The bare architecture has exactly the parameter count torchvision records for the weights."""
    spec = MODELS[name]
    net = spec.build()
    meta = torchvision.models.get_weight(spec.torchvision_weights).meta
    assert sum(p.numel() for p in net.parameters()) == meta["num_params"]


def test_hub_weights_path_follows_torch_hub_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "x"))
    assert hub_weights_path("ResNet18_Weights.IMAGENET1K_V1") == tmp_path / "x" / "checkpoints" / RESNET18_FILE


def test_attack_command_with_a_local_weight_file(hub, tmp_path, capsys):
    """`--weights` gives the command line an ImageNet model offline; without it, one clear line."""
    from core.cli import main

    weights = tmp_path / "my-resnet18.pt"
    _save_resnet18(weights)
    photo = Path(__file__).resolve().parent.parent / "assets" / "gallery" / "photos" / "chelsea.jpg"
    out = tmp_path / "adv.png"
    code = main(["attack", "--model", "resnet18", "--weights", str(weights), "--image", str(photo),
                 "--attack", "fgsm", "--eps", "0.01", "--out", str(out), "--json"])
    assert code == 0 and out.is_file()
    assert json.loads(capsys.readouterr().out)["measures"]["linf"] <= 0.01 + 1e-6
    code = main(["attack", "--model", "resnet18", "--image", str(photo), "--attack", "fgsm", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--weights PATH" in err and RESNET18_FILE in err
