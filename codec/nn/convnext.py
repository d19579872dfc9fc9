"""ConvNeXt blocks on 1-d feature sequences (Vocos-style decoders and STFT encoders run them at the
frame rate, where they are cheap)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LayerNorm(depthwise_conv(x))) on ``[B, C, T]`` (same shape out).

    Args:
        dim: channels C.
        kernel_size: depthwise convolution width (odd).
        expansion: hidden width of the MLP as a multiple of ``dim``.
        layer_scale: initial value of the per-channel output scale gamma (small: blocks start near
            the identity).
    """

    def __init__(self, dim: int, kernel_size: int = 7, expansion: int = 3,
                 layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dim, self.kernel_size = dim, kernel_size
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.pwconv2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(x, self.dwconv(x))

    def finish(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The block after its depthwise convolution: ``x`` [B, C, T] plus the MLP branch of ``h``
        = dwconv(x) [B, C, T]."""
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h.transpose(1, 2)))))  # [B, T, C]
        return x + (self.gamma * h).transpose(1, 2)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, T]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)
