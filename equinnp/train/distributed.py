"""Data-parallel training under ``torchrun``: process group, gradient averaging, rank-0 helpers.

Each process computes the loss of its shard of every batch
(``DistributedSampler``) and the gradients are averaged over processes with
one ``all_reduce`` per step, which is what ``DistributedDataParallel`` computes;
doing it by hand keeps the double backward of the force loss free of DDP's
bucket hooks. Parameters and buffers are broadcast from rank 0 at the start.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "setup_distributed"]


class DistributedContext:
    """Rank, world size and device of this process."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, device: torch.device = torch.device("cpu"), initialized_here: bool = False):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = device
        self.initialized_here = initialized_here

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over processes (one flattened all_reduce)."""
        if not self.enabled:
            return
        params = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])  # [P]
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if not self.enabled:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def any_flag(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (e.g. a time limit reached on rank 0)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def maximum(self, value: float) -> float:
        """The largest ``value`` over processes (e.g. a duration measured by each)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def gather_objects(self, obj):
        """A list with every process's ``obj`` (on every process)."""
        if not self.enabled:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("training.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
        return torch.device(f"cuda:{local_rank}")
    return torch.device(requested)


def setup_distributed(requested_device: str = "auto") -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (if any).

    ``WORLD_SIZE`` > 1 starts ``torch.distributed`` with nccl on GPUs and gloo
    on CPUs; otherwise a single-process context is returned.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(requested_device, local_rank)
    if world_size <= 1:
        return DistributedContext(device=device)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    return DistributedContext(rank, world_size, local_rank, device, initialized_here)
