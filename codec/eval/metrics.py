"""Objective quality metrics of decoded audio: PESQ-WB, STOI, SI-SDR and a multi-scale mel distance.

Every numpy function takes mono signals of shape ``[T]`` (any float dtype) and returns a Python
float. :func:`score` aligns a decoded signal to its reference first (codecs add delay) and then
computes all four.

The mel distance follows DAC's ``MelSpectrogramLoss`` as DAC trains with it: seven STFT scales with
window lengths 32..2048 (hop = window // 4, periodic Hann window as audiotools uses by default,
centred frames with reflect padding), STFT magnitudes (power 1) through Slaney-style mel filterbanks
from ``librosa.filters.mel`` (0 Hz .. Nyquist), ``log10(clamp(mel, 1e-5))``, mean absolute
difference per scale, summed over the scales. DAC's band counts (5, 10, ..., 320) are for 44.1 kHz;
below that they are scaled by ``mel(sample_rate / 2) / mel(22050)`` so each band keeps DAC's width
on the mel scale (16 kHz: 4, 8, 15, 30, 60, 121, 241); above it they stay DAC's; and any count that
would leave a band without an FFT bin is lowered until none is empty. At 44.1 kHz the value equals
DAC's loss with ``mag_weight=0, log_weight=1, pow=1`` (checked in the tests).

:func:`mel_distance` computes it in numpy (``numpy.fft``); :class:`MelDistance` is the same
definition in torch (``torch.stft``), differentiable, for use as a training loss. The two are
independent implementations of one definition; the tests check that they agree.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from torch import nn

MEL_WINDOW_LENGTHS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
DAC_N_MELS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)  # DAC's band counts at 44.1 kHz
MEL_CLAMP = 1e-5
PESQ_SAMPLE_RATE = 16000
#: STOI (pystoi) works at 10 kHz on frames of 256 samples every 128 and needs 30 of them: a signal
#: of fewer than 256 + 29 * 128 samples there has too few frames, whatever it holds.
STOI_SAMPLE_RATE, STOI_MIN_SAMPLES = 10000, 256 + 29 * 128


# ------------------------------------------------------------------------------------ mel scales


@functools.cache
def mel_scales(sample_rate: int) -> tuple[tuple[int, int], ...]:
    """The ``(window_length, n_mels)`` pairs of the mel distance at ``sample_rate`` (module doc)."""
    import librosa

    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    ratio = float(librosa.hz_to_mel(sample_rate / 2.0) / librosa.hz_to_mel(22050.0))
    scales = []
    for window, base in zip(MEL_WINDOW_LENGTHS, DAC_N_MELS, strict=True):
        n_mels = max(1, round(base * min(ratio, 1.0)))
        while n_mels > 1 and _has_empty_band(sample_rate, window, n_mels):
            n_mels -= 1
        scales.append((window, n_mels))
    return tuple(scales)


def _has_empty_band(sample_rate: int, n_fft: int, n_mels: int) -> bool:
    return bool((_mel_filters(sample_rate, n_fft, n_mels).max(axis=1) <= 0).any())


@functools.cache
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney mel filterbank ``[n_mels, n_fft // 2 + 1]`` float64 (read-only, cached)."""
    import librosa

    with warnings.catch_warnings():  # librosa warns about empty bands; mel_scales avoids them
        warnings.simplefilter("ignore", UserWarning)
        filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0,
                                      fmax=sample_rate / 2.0, dtype=np.float64)
    filters.setflags(write=False)
    return filters


def _hann(length: int) -> np.ndarray:
    """Periodic Hann window ``[length]`` float64."""
    k = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * math.pi * k / length)


def _check_mel_length(n_samples: int) -> None:
    longest = MEL_WINDOW_LENGTHS[-1]
    if n_samples <= longest // 2:
        raise ValueError(f"mel distance needs more than {longest // 2} samples, got {n_samples}")


