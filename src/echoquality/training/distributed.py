"""DistributedDataParallel plumbing for ``torchrun`` (WORLD_SIZE > 1); no-ops on one process.

Rank 0 alone logs and writes files; the helpers here keep the other ranks in step with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Dist:
    """This process's place in a distributed run (world size 1: not distributed)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPU); Dist() otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    d = Dist(world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    return d


def training_device(device_name: str, d: Dist) -> Any:
    """This rank's GPU under torchrun, else ``resolve_device(device_name)``."""
    import torch

    from echoquality.model import resolve_device

    if d.enabled and torch.cuda.is_available() and device_name != "cpu":
        return torch.device(f"cuda:{d.local_rank}")
    return resolve_device(device_name)


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch

        torch.distributed.barrier()


def all_reduce_sum(tensor: Any, d: Dist) -> None:
    """Sum *tensor* over all ranks, in place."""
    if d.enabled:
        import torch

        torch.distributed.all_reduce(tensor)


def broadcast_float(value: float, d: Dist, device: Any) -> float:
    """Rank 0's *value* on every rank."""
    if not d.enabled:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return float(t[0])


def wrap_model(model: Any, device: Any, d: Dist) -> Any:
    """The module the training step calls: DDP-wrapped under torchrun, else *model* itself."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shutdown(d: Dist) -> None:
    if d.enabled:
        import torch

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
