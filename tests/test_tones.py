"""The added-tone figure (codec.eval.tones) and the periodic loss that trains tones away
(codec.train.periodic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.eval.tones import added_tones
from codec.train.periodic import PeriodicLoss

SR = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with pauses: a broadband signal whose mean spectrum has no peaks."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    envelope = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1) > 0.4, 1600)[:n].astype(float)
    return (0.1 * rng.standard_normal(n) * envelope).astype(np.float32)


def _comb(n: int, level: float, period: int = 160) -> np.ndarray:
    """A fixed frame repeated every ``period`` samples (what a frame-constant decoder adds), its
    power in two harmonics of ``SR / period`` (3.4 and 4.5 kHz for 160), as the built-in model's
    strongest tones were."""
    t = np.arange(period) / SR
    frame = np.sin(2 * np.pi * 3400 * t) + np.sin(2 * np.pi * 4500 * t + 1.0)
    return (level * np.tile(frame, n // period + 1)[:n]).astype(np.float32)


def test_no_tone_in_a_copy_or_in_added_noise() -> None:
    x = _speechlike(6.0)
    assert added_tones(x, x, SR).tone_db == pytest.approx(0.0, abs=1e-9)
    noisy = x + 0.01 * np.random.default_rng(1).standard_normal(x.size).astype(np.float32)
    report = added_tones(x, noisy, SR)
    assert report.tone_db < 6.0 and report.pause_tone_db < 6.0


def test_an_added_comb_is_found_on_its_grid_and_most_in_pauses() -> None:
    x = _speechlike(6.0)
    report = added_tones(x, x + _comb(x.size, 0.03), SR)
    assert report.tone_db > 10.0
    assert report.tone_hz % 100 == pytest.approx(0.0, abs=1e-6)  # a 160-sample period: 100 Hz grid
    assert report.pause_tone_db > report.tone_db  # the pauses are where it stands out


def test_a_tone_the_input_has_is_not_counted() -> None:
    t = np.arange(6 * SR) / SR
    x = _speechlike(6.0) + (0.05 * np.sin(2 * np.pi * 1234.5 * t)).astype(np.float32)
    assert added_tones(x, x.copy(), SR).tone_db < 1.0


def test_digital_silence_with_an_inaudible_comb_is_no_tone() -> None:
    x = _speechlike(6.0)
    x[: 3 * SR] = 0.0
    report = added_tones(x, x + _comb(x.size, 1e-7), SR)  # -140 dBFS
    assert report.tone_db < 1.0 and report.pause_tone_db < 1.0


def test_too_short_or_mismatched_input() -> None:
    x = _speechlike(0.1)
    report = added_tones(x, x, SR)
    assert math.isnan(report.tone_db) and math.isnan(report.pause_tone_db)
    with pytest.raises(ValueError, match="length"):
        added_tones(x, x[:-1], SR)


def test_periodic_loss_sees_a_comb_and_its_gradient_removes_it() -> None:
    x = torch.from_numpy(_speechlike(0.8, seed=3)).reshape(1, 1, -1).repeat(4, 1, 1)
    comb = torch.from_numpy(_comb(x.shape[-1], 0.03)).reshape(1, 1, -1)
    loss = PeriodicLoss(320)
    clean, with_comb = float(loss(x, x)), float(loss(x + comb, x))
    assert clean == pytest.approx(0.0, abs=1e-9) and with_comb > 0.01
    # gradient descent on the estimate's periodic part alone takes the comb out
    estimate = (x + comb).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([estimate], lr=1e-3)
    for _ in range(300):
        optimiser.zero_grad()
        loss(estimate, x).backward()
        optimiser.step()
    assert float(loss(estimate, x)) < 0.1 * with_comb
    found = added_tones(x[0, 0].numpy(), estimate.detach()[0, 0].numpy(), SR)
    assert found.tone_db < 6.0


def test_periodic_loss_argument_checks() -> None:
    with pytest.raises(ValueError, match="period"):
        PeriodicLoss(1)
    with pytest.raises(ValueError, match="shorter than one period"):
        PeriodicLoss(320)(torch.zeros(1, 1, 100), torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match="shapes differ"):
        PeriodicLoss(4)(torch.zeros(1, 1, 100), torch.zeros(1, 1, 99))


def test_periodic_bias_loss_removes_a_systematic_comb_only() -> None:
    """A comb added to every crop (a decoder's bias) is tracked across steps and trained away; the
    chance periodic parts of changing inputs leave the moving average near zero."""
    from codec.train.periodic import PeriodicBiasLoss

    loss = PeriodicBiasLoss(320, rate=0.1)
    gen = torch.Generator().manual_seed(0)
    comb = torch.from_numpy(_comb(3200, 0.03)).reshape(1, 1, -1)
    scale = torch.ones((), requires_grad=True)  # how much of the comb the "decoder" adds
    optimiser = torch.optim.SGD([scale], lr=0.002)
    for _ in range(300):
        x = 0.1 * torch.randn(4, 1, 3200, generator=gen)
        optimiser.zero_grad()
        loss(x + scale * comb, x).backward()
        optimiser.step()
    assert abs(float(scale)) < 0.1
    # without a comb the average stays small: chance periodic parts of noise do not accumulate
    quiet = PeriodicBiasLoss(320, rate=0.1)
    with torch.no_grad():
        with torch.enable_grad():
            for _ in range(50):
                x = 0.1 * torch.randn(4, 1, 3200, generator=gen)
                noisy = float(quiet(x + 0.01 * torch.randn(x.shape, generator=gen), x))
        combed = PeriodicBiasLoss(320, rate=0.1)
        with torch.enable_grad():
            for _ in range(50):
                x = 0.1 * torch.randn(4, 1, 3200, generator=gen)
                biased = float(combed(x + 0.1 * comb, x))
    assert biased > 20 * noisy
