"""A discriminator sized for CPU training: multi-resolution STFT sub-discriminators with few channels.

DAC's discriminator (5 periods + 3 STFT resolutions, fixed widths) costs ~15-18 CPU-s per step of
batch 8 x 0.8 s here, its STFT part alone ~5 CPU-s, against ~0.4 CPU-s for the codec's own step:
a GAN fork would get a fortieth of the steps. This one follows EnCodec's choice of STFT
discriminators only, and spends its convolutions where the artefacts are (fixed tones, haze between
harmonics, smeared harmonics are all visible in a spectrogram):

- each sub-discriminator reads the power-compressed complex STFT (|S|^0.3 with the phase, real and
  imaginary parts as two input planes; quiet bins count, as in the reconstruction losses) at one
  resolution, ``[B, 2, frames, bins]``;
- a 2-d convolution stack of ``channels`` channels: (3 x 9) kernels, stride 2 along frequency in the
  first three layers (the full-resolution input meets only the 2-channel first layer), dilations
  1, 2, 4 along time, then a (3 x 3) layer and a (3 x 3) projection to one
  logit per (frame, band);
- weight normalisation on every convolution, LeakyReLU(0.2).

Output format (what ``codec.train.gan``'s losses take): a list over sub-discriminators, each a list of
feature maps with the logits last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

POWER = 0.3


class STFTSubDiscriminator(nn.Module):
    """One resolution: audio ``[B, 1, T]`` -> feature maps ``[B, C, frames, bins']`` + logits.

    Args:
        n_fft: STFT window (Hann, hop n_fft / 4).
        channels: C.
    """

    window: torch.Tensor  # buffer

    def __init__(self, n_fft: int, channels: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.layers = nn.ModuleList([
            weight_norm(nn.Conv2d(2, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), dilation=(4, 1), padding=(4, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.logits = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def spectrum(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T]`` -> compressed complex STFT as planes ``[B, 2, frames, bins]``."""
        x = audio.reshape(-1, audio.shape[-1]).float()
        spec = torch.stft(x, self.n_fft, self.n_fft // 4, self.n_fft, self.window, center=True,
                          pad_mode="reflect", return_complex=True)  # [B, bins, frames]
        power2 = spec.real.square() + spec.imag.square()
        spec = spec * (power2 + 1e-8).pow((POWER - 1.0) / 2.0)
        return torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        h = self.spectrum(audio)
        fmaps = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            fmaps.append(h)
        fmaps.append(self.logits(h))
        return fmaps


class STFTDiscriminator(nn.Module):
    """Sub-discriminators at ``fft_sizes``: audio ``[B, 1, T]`` -> one list of maps per resolution."""

    def __init__(self, fft_sizes: tuple[int, ...] = (256, 512, 1024), channels: int = 16) -> None:
        super().__init__()
        if not fft_sizes:
            raise ValueError("fft_sizes must not be empty")
        self.subs = nn.ModuleList([STFTSubDiscriminator(n, channels) for n in fft_sizes])

    def forward(self, audio: torch.Tensor) -> list[list[torch.Tensor]]:
        return [sub(audio) for sub in self.subs]
