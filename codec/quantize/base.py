"""Types shared by every quantizer: the result of a forward pass and per-stage usage statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


class QuantizerOutput(NamedTuple):
    """What a residual quantizer returns; the fields never change with flags.

    quantized: [B, D, T] quantized latent (the decoder's input).
    codes: [B, K, T] int64 code indices of the stages computed (K = all stages in training,
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
    """StageUsage from selection counts [codebook_size] (one host transfer)."""
    counts = counts.detach().double().cpu()
    total = float(counts.sum())
    if total == 0:
        return StageUsage(stage, 0.0, 0.0, 0)
    p = counts / total
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return StageUsage(stage, float((counts > 0).double().mean()), float(torch.tensor(entropy).exp()),
                      int(total))
