"""Spectrograms for listening pages: log-magnitude STFTs, PNG images on a shared colour scale, and
the per-band error of a decoded signal against its reference.

    spec = log_spectrogram(audio, 16000)                 # [F, N] dB, F = n_fft // 2 + 1
    write_spectrogram_png(path, spec, top_db=spec.max())  # low frequencies at the bottom
    errors = band_errors(ref, decoded, 16000)             # [n_bands] mean |dB difference|

Every spectrogram of one clip is drawn with the same ``top_db`` (the reference's peak), so a codec
that loses energy shows darker and one that adds noise shows brighter than the original beside it.
The STFT: periodic Hann window of ~32 ms (a power of two: 512 samples at 16 kHz), hop of 10 ms,
frames centred with zero padding, ``20 * log10(max(|X|, 1e-10))`` dB (|X| of a full-scale sine ~
n_fft / 4).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .metrics import _hann, align

#: Decibels below ``top_db`` that the colour scale spans; quieter bins are drawn at its floor.
RANGE_DB = 80.0
#: Images are max-pooled to at most this many rows (frequency) and columns (time): 257 bins at
#: 16 kHz become 129 rows, 10 ms per column up to 12 s.
MAX_ROWS = 160
MAX_COLUMNS = 1200
#: Colours of the scale (64: 1.3 dB steps over 80 dB; fewer colours, smaller PNGs).
LEVELS = 64
#: Matplotlib colour map of the images (perceptually uniform, dark = quiet).
COLORMAP = "magma"
#: Width of one band of :func:`band_errors`, in Hz.
BAND_HZ = 500.0
#: Frames of the reference quieter than this many dB below its loudest frame are left out of
#: :func:`band_errors` (silence says nothing about a codec and its dB differences are noise).
ACTIVE_DB = 50.0


def stft_size(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop_length)`` at ``sample_rate``: the power of two nearest 32 ms, and 10 ms."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    n_fft = 1 << max(4, round(np.log2(0.032 * sample_rate)))
    return n_fft, max(1, round(0.010 * sample_rate))


def log_spectrogram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-magnitude STFT of ``audio [T]``: ``[F, N]`` float32 dB, F = n_fft // 2 + 1 bins from 0 Hz
    to Nyquist, N = T // hop + 1 frames (see the module doc). Empty audio gives one silent frame."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono [T], got shape {x.shape}")
    n_fft, hop = stft_size(sample_rate)
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    n_frames = x.shape[0] // hop + 1
    padded = np.pad(padded, (0, max(0, (n_frames - 1) * hop + n_fft - padded.shape[0])))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]  # [N, n_fft]
    magnitude = np.abs(np.fft.rfft(frames * _hann(n_fft), axis=1))  # [N, F]
    return (20.0 * np.log10(np.maximum(magnitude, 1e-10))).T.astype(np.float32)


@functools.lru_cache(maxsize=2)
def palette(name: str = COLORMAP, levels: int = LEVELS) -> tuple[int, ...]:
    """``levels`` RGB entries sampled evenly from matplotlib colour map ``name``, flat
    ``(r0, g0, b0, r1, ...)``: palette index 0 is the quietest colour."""
    from matplotlib import colormaps

    rgb = colormaps[name](np.linspace(0.0, 1.0, levels))[:, :3]
    return tuple(int(v) for v in np.round(rgb * 255).astype(np.uint8).ravel())


def _max_pool(spec: np.ndarray, axis: int, limit: int) -> np.ndarray:
    """Max over groups of ``ceil(n / limit)`` neighbours along ``axis`` so at most ``limit`` remain
    (the last group may be shorter)."""
    n = spec.shape[axis]
    group = -(-n // limit)
    if group <= 1:
        return spec
    starts = np.arange(0, n, group)
    return np.maximum.reduceat(spec, starts, axis=axis)


def colour_indices(spec_db: np.ndarray, top_db: float, range_db: float = RANGE_DB,
                   levels: int = LEVELS) -> np.ndarray:
    """Map ``spec_db [F, N]`` to palette indices ``[F', N']`` uint8 in ``0 .. levels - 1``, row 0 =
    the highest frequency: ``top_db`` and above -> ``levels - 1``, ``top_db - range_db`` and below
    -> 0. More than :data:`MAX_ROWS` bins or :data:`MAX_COLUMNS` frames are max-pooled (neighbouring
    bins / frames), so a loud detail is never averaged away."""
    spec = np.asarray(spec_db, dtype=np.float64)
    if spec.ndim != 2 or 0 in spec.shape:
        raise ValueError(f"spectrogram must be [F, N] with F, N > 0, got shape {spec.shape}")
    if range_db <= 0 or not 2 <= levels <= 256:
        raise ValueError(f"need range_db > 0 and 2 <= levels <= 256, got {range_db}, {levels}")
    spec = _max_pool(_max_pool(spec, 0, MAX_ROWS), 1, MAX_COLUMNS)
    scaled = np.clip((spec - (top_db - range_db)) / range_db, 0.0, 1.0)
    return np.round(scaled * (levels - 1)).astype(np.uint8)[::-1]


def write_spectrogram_png(path: Path, spec_db: np.ndarray, top_db: float,
                          range_db: float = RANGE_DB) -> tuple[int, int]:
    """Write ``spec_db [F, N]`` as an indexed-colour PNG (:func:`colour_indices`, :func:`palette`).

    Returns the image's ``(width, height)`` in pixels.
    """
    from PIL import Image

    indices = colour_indices(spec_db, top_db, range_db)
    image = Image.fromarray(np.ascontiguousarray(indices))  # mode "L" ...
    image.putpalette(palette())  # ... becomes "P" with the colour map
    image.save(Path(path), format="PNG", optimize=True)
    return image.width, image.height


def band_errors(ref: np.ndarray, deg: np.ndarray, sample_rate: int, band_hz: float = BAND_HZ,
                range_db: float = RANGE_DB, max_shift_s: float = 0.05) -> np.ndarray:
    """Mean absolute dB difference between the spectrograms of ``deg`` and ``ref``, per band of
    ``band_hz`` from 0 Hz to Nyquist: ``[ceil(nyquist / band_hz)]`` float64.

    ``deg`` is aligned to ``ref`` first (:func:`codec.eval.metrics.align`, lags up to
    ``max_shift_s``); both spectrograms are floored at ``range_db`` below the reference's peak, and
    only frames of the reference within :data:`ACTIVE_DB` of its loudest frame count. A band is NaN
    when no frame counts (a silent reference).
    """
    ref, deg = align(np.asarray(ref, np.float64), np.asarray(deg, np.float64),
                     max_shift=int(round(max_shift_s * sample_rate)))
    ref_db, deg_db = log_spectrogram(ref, sample_rate), log_spectrogram(deg, sample_rate)
    floor = float(ref_db.max()) - range_db
    ref_db, deg_db = np.maximum(ref_db, floor), np.maximum(deg_db, floor)
    frame_db = 10.0 * np.log10(np.maximum(np.mean(10.0 ** (ref_db / 10.0), axis=0), 1e-20))
    active = frame_db >= frame_db.max() - ACTIVE_DB
    if not np.any(ref):
        active[:] = False
    error = np.abs(deg_db - ref_db)[:, active].mean(axis=1) if active.any() \
        else np.full(ref_db.shape[0], np.nan)  # [F]
    n_fft, _ = stft_size(sample_rate)
    freqs = np.arange(ref_db.shape[0]) * sample_rate / n_fft
    n_bands = int(np.ceil((sample_rate / 2.0) / band_hz))
    band = np.minimum((freqs // band_hz).astype(int), n_bands - 1)
    return np.array([error[band == b].mean() if np.any(band == b) else np.nan
                     for b in range(n_bands)], dtype=np.float64)
