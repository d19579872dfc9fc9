"""The compressed complex-STFT loss: zero for the reference, clearly positive for a copy with the same
magnitude but another phase, finite gradients on silence."""

from __future__ import annotations

import math

import pytest
import torch

from codec.train.spectral import ComplexSTFTLoss
from support import speechlike


def _signal(n: int = 16000) -> torch.Tensor:
    return torch.as_tensor(speechlike(n / 16000, 16000, seed=3), dtype=torch.float32).reshape(1, 1, -1)


def test_identical_signals_score_zero():
    x = _signal()
    assert float(ComplexSTFTLoss()(x, x)) == pytest.approx(0.0, abs=1e-10)


def test_delayed_or_phase_shifted_copy_with_the_same_magnitude_scores_clearly_positive():
    loss = ComplexSTFTLoss()
    x = _signal()
    delayed = torch.roll(x, 40, dims=-1)  # 2.5 ms: the magnitude spectrogram barely changes
    spec = torch.fft.rfft(x)
    shifted = torch.fft.irfft(spec * torch.exp(1j * torch.full_like(spec.real, math.pi / 2)), n=x.shape[-1])
    noise = 0.01 * x.std() * torch.randn_like(x)
    base = float(loss(x + noise, x))
    assert float(loss(delayed, x)) > 5 * base  # base: white noise at -40 dB
    assert float(loss(shifted.reshape(x.shape), x)) > 5 * base
    # the magnitude term alone is small for these: the complex term is what sees the phase
    mag = lambda a, b, i=1: float((loss.compressed(a[0], i).abs() - loss.compressed(b[0], i).abs()).square().mean())
    assert mag(delayed, x) < 0.2 * float(loss(delayed, x))


def test_gradients_are_finite_on_silence_and_reach_the_estimate():
    loss = ComplexSTFTLoss()
    est = torch.zeros(2, 1, 4000, requires_grad=True)
    ref = torch.zeros(2, 1, 4000)
    loss(est, ref).backward()
    assert torch.isfinite(est.grad).all()
    est2 = (0.1 * torch.randn(2, 1, 4000)).requires_grad_(True)
    loss(est2, _signal(4000).expand(2, 1, -1)).backward()
    assert torch.isfinite(est2.grad).all() and est2.grad.abs().sum() > 0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        ComplexSTFTLoss(windows=(30,))
    with pytest.raises(ValueError):
        ComplexSTFTLoss(power=0.0)
    with pytest.raises(ValueError):
        ComplexSTFTLoss()(torch.zeros(1, 1, 100), torch.zeros(1, 1, 100))
