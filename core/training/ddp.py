"""The process group of a ``torchrun`` run (one process: a no-op)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Dist:
        import torch.distributed as td

        if td.is_available() and td.is_initialized():
            return cls(td.get_rank(), td.get_world_size())
        return cls()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce sum (a new tensor; identity on one process). CPU tensors go through the backend's device."""
        if self.world == 1:
            return t
        import torch.distributed as td

        backend = td.get_backend()
        work = t.clone()
        if backend == "nccl":
            work = work.cuda()
        td.all_reduce(work)
        return work.to(t.device)
