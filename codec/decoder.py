"""The decoder: DAC decoder blocks up to ``head_hop`` samples per step, then an iSTFT or conv head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ISTFTHead(nn.Module):
    """Features [B, C, N] -> audio [B, 1, N * hop]: predicts log-magnitude and phase of an STFT with
    n_fft = 4 * hop (Hann window, centred frames) and inverts it."""

    def __init__(self, dim: int, hop: int) -> None:
        super().__init__()
        from dac.nn.layers import WNConv1d

        self.hop = hop
        self.n_fft = 4 * hop
        self.proj = WNConv1d(dim, self.n_fft + 2, kernel_size=7, padding=3)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        x = self.proj(F.pad(x, (0, 1), mode="replicate"))  # centred iSTFT: N + 1 frames -> N * hop
        log_mag, phase = x.float().chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)
        spec = torch.polar(mag, phase)
        audio = torch.istft(spec, self.n_fft, self.hop, self.n_fft, self.window, center=True,
                            length=n * self.hop)
        return audio[:, None, :]


class ConvHead(nn.Module):
    """Features [B, C, N] -> audio [B, 1, ~N * hop] with a transposed convolution and tanh (DAC)."""

    def __init__(self, dim: int, hop: int) -> None:
        super().__init__()
        from dac.nn.layers import WNConv1d, WNConvTranspose1d

        if hop == 1:
            self.proj = WNConv1d(dim, 1, kernel_size=7, padding=3)
        else:
            self.proj = WNConvTranspose1d(dim, 1, kernel_size=2 * hop, stride=hop,
                                          padding=math.ceil(hop / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x))


class Decoder(nn.Module):
    """Latent [B, latent_dim, F] -> audio [B, 1, F * hop_length] (trimmed or zero-padded to that).

    A 7-tap input convolution to ``decoder_dim`` channels, DAC ``DecoderBlock`` s with ``rates``
    (channels halve at each block), Snake, then the head.
    """

    def __init__(self, latent_dim: int, decoder_dim: int, rates: tuple[int, ...], head: str,
                 head_hop: int) -> None:
        super().__init__()
        from dac.model.dac import DecoderBlock
        from dac.nn.layers import Snake1d, WNConv1d

        self.hop_length = head_hop * math.prod(rates)
        layers: list[nn.Module] = [WNConv1d(latent_dim, decoder_dim, kernel_size=7, padding=3)]
        dim = decoder_dim
        for rate in rates:
            layers.append(DecoderBlock(dim, dim // 2, stride=rate))
            dim //= 2
        layers.append(Snake1d(dim))
        self.block = nn.Sequential(*layers)
        self.head = ISTFTHead(dim, head_hop) if head == "istft" else ConvHead(dim, head_hop)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        audio = self.head(self.block(latent))
        target = latent.shape[-1] * self.hop_length
        if audio.shape[-1] > target:
            return audio[..., :target]
        return F.pad(audio, (0, target - audio.shape[-1]))
