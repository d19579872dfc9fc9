"""An encoder that reads the STFT (ESC-like): power-compressed complex spectrum in, ConvNeXt blocks at
the STFT frame rate, strided convolutions down to the latent frame rate.

Nothing runs at the sample rate: the first layer sees ``n_fft / 2 + 1`` bins per STFT frame, so a step
costs a fraction of a time-domain encoder's (the DAC encoder is ~80 % of a training step here).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.convnext import ChannelNorm, ConvNeXtBlock
from ..nn.spectral import stft
from .encoder import rms_normalize

INPUT_POWER = 0.3  # the input spectrum is compressed as |S|^0.3 (phase kept), as the loss does


class STFTEncoder(nn.Module):
    """Audio [B, 1, T] -> latent [B, latent_dim, T / (hop * prod(rates))], every frame at unit RMS.

    Args:
        hop: STFT hop in samples (n_fft = 4 * hop, Hann window; :func:`codec.nn.spectral.stft`).
        dim: channels of the ConvNeXt blocks.
        depth: ConvNeXt blocks at the STFT frame rate (one more after each downsampling).
        rates: strides of the downsampling convolutions after the blocks.
        latent_dim: D.
    T must be a multiple of hop * prod(rates) (any multiple: one latent frame's worth is enough).
    """

    def __init__(self, hop: int, dim: int, depth: int, rates: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.hop = hop
        self.n_fft = 4 * hop
        bins = self.n_fft // 2 + 1
        self.embed = nn.Conv1d(2 * bins, dim, kernel_size=3, padding=1)
        layers: list[nn.Module] = [ChannelNorm(dim)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
        for rate in rates:
            layers += [nn.Conv1d(dim, dim, kernel_size=2 * rate, stride=rate, padding=(rate + 1) // 2),
                       ConvNeXtBlock(dim)]
        layers += [ChannelNorm(dim), nn.Conv1d(dim, latent_dim, kernel_size=1)]
        self.block = nn.Sequential(*layers)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] -> [B, 2 * (n_fft / 2 + 1), T / hop] compressed real and imaginary parts."""
        frames = audio.shape[-1] // self.hop
        real, imag = stft(audio[:, 0], self.n_fft, self.hop)  # centred: one frame more than needed
        real, imag = real[..., :frames], imag[..., :frames]
        scale = (real.square() + imag.square() + 1e-8).pow((INPUT_POWER - 1.0) / 2.0)
        return torch.cat([real * scale, imag * scale], dim=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return rms_normalize(self.block(self.embed(self.features(audio))))