def _log_mel_numpy(x: np.ndarray, sample_rate: int, window: int, n_mels: int) -> np.ndarray:
    """``log10(clamp(mel))`` of ``x [T]``: ``[n_mels, frames]`` float64."""
    hop = window // 4
    padded = np.pad(x, window // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop]  # [frames, window]
    magnitude = np.abs(np.fft.rfft(frames * _hann(window), axis=-1))  # [frames, window//2+1]
    mel = _mel_filters(sample_rate, window, n_mels) @ magnitude.T
    return np.log10(np.maximum(mel, MEL_CLAMP))


def mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Multi-scale log-mel L1 distance (lower is better; 0 for identical signals).

    ref, deg: ``[T]``, the same length (align them first). Computed in numpy float64.
    """
    ref = _as_mono(ref, "ref").astype(np.float64)
    deg = _as_mono(deg, "deg").astype(np.float64)
    _check_same_length(ref, deg)
    _check_mel_length(ref.shape[0])
    total = 0.0
    for window, n_mels in mel_scales(sample_rate):
        diff = _log_mel_numpy(ref, sample_rate, window, n_mels) - _log_mel_numpy(deg, sample_rate,
                                                                                  window, n_mels)
        total += float(np.mean(np.abs(diff)))
    return total


class MelDistance(nn.Module):
    """The multi-scale log-mel L1 distance of :func:`mel_distance` as a differentiable torch loss.

    Windows and mel filterbanks are built once and kept as non-persistent buffers (they follow
    ``.to(device)`` but stay out of ``state_dict``). Computed in float32 (float64 inputs stay
    float64), with autocast disabled.

    Args:
        sample_rate: sample rate of the signals, in Hz.
    """

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.scales = mel_scales(self.sample_rate)
        for i, (window, n_mels) in enumerate(self.scales):
            self.register_buffer(f"window_{i}", torch.from_numpy(_hann(window)).float(),
                                 persistent=False)
            filters = torch.from_numpy(np.array(_mel_filters(self.sample_rate, window, n_mels)))
            self.register_buffer(f"filters_{i}", filters.float(), persistent=False)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Distance between ``estimate`` and ``reference``, both ``[B, 1, T]`` (or ``[B, T]``).

        Returns a scalar tensor: the sum over scales of the mean absolute log-mel difference
        (mean over batch, bands and frames).
        """
        if estimate.shape != reference.shape:
            raise ValueError(f"shapes differ: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
        _check_mel_length(estimate.shape[-1])
        dtype = torch.float64 if estimate.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            x = estimate.reshape(-1, estimate.shape[-1]).to(dtype)  # [B*C, T]
            y = reference.reshape(-1, reference.shape[-1]).to(dtype)
            total = x.new_zeros(())
            for i, (window, _) in enumerate(self.scales):
                with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
                    y_mel = self._log_mel(y, i, window)  # [B*C, n_mels, frames]
                total = total + (self._log_mel(x, i, window) - y_mel).abs().mean()
        return total

    def _log_mel(self, x: torch.Tensor, index: int, window: int) -> torch.Tensor:
        win = getattr(self, f"window_{index}").to(x.dtype)
        filters = getattr(self, f"filters_{index}").to(x.dtype)
        spec = torch.stft(x, n_fft=window, hop_length=window // 4, window=win, center=True,
                          pad_mode="reflect", return_complex=True)  # [N, window//2+1, frames]
        mel = torch.matmul(filters, spec.abs())  # [N, n_mels, frames]
        return torch.log10(mel.clamp(min=MEL_CLAMP))


# ------------------------------------------------------------------------------------- alignment


#: Below this normalised waveform correlation the waveforms are unrelated (a codec that does not keep
#: phase) and the lag comes from the energy envelopes instead.
WAVEFORM_MATCH = 0.3


def align(ref: np.ndarray, deg: np.ndarray, max_shift: int,
          envelope_window: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Undo a delay between ``deg`` and ``ref`` and trim both to their overlap.

    Finds the lag ``L`` in ``[-max_shift, max_shift]`` that maximises the cross-correlation
    ``sum_n deg[n + L] * ref[n]`` of the waveforms. When even that best correlation, normalised by
    the signals' energies, is below :data:`WAVEFORM_MATCH` (the waveforms are unrelated, e.g. a
    codec that synthesises its own phase), the waveform peak is noise and ``L`` maximises the
    correlation of the energy envelopes (power smoothed over ``envelope_window`` samples, mean
    removed) instead. Returns ``(ref[a:], deg[b:])`` cut to equal length, with ``b - a = L``
    (``L > 0``: ``deg`` lags ``ref``).

    ref: ``[T1]``, deg: ``[T2]``; returns two views of equal length ``[T]``.
    """
    ref = _as_mono(ref, "ref")
    deg = _as_mono(deg, "deg")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    lag = 0
    max_pos = min(max_shift, deg.shape[0] - 1)
    max_neg = min(max_shift, ref.shape[0] - 1)
    if (max_pos > 0 or max_neg > 0) and ref.shape[0] and deg.shape[0]:
        lags = np.arange(-max_neg, max_pos + 1)
        r, d = ref.astype(np.float64), deg.astype(np.float64)
        corr = _cross_correlation(r, d, lags)
        energy = math.sqrt(float(np.dot(r, r)) * float(np.dot(d, d)))
        best = int(np.argmax(corr))
        if energy > 0 and corr[best] / energy < WAVEFORM_MATCH:
            best = int(np.argmax(_cross_correlation(_envelope(r, envelope_window),
                                                    _envelope(d, envelope_window), lags)))
        lag = int(lags[best])
    start_ref, start_deg = (0, lag) if lag >= 0 else (-lag, 0)
    length = max(0, min(ref.shape[0] - start_ref, deg.shape[0] - start_deg))
    return ref[start_ref:start_ref + length], deg[start_deg:start_deg + length]


def _cross_correlation(ref: np.ndarray, deg: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """``sum_n deg[n + L] * ref[n]`` for each L in ``lags`` (one FFT)."""
    n_fft = 1 << (ref.shape[0] + deg.shape[0] - 2).bit_length()  # power of two >= T1 + T2 - 1
    spectrum = np.fft.rfft(deg, n_fft) * np.conj(np.fft.rfft(ref, n_fft))
    return np.fft.irfft(spectrum, n_fft)[lags % n_fft]


def _envelope(x: np.ndarray, window: int) -> np.ndarray:
    """Power smoothed by a ``window``-sample moving average, mean removed; ``[T]`` -> ``[T]``."""
    power = np.convolve(x * x, np.full(max(1, window), 1.0 / max(1, window)), mode="same")
    return power - power.mean()


# ----------------------------------------------------------------------------------------- metrics


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2 MOS-LQO, about 1.0..4.64; higher is better).

    ref, deg: ``[T]`` at ``sample_rate`` (resampled to 16 kHz with soxr if different). Returns NaN,
    without raising, for signals PESQ rejects (silence, no utterance, shorter than 0.25 s).
    """
    from pesq import PesqError, pesq

    ref = _as_mono(ref, "ref").astype(np.float64)
    deg = _as_mono(deg, "deg").astype(np.float64)
    if sample_rate != PESQ_SAMPLE_RATE:
        ref = _resample(ref, sample_rate, PESQ_SAMPLE_RATE)
        deg = _resample(deg, sample_rate, PESQ_SAMPLE_RATE)
    length = min(ref.shape[0], deg.shape[0])
    ref, deg = ref[:length], deg[:length]
    if length == 0 or not np.any(ref) or not np.any(deg):
        return math.nan
    try:
        return float(pesq(PESQ_SAMPLE_RATE, ref, deg, "wb"))
    except PesqError:
        return math.nan


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Short-time objective intelligibility (pystoi, classic STOI; about 0..1, higher is better).

    ref, deg: ``[T]`` at ``sample_rate`` (pystoi resamples to 10 kHz itself); cut to equal length.
    Returns NaN, without raising, where STOI is undefined: fewer than 30 frames of 25.6 ms (about
    0.4 s) that are not silent, for which pystoi itself would warn and return 1e-5.
    """
    from pystoi import stoi as pystoi_stoi

    ref = _as_mono(ref, "ref").astype(np.float64)
    deg = _as_mono(deg, "deg").astype(np.float64)
    length = min(ref.shape[0], deg.shape[0])
    if length * STOI_SAMPLE_RATE < STOI_MIN_SAMPLES * sample_rate:
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        value = float(pystoi_stoi(ref[:length], deg[:length], sample_rate, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return math.nan
    return value


def si_sdr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better).

    ref, deg: ``[T]``, the same length; both are made zero-mean. Identical signals give a very large
    value (about 10 * log10(energy / 1e-20)), not infinity.
    """
    eps = 1e-20
    ref = _as_mono(ref, "ref").astype(np.float64)
    deg = _as_mono(deg, "deg").astype(np.float64)
    _check_same_length(ref, deg)
    ref = ref - ref.mean()
    deg = deg - deg.mean()
    scale = float(np.dot(deg, ref)) / (float(np.dot(ref, ref)) + eps)
    target = scale * ref
    noise = deg - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def score(ref: np.ndarray, deg: np.ndarray, sample_rate: int,
          max_shift_s: float = 0.05) -> dict[str, float]:
    """Align ``deg`` to ``ref`` (lags up to ``max_shift_s`` seconds) and compute all four metrics.

    ref, deg: ``[T]`` at ``sample_rate``. Returns ``{"pesq_wb", "stoi", "mel_distance", "si_sdr"}``;
    a metric that is undefined for these signals is NaN (PESQ-WB and STOI below about 0.25 / 0.4 s
    or on silence, the mel distance at or below half its longest window, 1024 samples; SI-SDR on
    nothing), so that a short clip is scored on what can be scored.
    """
    ref, deg = align(ref, deg, max_shift=int(round(max_shift_s * sample_rate)))
    length = ref.shape[0]
    return {
        "pesq_wb": pesq_wb(ref, deg, sample_rate),
        "stoi": stoi(ref, deg, sample_rate),
        "mel_distance": (mel_distance(ref, deg, sample_rate) if length > MEL_WINDOW_LENGTHS[-1] // 2
                         else math.nan),
        "si_sdr": si_sdr(ref, deg) if length else math.nan,
    }


# ----------------------------------------------------------------------------------------- helpers


def _as_mono(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono [T], got shape {x.shape}")
    return x


def _check_same_length(ref: np.ndarray, deg: np.ndarray) -> None:
    if ref.shape != deg.shape:
        raise ValueError(f"ref and deg differ in length ({ref.shape[0]} vs {deg.shape[0]}); "
                         "align them first")


def _resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(x, from_rate, to_rate, quality="HQ"), dtype=np.float64)
