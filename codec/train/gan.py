"""The adversarial part of training: DAC's discriminator built from a recipe and the least-squares GAN
and feature-matching losses (as DAC computes them)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .recipe import Recipe


def build_discriminator(recipe: Recipe) -> nn.Module:
    """The recipe's discriminator: DAC's multi-period + multi-resolution (+ optional multi-scale)
    one, or the CPU-sized STFT one (``codec.train.discriminator``)."""
    d = recipe.discriminator
    if d.kind == "stft":
        from .discriminator import STFTDiscriminator

        return STFTDiscriminator(tuple(d.fft_sizes), d.channels)
    from dac.model.discriminator import Discriminator

    return Discriminator(rates=list(d.rates), periods=list(d.periods), fft_sizes=list(d.fft_sizes),
                         sample_rate=recipe.model.sample_rate)


def discriminator_loss(d_fake: Sequence[Sequence[torch.Tensor]],
                       d_real: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Least-squares GAN loss of the discriminator: sum over sub-discriminators of
    ``mean(D(fake)^2) + mean((1 - D(real))^2)``; each entry is a list of feature maps, logits last."""
    loss = d_fake[0][-1].new_zeros((), dtype=torch.float32)
    for fake, real in zip(d_fake, d_real, strict=True):
        loss = loss + fake[-1].float().pow(2).mean() + (1 - real[-1].float()).pow(2).mean()
    return loss


def generator_losses(d_fake: Sequence[Sequence[torch.Tensor]],
                     d_real: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, feature matching): ``sum mean((1 - D(fake))^2)`` and the L1 between the fake's
    and the (detached) real's intermediate feature maps, summed over maps and sub-discriminators."""
    adv = d_fake[0][-1].new_zeros((), dtype=torch.float32)
    fm = adv.clone()
    for fake, real in zip(d_fake, d_real, strict=True):
        adv = adv + (1 - fake[-1].float()).pow(2).mean()
        for f, r in zip(fake[:-1], real[:-1], strict=True):
            fm = fm + (f.float() - r.detach().float()).abs().mean()
    return adv, fm


def discriminator_view(recipe: Recipe, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the discriminator sees of (real ``x``, decoded ``y``) ``[B, 1, T]``: the first
    ``discriminator.items`` crops, cut to one random ``crop_seconds`` excerpt (the same for both; torch's
    RNG, so runs stay reproducible)."""
    d = recipe.discriminator
    if d.items:
        x, y = x[: d.items], y[: d.items]
    length = round(d.crop_seconds * recipe.model.sample_rate)
    if 0 < length < x.shape[-1]:
        start = int(torch.randint(0, x.shape[-1] - length + 1, ()).item())
        x, y = x[..., start:start + length], y[..., start:start + length]
    return x, y


def split_fmaps(fmaps: Sequence[Sequence[torch.Tensor]], n: int
                 ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Feature maps of a discriminator run on ``cat([a, b])`` (batch n each) -> (maps of a, maps of b)."""
    first = [[m[:n] for m in sub] for sub in fmaps]
    second = [[m[n:] for m in sub] for sub in fmaps]
    return first, second
