"""Stationary tones a codec adds: spectral peaks in the decoded signal's mean spectrum that the input
does not have.

A decoder that synthesises the same spectrum in every frame where it cannot predict one (pauses,
noise-like bands) adds a signal periodic in its hop: a comb of fixed tones, audible in every pause
however good its PESQ. This module measures it the way a listener notices it: average the power
spectrum over time (tones add up, speech and noise smear out), and find bins that stand out of their
neighbourhood.

For a signal ``x [T]``:

- ``mean_spectrum_db``: the mean power spectrum in dB (Hann frames of :data:`N_FFT` samples at
  16 kHz-equivalent resolution :data:`BIN_HZ`, hop a quarter window), over all frames or a selection;
- ``prominence_db``: that spectrum minus its running median over :data:`MEDIAN_HZ` (how far each bin
  stands above its local floor; a smooth spectrum gives ~0, a tone gives its height above the floor).

:func:`added_tones` compares decoded against reference: per bin, the decoded prominence minus the
reference's (floored at 0, so a tone the input has is not counted against the codec), over
:data:`BAND_HZ`; its maximum is ``tone_db``. :func:`pause_frames` picks the frames where the reference
is quiet (speech pauses), where added tones are most audible; ``pause_tone_db`` is the same figure on
those frames. Numpy only (no torch).
"""

from __future__ import annotations

import dataclasses

import numpy as np

BIN_HZ = 12.5  # frequency resolution: finer than the 25 Hz bins of the default model's 640-point head
MEDIAN_HZ = 400.0  # width of the running median a peak is measured against
BAND_HZ = (100.0, 7900.0)  # bins scored (below Nyquist of 16 kHz audio, above hum)
PAUSE_DB = -35.0  # a reference frame this far below the loudest frame is a pause
MIN_FRAMES = 8  # fewer frames than this give no figure (NaN)
FLOOR_DBFS = -100.0  # spectra are floored at white noise of this level (full scale = 1.0 RMS)


@dataclasses.dataclass(frozen=True)
class ToneReport:
    """Added tones of one decoded signal against its reference.

    tone_db: the largest added prominence over all frames (dB; ~0-3 for a clean codec, NaN when the
        signal is too short). tone_hz: where it is. pause_tone_db / pause_tone_hz: the same on the
        reference's pause frames only (NaN when there are fewer than :data:`MIN_FRAMES` of them).
    """

    tone_db: float
    tone_hz: float
    pause_tone_db: float
    pause_tone_hz: float


def _frames(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Power spectra of Hann frames ``[N, bins]`` of ``x [T]``, and the bin width in Hz."""
    n_fft = int(round(sample_rate / BIN_HZ))
    hop = n_fft // 4
    if x.size < n_fft:
        return np.zeros((0, n_fft // 2 + 1)), sample_rate / n_fft
    n = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    window = np.hanning(n_fft + 1)[:-1]
    spec = np.fft.rfft(x[idx] * window, axis=-1)
    return spec.real**2 + spec.imag**2, sample_rate / n_fft


def _running_median(x: np.ndarray, width: int) -> np.ndarray:
    """Median of ``x [bins]`` over a centred window of ``width`` bins (edges: the window shrinks)."""
    half = max(1, width // 2)
    padded = np.pad(x, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=-1)


def prominence_db(power: np.ndarray, bin_hz: float) -> np.ndarray:
    """dB of the mean power spectrum ``power [N, bins]`` above its running median: ``[bins]``.

    The spectrum is floored at the level white noise of :data:`FLOOR_DBFS` would give (what is
    below it is inaudible, and digital silence would otherwise make any leakage a huge "peak")."""
    n_fft = 2 * (power.shape[-1] - 1)
    window = np.hanning(n_fft + 1)[:-1]
    floor = 10.0 ** (FLOOR_DBFS / 10.0) * float(np.sum(window**2))
    mean_db = 10.0 * np.log10(power.mean(axis=0) + floor)
    return mean_db - _running_median(mean_db, int(round(MEDIAN_HZ / bin_hz)))


def pause_frames(reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """Boolean ``[N]``: the reference's analysis frames at least :data:`PAUSE_DB` below its loudest."""
    power, _ = _frames(reference, sample_rate)
    if power.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    energy = 10.0 * np.log10(power.sum(axis=1) + 1e-20)
    return energy < energy.max() + PAUSE_DB


def _worst(deg_power: np.ndarray, ref_power: np.ndarray, bin_hz: float) -> tuple[float, float]:
    if deg_power.shape[0] < MIN_FRAMES:
        return float("nan"), float("nan")
    added = prominence_db(deg_power, bin_hz) - np.maximum(prominence_db(ref_power, bin_hz), 0.0)
    freqs = np.arange(added.size) * bin_hz
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    k = int(np.argmax(np.where(band, added, -np.inf)))
    return float(added[k]), float(freqs[k])


def added_tones(reference: np.ndarray, decoded: np.ndarray, sample_rate: int) -> ToneReport:
    """Tones in ``decoded [T]`` that ``reference [T]`` (same length, aligned) does not have."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    deg = np.asarray(decoded, dtype=np.float64).reshape(-1)
    if ref.shape != deg.shape:
        raise ValueError(f"reference and decoded differ in length: {ref.size} vs {deg.size}")
    ref_power, bin_hz = _frames(ref, sample_rate)
    deg_power, _ = _frames(deg, sample_rate)
    tone_db, tone_hz = _worst(deg_power, ref_power, bin_hz)
    quiet = pause_frames(ref, sample_rate)
    pause_db, pause_hz = _worst(deg_power[quiet], ref_power[quiet], bin_hz)
    return ToneReport(tone_db, tone_hz, pause_db, pause_hz)
