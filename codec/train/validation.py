"""Validation during training: the held-out clips scored at every bitrate the recipe serves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .recipe import Recipe


@contextlib.contextmanager
def rng_isolated() -> Iterator[None]:
    """Run the block without disturbing any RNG state (python, numpy, torch, cuda)."""
    state = ckpt.capture_rng()
    try:
        yield
    finally:
        ckpt.restore_rng(state)


@torch.no_grad()
def validate(model: nn.Module, clips: Sequence[torch.Tensor], recipe: Recipe,
             device: torch.device) -> dict[str, float]:
    """Score the held-out clips at every ``validation.n_codebooks`` value.

    Returns ``{"mel_distance@N", "si_sdr@N", "pesq_wb@N", "stoi@N"}`` (means over clips) for each N,
    plus ``usage@stage_k`` / ``perplexity@stage_k`` of the codes the clips got at the largest N.
    Leaves the model in training mode and the RNG states as they were.
    """
    from ..eval import metrics

    sr = recipe.model.sample_rate
    mel = metrics.MelDistance(sr).to(device)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    with rng_isolated():
        n_max = max(recipe.validation.n_codebooks)
        for n in recipe.validation.n_codebooks:
            scores: dict[str, list[float]] = {}
            all_codes: list[torch.Tensor] = []
            for clip in clips:
                x = clip.to(device).unsqueeze(0)  # [1, 1, T]
                codes = model.encode(x, n_codebooks=n)  # [1, n, F]
                y = model.decode(codes, length=x.shape[-1]).float()  # [1, 1, T]
                all_codes.append(codes[0])
                scores.setdefault("mel_distance", []).append(float(mel(y, x)))
                ref, deg = x[0, 0].cpu().double().numpy(), y[0, 0].cpu().double().numpy()
                ref_a, deg_a = metrics.align(ref, deg, max_shift=int(0.05 * sr))
                scores.setdefault("si_sdr", []).append(metrics.si_sdr(ref_a, deg_a))
                if recipe.validation.pesq:
                    scores.setdefault("pesq_wb", []).append(metrics.pesq_wb(ref_a, deg_a, sr))
                if recipe.validation.stoi:
                    scores.setdefault("stoi", []).append(metrics.stoi(ref_a, deg_a, sr))
            for key, values in scores.items():
                out[f"{key}@{n}"] = float(np.nanmean(values))
            if n == n_max:
                codes_max = torch.cat(all_codes, dim=-1)  # [n_max, F_total]
        size = recipe.model.codebook_size
        for k in range(codes_max.shape[0]):
            counts = torch.bincount(codes_max[k].cpu(), minlength=size).double()
            p = counts / counts.sum()
            out[f"usage@stage_{k}"] = float((counts > 0).double().mean())
            out[f"perplexity@stage_{k}"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    model.train(was_training)
    return out
