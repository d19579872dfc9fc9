"""Multi-process training: torchrun environment, DDP wrapping, small collective helpers.

Launch with ``torchrun --nproc_per_node N $(which diveq-codec) train RECIPE --out RUN_DIR`` (NCCL on
GPUs, one device per process) or on CPU (gloo). Without torchrun's variables everything here is a
no-op for a single process. (Tests spawn local processes with ``tests/support.py:launch_local``.)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``; ``device`` it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK).

    ``device`` is the requested device; on CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown(info: DistInfo, synchronize: bool = True) -> None:
    """Leave the process group (if this module joined one).

    synchronize: wait at a barrier first, so no rank tears down its communication threads while a
    peer still talks to it (gloo may abort the process otherwise). Pass False after an error: a
    failed peer would never reach the barrier.
    """
    if not (info.enabled and dist.is_initialized()):
        return
    if synchronize:
        dist.barrier()
    dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when running multi-process, else unchanged.

    ``find_unused_parameters`` is on: quantizer dropout and SF-DiVeQ warm-up leave some stages
    without gradients in some steps.
    """
    if not info.enabled:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``values`` ([N] float) over all processes (identity for one process)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every process (e.g. the wall-clock stop decision)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0.5)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` in rank order (only used for our own in-memory RNG states)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
