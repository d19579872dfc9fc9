"""A Vocos-style decoder: ConvNeXt blocks at the latent frame rate, transposed convolutions up to the
head's rate, and an iSTFT head; nothing runs at the sample rate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.convnext import ChannelNorm, ConvNeXtBlock
from .decoder import ISTFTHead


class VocosDecoder(nn.Module):
    """Latent [B, latent_dim, F] -> audio [B, 1, F * hop_length].

    Args:
        latent_dim: D.
        dim: channels of the ConvNeXt blocks.
        depth: ConvNeXt blocks at the latent frame rate (one more after each upsampling).
        rates: upsampling strides; the head then runs at ``head_hop`` samples per step.
        head_hop: iSTFT hop (n_fft = 4 * head_hop).
        spectrum: ``polar`` or ``cartesian`` (see :class:`codec.models.decoder.ISTFTHead`).
    """

    def __init__(self, latent_dim: int, dim: int, depth: int, rates: tuple[int, ...], head_hop: int,
                 spectrum: str = "cartesian") -> None:
        super().__init__()
        self.hop_length = head_hop * math.prod(rates)
        layers: list[nn.Module] = [nn.Conv1d(latent_dim, dim, kernel_size=7, padding=3), ChannelNorm(dim)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
        for rate in rates:
            layers += [nn.ConvTranspose1d(dim, dim, kernel_size=2 * rate, stride=rate,
                                          padding=(rate + 1) // 2),
                       ConvNeXtBlock(dim)]
        layers.append(ChannelNorm(dim))
        self.block = nn.Sequential(*layers)
        self.head = ISTFTHead(dim, head_hop, spectrum, kernel_size=3)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        audio = self.head(self.block(latent))
        target = latent.shape[-1] * self.hop_length
        if audio.shape[-1] > target:
            return audio[..., :target]
        return F.pad(audio, (0, target - audio.shape[-1]))
