"""The phase loss (codec.train.phase): what it measures, and that it trains a model's phase."""

from __future__ import annotations

import math

import pytest
import torch

from codec.train.phase import PhaseLoss


def _speechlike(n: int = 16000, seed: int = 0) -> torch.Tensor:
    """Two harmonic series with vibrato plus a little noise: [1, 1, n]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    f0 = 140 + 20 * torch.sin(2 * math.pi * 3 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 16000
    x = sum(0.3 / k * torch.sin(k * phase + k) for k in range(1, 12))
    return (x + 0.01 * torch.randn(n, generator=g))[None, None]


def _with_phase(x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """x's STFT magnitude (n_fft 512) with another phase, resynthesised."""
    window = torch.hann_window(512)
    spec = torch.stft(x[0], 512, 128, window=window, return_complex=True)
    y = torch.istft(torch.polar(spec.abs(), phase), 512, 128, window=window, length=x.shape[-1])
    return y[None]


def test_zero_for_the_reference_and_gain_invariant() -> None:
    loss = PhaseLoss()
    x = _speechlike()
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-4)
    assert loss(0.25 * x, x).item() == pytest.approx(0.0, abs=1e-3)  # magnitude gets no say


def test_orders_phase_errors() -> None:
    loss = PhaseLoss()
    x = _speechlike()
    window = torch.hann_window(512)
    spec = torch.stft(x[0], 512, 128, window=window, return_complex=True)
    g = torch.Generator().manual_seed(1)
    small = _with_phase(x, spec.angle() + 0.3 * torch.randn(spec.shape, generator=g))
    scrambled = _with_phase(x, 2 * math.pi * torch.rand(spec.shape, generator=g))
    l_small, l_scrambled = loss(small, x).item(), loss(scrambled, x).item()
    assert 0.0 < l_small < l_scrambled
    assert l_scrambled > 1.0  # ~1 per term for a random phase
    # a polarity flip changes every absolute phase by pi but no phase difference: no loss
    assert loss(-x, x).item() == pytest.approx(0.0, abs=1e-3)
    # a delay of d samples adds 2 pi d / n_fft to every bin's group delay (4 ms: pi/2 at n_fft 256)
    assert loss(torch.roll(x, 64, dims=-1), x).item() > 0.2


def test_gradient_is_finite_on_silence_and_input_errors() -> None:
    loss = PhaseLoss()
    x = _speechlike(4096)
    y = torch.zeros_like(x, requires_grad=True)
    loss(y, x).backward()
    assert torch.isfinite(y.grad).all()
    with pytest.raises(ValueError, match="shapes differ"):
        loss(x[..., :-1], x)
    with pytest.raises(ValueError, match="shorter"):
        loss(x[..., :512], x[..., :512])
    with pytest.raises(ValueError, match="multiples of 4"):
        PhaseLoss((255,))


def test_gradient_descent_recovers_the_phase() -> None:
    """Optimising a free phase spectrogram under the loss brings the resynthesis towards x."""
    torch.manual_seed(0)
    loss = PhaseLoss(windows=(512,))
    x = _speechlike(8000)
    window = torch.hann_window(512)
    spec = torch.stft(x[0], 512, 128, window=window, return_complex=True)
    phase = (2 * math.pi * torch.rand(spec.shape)).requires_grad_(True)
    opt = torch.optim.Adam([phase], lr=0.05)

    def synth() -> torch.Tensor:
        y = torch.istft(torch.polar(spec.abs(), phase), 512, 128, window=window, length=8000)
        return y[None]

    start = loss(synth(), x).item()
    for _ in range(150):
        opt.zero_grad()
        value = loss(synth(), x)
        value.backward()
        opt.step()
    assert value.item() < 0.5 * start
