"""The encoder: a strided stem, DAC-layout encoder blocks, and a latent anchored to unit RMS per frame."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.layers import EncoderBlock, Snake1d, WNConv1d


def rms_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Scale every frame of x [B, D, T] to unit RMS over D (no parameters, same in train and eval).

    This anchors the latent's scale: DiVeQ has no commitment loss, so without an anchor nothing
    stops the encoder output from growing until residual subtraction drowns in float rounding.
    """
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class DACEncoder(nn.Module):
    """Audio [B, 1, T] -> latent [B, latent_dim, T / hop_length] with every frame at unit RMS.

    The stem convolution (kernel 2 * stem_stride, stride stem_stride) brings the signal to a reduced
    rate at once, so no residual unit runs at the full sample rate; then ``EncoderBlock`` s
    (:mod:`codec.nn.layers`, DAC's layout) with ``rates`` (channels double at each block), Snake, and
    a projection to ``latent_dim``.
    T must be a multiple of stem_stride * prod(rates).
    """

    def __init__(self, encoder_dim: int, stem_stride: int, rates: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        if stem_stride == 1:
            stem = WNConv1d(1, encoder_dim, kernel_size=7, padding=3)
        else:
            stem = WNConv1d(1, encoder_dim, kernel_size=2 * stem_stride, stride=stem_stride,
                            padding=math.ceil(stem_stride / 2))
        layers: list[nn.Module] = [stem]
        dim = encoder_dim
        for rate in rates:
            dim *= 2
            layers.append(EncoderBlock(dim, stride=rate))
        layers += [Snake1d(dim), WNConv1d(dim, latent_dim, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return rms_normalize(self.block(audio))
