"""A multi-resolution power-compressed complex-STFT loss: magnitude AND phase against the reference.

The mel loss sees magnitudes only, and a decoder trained on it alone synthesises its own phase
(SI-SDR ~ -30 dB, PESQ-WB ~1.2 for the 23k-step mel-only model). This loss compares the STFTs
themselves after power-law compression of the magnitude, with the phase kept:

    S_c = |S|^c * S / |S|          (c = 0.3: quiet bins count, loud ones do not dominate)
    L   = mean |S_c(est) - S_c(ref)|^2 + mean (|S_c(est)| - |S_c(ref)|)^2

averaged over resolutions (Hann windows, hop = window / 4). The first term is zero only when
magnitude and phase both match, so a delayed or phase-shifted copy with the same magnitude scores
clearly above zero; the second keeps a magnitude signal where the phase is hard. The compression is
computed as ``S * (|S|^2 + eps)^((c - 1) / 2)``, smooth at zero, so silence has finite gradients.
(The combination of a compressed complex MSE and a compressed magnitude MSE is the reconstruction
objective of ESC, Gu & Hu 2024, which reached PESQ-WB ~3.7 at 6 kbps without a GAN.)
"""

from __future__ import annotations

import torch
from torch import nn

WINDOWS = (256, 512, 1024)  # samples; hop = window / 4
POWER = 0.3
EPS = 1e-8


class ComplexSTFTLoss(nn.Module):
    """Mean over resolutions of the compressed complex MSE plus the compressed magnitude MSE.

    Args:
        windows: STFT window lengths (multiples of 4, >= 8).
        power: magnitude compression exponent c in (0, 1].
    """

    def __init__(self, windows: tuple[int, ...] = WINDOWS, power: float = POWER) -> None:
        super().__init__()
        if not windows or any(w < 8 or w % 4 for w in windows):
            raise ValueError(f"windows must be multiples of 4 and >= 8, got {windows}")
        if not 0 < power <= 1:
            raise ValueError(f"power must be in (0, 1], got {power}")
        self.windows = tuple(int(w) for w in windows)
        self.power = float(power)
        for i, window in enumerate(self.windows):
            self.register_buffer(f"window_{i}", torch.hann_window(window), persistent=False)

    def compressed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Compressed complex STFT of ``x [N, T]`` at resolution ``index``: ``[N, bins, frames]``."""
        window = self.windows[index]
        spec = torch.stft(x, n_fft=window, hop_length=window // 4,
                          window=getattr(self, f"window_{index}"), center=True, pad_mode="reflect",
                          return_complex=True)
        power2 = spec.real.square() + spec.imag.square()
        return spec * (power2 + EPS).pow((self.power - 1.0) / 2.0)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Loss between ``estimate`` and ``reference``, both ``[B, 1, T]`` (or ``[B, T]``): a scalar."""
        if estimate.shape != reference.shape:
            raise ValueError(f"shapes differ: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
        if estimate.shape[-1] <= max(self.windows) // 2:
            raise ValueError(f"signals of {estimate.shape[-1]} samples are too short for the "
                             f"largest window ({max(self.windows)})")
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            x = estimate.reshape(-1, estimate.shape[-1]).float()  # [N, T]
            y = reference.reshape(-1, reference.shape[-1]).float()
            total = x.new_zeros(())
            for i in range(len(self.windows)):
                s_hat = self.compressed(x, i)
                with torch.no_grad():
                    s_ref = self.compressed(y, i)
                diff = s_hat - s_ref
                complex_term = (diff.real.square() + diff.imag.square()).mean()
                magnitude_term = (_abs(s_hat) - s_ref.abs()).square().mean()
                total = total + complex_term + magnitude_term
        return total / len(self.windows)


def _abs(z: torch.Tensor) -> torch.Tensor:
    """|z| with a finite gradient at 0 (``torch.abs`` of a complex zero has a NaN gradient)."""
    return (z.real.square() + z.imag.square() + EPS).sqrt()
