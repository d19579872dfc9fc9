"""The decoder: DAC-layout decoder blocks (:mod:`codec.nn.layers`) up to ``head_hop`` samples per step, then an iSTFT or conv head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import DecoderBlock, Snake1d, WNConv1d, WNConvTranspose1d
from ..nn.spectral import istft

#: Cartesian heads predict the spectrum compressed as |S|^SPECTRUM_POWER (with its phase).
SPECTRUM_POWER = 0.3
_MAX_COMPRESSED = 10.0  # |S| <= 10^(1/0.3) ~ 2154: bounds the decompression's growth


def decompress(real: torch.Tensor, imag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, imaginary part) of the spectrum S whose power-compressed form |S|^0.3 S/|S| is
    ``real + i imag`` (any shape; the compressed magnitude is capped at 10 to bound the growth)."""
    compressed = torch.sqrt(real.square() + imag.square() + 1e-12)
    scale = compressed.clamp(max=_MAX_COMPRESSED).pow(1.0 / SPECTRUM_POWER) / compressed
    return real * scale, imag * scale


class ISTFTHead(nn.Module):
    """Features [B, C, N] -> audio [B, 1, N * hop] through an inverse STFT (n_fft = 4 * hop, Hann
    window, centred frames; :func:`codec.nn.spectral.istft`, real-valued operations only).

    ``spectrum`` says what the projection predicts per bin:
      - ``polar``: log-magnitude and phase angle (the angle is a raw, wrapping value);
      - ``cartesian``: real and imaginary parts of the power-compressed spectrum
        C = |S|^0.3 S/|S|, decompressed before the iSTFT (no wrap: the compressed complex loss
        has a smooth target).
    """

    def __init__(self, dim: int, hop: int, spectrum: str = "polar", kernel_size: int = 7) -> None:
        super().__init__()
        if spectrum not in ("polar", "cartesian"):
            raise ValueError(f"spectrum must be polar or cartesian, got {spectrum!r}")
        self.hop = hop
        self.n_fft = 4 * hop
        self.spectrum = spectrum
        self.proj = WNConv1d(dim, self.n_fft + 2, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(F.pad(x, (0, 1), mode="replicate"))  # centred iSTFT: N + 1 frames -> N * hop
        a, b = x.float().chunk(2, dim=1)
        if self.spectrum == "polar":
            magnitude = torch.exp(a).clamp(max=1e2)
            real, imag = magnitude * torch.cos(b), magnitude * torch.sin(b)
        else:
            real, imag = decompress(a, b)
        audio = istft(real, imag, self.n_fft, self.hop)  # N + 1 frames -> N * hop samples
        return audio[:, None, :]


class ConvHead(nn.Module):
    """Features [B, C, N] -> audio [B, 1, ~N * hop] with a transposed convolution and tanh (DAC)."""

    def __init__(self, dim: int, hop: int) -> None:
        super().__init__()
        self.proj: nn.Module
        if hop == 1:
            self.proj = WNConv1d(dim, 1, kernel_size=7, padding=3)
        else:
            self.proj = WNConvTranspose1d(dim, 1, kernel_size=2 * hop, stride=hop,
                                          padding=math.ceil(hop / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x))


class DACDecoder(nn.Module):
    """Latent [B, latent_dim, F] -> audio [B, 1, F * hop_length] (trimmed or zero-padded to that).

    A 7-tap input convolution to ``decoder_dim`` channels, DAC ``DecoderBlock`` s with ``rates``
    (channels halve at each block), Snake, then the head.
    """

    def __init__(self, latent_dim: int, decoder_dim: int, rates: tuple[int, ...], head: str,
                 head_hop: int, spectrum: str = "polar") -> None:
        super().__init__()
        self.hop_length = head_hop * math.prod(rates)
        layers: list[nn.Module] = [WNConv1d(latent_dim, decoder_dim, kernel_size=7, padding=3)]
        dim = decoder_dim
        for rate in rates:
            layers.append(DecoderBlock(dim, dim // 2, stride=rate))
            dim //= 2
        layers.append(Snake1d(dim))
        self.block = nn.Sequential(*layers)
        self.head = ISTFTHead(dim, head_hop, spectrum) if head == "istft" else ConvHead(dim, head_hop)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        audio = self.head(self.block(latent))
        target = latent.shape[-1] * self.hop_length
        if audio.shape[-1] > target:
            return audio[..., :target]
        return F.pad(audio, (0, target - audio.shape[-1]))
