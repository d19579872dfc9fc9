"""Machinery every learned codebook stage shares: data-driven initialisation, usage counters,
a buffer of recent inputs, and rank-0-decides-then-broadcast under torch.distributed.

All counters live in buffers (so they are in the state dict and on the model's device) and advance
only in training mode. Nothing here synchronises with the GPU on a normal step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .base import StageUsage, usage_from_counts


def distributed_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class CodebookStage(nn.Module):
    """Base of DiVeQ and SF-DiVeQ stages: one codebook of ``n_vectors`` rows of ``dim`` values.

    Subclasses implement ``_init_from(frames)`` (set the codebook from input frames), ``encode`` and
    ``decode``, and the training forward.

    Args:
        n_vectors: rows of the codebook parameter.
        codebook_size: number of codes the stage transmits (usage statistics are over these).
        dim: dimension of the vectors.
        buffer_size: how many recent input frames to keep (for restarts and warm-up).
    """

    # buffers (registered in __init__)
    initialized: torch.Tensor
    step: torch.Tensor
    usage_counts: torch.Tensor
    interval_counts: torch.Tensor
    frames: torch.Tensor
    frames_filled: torch.Tensor

    def __init__(self, n_vectors: int, codebook_size: int, dim: int, buffer_size: int = 4096) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.codebook = nn.Parameter(torch.rand(n_vectors, dim) / n_vectors)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("usage_counts", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("interval_counts", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("frames", torch.zeros(buffer_size, dim))
        self.register_buffer("frames_filled", torch.zeros((), dtype=torch.long))
        # host-side mirrors of buffers read every step, so a step never waits for the GPU
        self._frames_ptr = 0
        self._host_step = 0
        self._host_initialized = False

    # ---- statistics -------------------------------------------------------------------------
    def _count(self, idx: torch.Tensor) -> None:
        """Add selections [N] (only rows that really used this stage) to the counters."""
        counts = torch.bincount(idx, minlength=self.codebook_size)[: self.codebook_size]
        self.usage_counts += counts
        self.interval_counts += counts

    def usage(self, stage: int = 0) -> StageUsage:
        return usage_from_counts(stage, self.usage_counts)

    def reset_usage(self) -> None:
        self.usage_counts.zero_()

    # ---- recent frames ----------------------------------------------------------------------
    @torch.no_grad()
    def _remember(self, z: torch.Tensor, max_rows: int = 512) -> None:
        """Push up to ``max_rows`` frames [N, d] of z into the ring buffer, keeping their order."""
        size = self.frames.shape[0]
        if z.shape[0] > max_rows:
            start = int(torch.randint(0, z.shape[0] - max_rows + 1, ()))
            z = z[start:start + max_rows]
        n = min(z.shape[0], size)
        pos = torch.arange(self._frames_ptr, self._frames_ptr + n, device=z.device) % size
        self.frames[pos] = z[-n:].detach().to(self.frames.dtype)
        self._frames_ptr = (self._frames_ptr + n) % size
        self.frames_filled.clamp_(max=size - n).add_(n)

    def _recent_frames(self) -> torch.Tensor:
        """[M, d] buffered frames in arrival order (oldest first)."""
        filled = int(self.frames_filled)
        size = self.frames.shape[0]
        if filled < size:
            return self.frames[:filled]
        return torch.roll(self.frames, -self._frames_ptr, dims=0)

    # ---- initialisation and broadcast -------------------------------------------------------
    @torch.no_grad()
    def _broadcast_codebook(self) -> None:
        if distributed_ready():
            dist.broadcast(self.codebook.data, src=0)

    @torch.no_grad()
    def initialize(self, frames: torch.Tensor) -> None:
        """Set the codebook from input frames [N, d] (rank 0 decides, every rank gets it)."""
        if not distributed_ready() or dist.get_rank() == 0:
            self._init_from(frames.detach().float())
        self._broadcast_codebook()
        self.interval_counts.zero_()
        self.initialized.fill_(True)
        self._host_initialized = True

    def _advance(self) -> int:
        """Count one training step; returns the step number before it."""
        step = self._host_step
        self._host_step += 1
        self.step += 1
        return step

    def _init_from(self, frames: torch.Tensor) -> None:
        raise NotImplementedError

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Rows z [N, d] -> codes [N] int64 (subclasses)."""
        raise NotImplementedError

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """Codes [N] -> the points they stand for [N, d] (subclasses)."""
        raise NotImplementedError

    def codewords(self) -> torch.Tensor:
        """[size, d]: the point every code stands for, ``decode`` of every index; subclasses whose
        decode is a row lookup return the table itself (no index tensor, so an exported graph folds it
        to a constant)."""
        return self.decode(torch.arange(self.codebook_size, device=self.codebook.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        filled = state_dict.get(prefix + "frames_filled")
        if filled is not None:
            self._frames_ptr = int(filled) % self.frames.shape[0]
        if prefix + "step" in state_dict:
            self._host_step = int(state_dict[prefix + "step"])
        if prefix + "initialized" in state_dict:
            self._host_initialized = bool(state_dict[prefix + "initialized"])


def sample_rows(frames: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n rows drawn from frames [M, d] (without replacement when M >= n), plus tiny noise on repeats."""
    m = frames.shape[0]
    if m >= n:
        idx = torch.randperm(m, device=frames.device, generator=generator)[:n]
        return frames[idx].clone()
    idx = torch.randint(0, m, (n,), device=frames.device, generator=generator)
    out = frames[idx].clone()
    scale = frames.std().clamp_min(1e-6) * 1e-2
    return out + scale * torch.randn(out.shape, device=frames.device, generator=generator)
