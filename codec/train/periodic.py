"""A loss against hop-periodic output: the comb of fixed tones a frame-wise decoder adds.

An iSTFT head that predicts the same spectrum in every frame (where it cannot predict better: pauses,
noise-like bands) overlap-adds identical frames, i.e. a signal periodic in its hop: tones on a
``sample_rate / hop`` grid, audible in every pause. A stride-2 upsampler can add a pattern that
repeats every second frame. Neither the mel loss nor the complex STFT loss penalises such a part much:
it has the magnitude the mel term wants, and where the reference's phase is unpredictable the complex
term cannot tell a fixed phase from another.

This loss isolates the periodic part directly. For a period P (a multiple of the hop), the mean of a
signal's P-sample periods is its P-periodic component (for speech, noise of power ~1/N of the signal
with N periods in the crop). Its spectrum (``rfft``, bins on a ``sample_rate / P`` grid) is
power-compressed like the complex STFT loss (quiet high tones count) and compared with the
reference's:

    L = mean_k | C(rfft(mean_n x_est[n P : (n + 1) P]))_k - C(rfft(mean_n x_ref[...]))_k |^2

C(S) = |S|^c S / |S| with c = 0.3. The reference's own periodic part is noise of zero mean, so the
expected gradient pushes the estimate's periodic part to zero without biasing anything else.

That per-crop form is noisy: in a 0.8 s crop the chance periodic part of speech is as large as the
decoder's comb, and matching it waveform by waveform cost 0.26 PESQ-WB in 1,000 steps while leaving
the tones as they were (docs/quality/forks.md). The built-in model's comb has the same phase in every
clip (coherence 0.99-1.0 across the validation clips at 3.45-5.7 kHz): it is a systematic part of
the decoder's output, not a per-input one. :class:`PeriodicBiasLoss` therefore tracks it across
steps: an exponential moving average M of the batch-mean periodic-part difference
``rfft(mean period of estimate) - rfft(mean period of reference)`` (the chance parts average out;
the systematic comb stays), with the current batch's contribution kept in the graph:

    M_t = (1 - a) sg[M_{t-1}] + a d_t,      L = sum_k |M_t,k|^2 / a

so the gradient, 2 M_t on d_t, pushes the periodic part along the estimated bias only and vanishes
as the bias does. M is training state, reset when a run starts or resumes (it re-converges in
~1 / a steps).
"""

from __future__ import annotations

import torch
from torch import nn

POWER = 0.3
EPS = 1e-8


class PeriodicLoss(nn.Module):
    """Compressed-spectrum MSE between the ``period``-periodic parts of estimate and reference.

    Args:
        period: P in samples (the decoder head's hop, or a multiple: 2 x hop also catches patterns
            that repeat every second frame).
        power: magnitude compression exponent c in (0, 1].
    """

    def __init__(self, period: int, power: float = POWER) -> None:
        super().__init__()
        if period < 2:
            raise ValueError(f"period must be >= 2, got {period}")
        if not 0 < power <= 1:
            raise ValueError(f"power must be in (0, 1], got {power}")
        self.period = int(period)
        self.power = float(power)

    def periodic_part(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, T]`` -> its mean period ``[N, P]`` (the tail shorter than a period is dropped)."""
        n = x.shape[-1] // self.period
        if n < 1:
            raise ValueError(f"signals of {x.shape[-1]} samples are shorter than one period ({self.period})")
        return x[..., : n * self.period].reshape(x.shape[0], n, self.period).mean(dim=1)

    def compressed(self, x: torch.Tensor) -> torch.Tensor:
        """Compressed spectrum ``[N, P / 2 + 1]`` (complex) of the periodic part of ``x [N, T]``,
        scaled as an STFT frame of ``P`` samples would be (sum over the period)."""
        spec = torch.fft.rfft(self.periodic_part(x), dim=-1)
        power2 = spec.real.square() + spec.imag.square()
        return spec * (power2 + EPS).pow((self.power - 1.0) / 2.0)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Loss between ``estimate`` and ``reference``, both ``[B, 1, T]`` (or ``[B, T]``): a scalar."""
        if estimate.shape != reference.shape:
            raise ValueError(f"shapes differ: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            x = estimate.reshape(-1, estimate.shape[-1]).float()
            y = reference.reshape(-1, reference.shape[-1]).float()
            with torch.no_grad():
                ref = self.compressed(y)
            diff = self.compressed(x) - ref
            return (diff.real.square() + diff.imag.square()).mean()


class PeriodicBiasLoss(nn.Module):
    """Systematic ``period``-periodic output, tracked across steps (module docstring).

    Args:
        period: P in samples.
        rate: the moving average's rate a in (0, 1] (memory ~1 / a steps).
    """

    ema_real: torch.Tensor  # buffers
    ema_imag: torch.Tensor

    def __init__(self, period: int, rate: float) -> None:
        super().__init__()
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.periodic = PeriodicLoss(period)
        self.rate = float(rate)
        self.register_buffer("ema_real", torch.zeros(period // 2 + 1), persistent=False)
        self.register_buffer("ema_imag", torch.zeros(period // 2 + 1), persistent=False)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Loss between ``estimate`` and ``reference``, both ``[B, 1, T]``: a scalar (updates the
        moving average when gradients are enabled, i.e. in training)."""
        if estimate.shape != reference.shape:
            raise ValueError(f"shapes differ: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            x = estimate.reshape(-1, estimate.shape[-1]).float()
            y = reference.reshape(-1, reference.shape[-1]).float()
            with torch.no_grad():
                ref = torch.fft.rfft(self.periodic.periodic_part(y), dim=-1).mean(dim=0)
            d = torch.fft.rfft(self.periodic.periodic_part(x), dim=-1).mean(dim=0) - ref
            a = self.rate
            real = (1 - a) * self.ema_real + a * d.real
            imag = (1 - a) * self.ema_imag + a * d.imag
            if torch.is_grad_enabled():
                self.ema_real.copy_(real.detach())
                self.ema_imag.copy_(imag.detach())
            return (real.square() + imag.square()).sum() / a
