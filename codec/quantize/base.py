"""Types shared by every quantizer: the interface (:class:`Quantizer`), the result of a forward pass
and per-stage usage statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch


class QuantizerOutput(NamedTuple):
    """What a residual quantizer returns; the fields never change with flags.

    quantized: [B, D, F] quantized latent (the decoder's input).
    codes: [B, K, F] int64 code indices of the stages computed (K = all stages in training,
        the requested number in eval).
    aux_loss: scalar; the STE baseline's weighted commitment + codebook losses, 0 for DiVeQ/SF-DiVeQ.
    n_codebooks: [B] int64, stages each item used (quantizer dropout varies it in training).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    aux_loss: torch.Tensor
    n_codebooks: torch.Tensor


class StageOutput(NamedTuple):
    """What one codebook stage returns for rows z [N, d].

    reparam: [N, d] the reparameterised output (DiVeQ / SF-DiVeQ; forward value ~ ``point``) with
        gradients to z and the codebook; in eval mode equal to ``point``.
    point: [N, d] the point quantized to (a codeword, or SF-DiVeQ's dithered point on a segment),
        with the codebook's gradient only.
    codes: [N] int64 code indices.
    """

    reparam: torch.Tensor
    point: torch.Tensor
    codes: torch.Tensor


@dataclass(frozen=True)
class StageUsage:
    """Codebook use of one stage since the last reset: share of codes used and perplexity."""

    stage: int
    usage: float
    perplexity: float
    count: int


def usage_from_counts(stage: int, counts: torch.Tensor) -> StageUsage:
    """StageUsage from selection counts [codebook_size] (one host transfer): usage = share of codes
    selected at least once, perplexity = exp(entropy of the selection frequencies). The one place
    the project computes them."""
    counts = counts.detach().double().cpu()
    total = float(counts.sum())
    if total == 0:
        return StageUsage(stage, 0.0, 0.0, 0)
    p = counts / total
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return StageUsage(stage, float((counts > 0).double().mean()), math.exp(entropy), int(total))


def usage_from_codes(codes: torch.Tensor, codebook_size: int) -> list[StageUsage]:
    """StageUsage of each stage of codes ``[K, N]`` (any N codes per stage)."""
    codes = codes.detach().cpu()
    return [usage_from_counts(k, torch.bincount(codes[k].reshape(-1), minlength=codebook_size))
            for k in range(codes.shape[0])]


@runtime_checkable
class Quantizer(Protocol):
    """What every residual quantizer offers (an ``nn.Module``); codes are ``[B, K, F]`` int64, latents
    ``[B, D, F]``.

    n_codebooks: the stages it has (K at most). codebook_size: codes per stage.
    ``__call__(latent, n_codebooks=None)``: the forward pass (quantizer dropout in training when
    ``n_codebooks`` is None). ``encode`` / ``decode``: latent <-> codes of the first n stages.
    ``usage_stats`` / ``reset_usage``: codebook use in training since the last reset.
    """

    n_codebooks: int
    codebook_size: int

    def __call__(self, latent: torch.Tensor, n_codebooks: int | None = None) -> QuantizerOutput: ...

    def encode(self, latent: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...

    def usage_stats(self) -> list[StageUsage]: ...

    def reset_usage(self) -> None: ...
