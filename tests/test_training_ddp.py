"""DDP: two CPU processes (gloo, file rendezvous) train the same tiny run and end with identical weights."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp

from core.data import GroupDataset, load_group_dataset
from core.training import TrainConfig, train_model

pytestmark = pytest.mark.slow  # real processes: skipped by `pytest -m "not slow"`


def _worker(rank: int, world: int, init_file: str, out: str, method: str) -> None:
    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        data = load_group_dataset("fmnist-groups", "train", source="bundled", minority_fraction=0.25)
        keep = slice(0, 64)
        tiny = GroupDataset(name=data.name, split="train", x=data.x[keep], y=data.y[keep], g=data.g[keep],
                            classes=data.classes, groups=data.groups, description="tiny", source=data.source)
        cfg = TrainConfig(method=method, epochs=2, batch_size=16, width=4)
        result = train_model(None, tiny, cfg=cfg)
        torch.save({"model": result.model.state_dict(), "history": [h.to_dict() for h in result.history]}, f"{out}/rank{rank}.pt")
    finally:
        td.destroy_process_group()


def test_two_ranks_end_with_identical_weights(tmp_path):
    for method in ("wdro", "group-dro"):
        folder = tmp_path / method
        folder.mkdir()
        mp.spawn(_worker, args=(2, str(folder / "init"), str(folder), method), nprocs=2, join=True)
        a = torch.load(folder / "rank0.pt", weights_only=True)
        b = torch.load(folder / "rank1.pt", weights_only=True)
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        # the epoch statistics are all-reduced: both ranks report the same loss and q
        assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
        if method == "group-dro":
            assert a["history"][-1]["q"] == b["history"][-1]["q"]
        else:
            assert a["history"][-1]["gamma"] == b["history"][-1]["gamma"]
