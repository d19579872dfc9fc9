"""The convolution layers of the DAC-style encoders and decoders: weight-normalised convolutions,
the Snake activation, residual units and the encoder / decoder blocks.

They follow descript-audio-codec's layout parameter for parameter (same module nesting and names:
``block.N``, ``weight_g`` / ``weight_v``, ``alpha``), so models trained when these layers came from
that package load unchanged and compute the same numbers; the package itself is only needed for
training (the discriminator and the straight-through baseline).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn


def _weight_norm_parameters(module: nn.Conv1d | nn.ConvTranspose1d) -> None:
    """Replace ``module.weight`` by ``weight_g`` (the norm of each slice along dim 0) and
    ``weight_v`` (the direction), as ``torch.nn.utils.weight_norm(module)`` stores them (same order
    of parameters: ``bias``, ``weight_g``, ``weight_v``)."""
    weight = module.weight
    del module.weight
    module.weight_g = nn.Parameter(torch.norm_except_dim(weight, 2, 0).detach())
    module.weight_v = nn.Parameter(weight.detach())


def normed_weight(weight_v: torch.Tensor, weight_g: torch.Tensor) -> torch.Tensor:
    """weight = weight_v * weight_g / ||weight_v|| (norm over every dim but 0), as weight_norm
    computes it."""
    return torch._weight_norm(weight_v, weight_g, 0)


class WNConv1d(nn.Conv1d):
    weight_g: nn.Parameter
    weight_v: nn.Parameter

    """``nn.Conv1d`` with weight normalisation; parameters ``weight_g`` [C_out, 1, 1], ``weight_v``
    (the usual weight's shape) and ``bias``. Shapes as ``nn.Conv1d``: ``[B, C_in, T] -> [B, C_out, T']``."""

    def __init__(self, *args: int, **kwargs: int) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        _weight_norm_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, normed_weight(self.weight_v, self.weight_g), self.bias)


class WNConvTranspose1d(nn.ConvTranspose1d):
    weight_g: nn.Parameter
    weight_v: nn.Parameter

    """``nn.ConvTranspose1d`` with weight normalisation (norm over dim 0, the input channels, as
    ``weight_norm`` does for every module); parameters ``weight_g``, ``weight_v``, ``bias``."""

    def __init__(self, *args: int, **kwargs: int) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        _weight_norm_parameters(self)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        assert output_size is None, "WNConvTranspose1d takes no output_size"
        padding = cast(tuple[int, ...], self.padding)  # an int tuple for transposed convolutions
        return nn.functional.conv_transpose1d(x, normed_weight(self.weight_v, self.weight_g), self.bias,
                                              self.stride, padding, self.output_padding, self.groups,
                                              self.dilation)


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Snake activation x + sin^2(alpha x) / alpha on ``[B, C, ...]`` with ``alpha`` [1, C, 1]."""
    shape = x.shape
    x = x.reshape(shape[0], shape[1], -1)
    x = x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    return x.reshape(shape)


class Snake1d(nn.Module):
    """Snake with a learned frequency per channel (``alpha`` [1, C, 1], initialised to 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)


class ResidualUnit(nn.Module):
    """x + (Snake, 7-tap dilated conv, Snake, 1x1 conv)(x) on ``[B, dim, T]`` (same shape)."""

    def __init__(self, dim: int = 16, dilation: int = 1) -> None:
        super().__init__()
        pad = ((7 - 1) * dilation) // 2
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=pad),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        pad = (x.shape[-1] - y.shape[-1]) // 2
        if pad > 0:
            x = x[..., pad:-pad]
        return x + y


class EncoderBlock(nn.Module):
    """Three residual units (dilations 1, 3, 9) at ``dim / 2`` channels, Snake, then a strided
    convolution to ``dim`` channels: ``[B, dim / 2, T] -> [B, dim, T / stride]``."""

    def __init__(self, dim: int = 16, stride: int = 1) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ResidualUnit(dim // 2, dilation=1),
            ResidualUnit(dim // 2, dilation=3),
            ResidualUnit(dim // 2, dilation=9),
            Snake1d(dim // 2),
            WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride,
                     padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    """Snake, a transposed convolution upsampling by ``stride`` to ``output_dim`` channels, then three
    residual units (dilations 1, 3, 9): ``[B, input_dim, T] -> [B, output_dim, ~T * stride]``."""

    def __init__(self, input_dim: int = 16, output_dim: int = 8, stride: int = 1) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(input_dim, output_dim, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2)),
            ResidualUnit(output_dim, dilation=1),
            ResidualUnit(output_dim, dilation=3),
            ResidualUnit(output_dim, dilation=9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
