"""Training and validation audio: random loudness-normalised crops read from disk on demand.

Sources are folders (searched recursively for wav/flac/ogg), single audio files, or corpus
``manifest.csv`` files (rows filtered by ``split``; ``file`` is relative to the manifest's folder).
Only file headers are read at construction; every item reads just its crop (soundfile start/stop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainingError
from .augment import Augmentation
from .corpus import read_manifest

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MAX_GAIN_DB = 24.0  # a quiet crop is raised at most this much (keeps pauses from becoming noise)


def _list_files(sources: Sequence[Path], split: str | None) -> list[tuple[Path, str]]:
    """(path, group) pairs; group = speaker for manifest rows, the parent folder otherwise."""
    files: list[tuple[Path, str]] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.rglob("*")
                           if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            files += [(p, str(p.parent)) for p in found]
        elif source.is_file() and source.suffix.lower() == ".csv":
            for row in read_manifest(source):
                if split is None or row["split"] == split:
                    files.append((source.parent / row["file"],
                                  f"{row['source']}/{row['speaker']}"))
        elif source.is_file() and source.suffix.lower() in AUDIO_SUFFIXES:
            files.append((source, str(source.parent)))
        elif source.is_file():
            raise TrainingError(f"{source}: a training source must be a folder, a manifest.csv "
                                f"or an audio file ({', '.join(AUDIO_SUFFIXES)})")
        else:
            raise TrainingError(f"training source {source} does not exist")
    return files


def _index(files: list[tuple[Path, str]]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Paths, groups, frame counts and sample rates from the headers (unreadable/empty skipped)."""
    import soundfile as sf

    paths, groups, frames, rates = [], [], [], []
    for path, group in files:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue
        if info.frames > 0:
            paths.append(str(path))
            groups.append(group)
            frames.append(info.frames)
            rates.append(info.samplerate)
    return paths, groups, np.asarray(frames, dtype=np.int64), np.asarray(rates, dtype=np.int64)


def _read_segment(path: str, file_rate: int, start: int, n_file: int, sample_rate: int,
                  n_out: int, speed: float = 1.0) -> np.ndarray:
    """float32 [n_out]: ``n_file`` frames from ``start`` at ``file_rate``, resampled + padded
    (played ``speed`` times faster: read as if recorded at ``file_rate * speed``)."""
    import soundfile as sf
    import soxr

    data, _ = sf.read(path, start=start, stop=start + n_file, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if (file_rate != sample_rate or speed != 1.0) and len(mono) > 0:
        mono = soxr.resample(mono, file_rate * speed, sample_rate, quality="HQ")
    out = np.zeros(n_out, dtype=np.float32)
    n = min(n_out, len(mono))
    out[:n] = mono[:n]
    return out


def normalise_loudness(audio: np.ndarray, target_db: float) -> np.ndarray:
    """Scale ``audio`` [T] to RMS ``target_db`` dBFS (gain <= MAX_GAIN_DB, peak kept <= 1)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms < 1e-8:
        return audio
    gain_db = min(target_db - 20 * math.log10(rms), MAX_GAIN_DB)
    gain = 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(audio)))
    gain = min(gain, 0.999 / peak) if peak > 0 else gain
    return (audio * gain).astype(np.float32)


class AudioDataset(torch.utils.data.Dataset):
    """Random crops of ``segment_samples`` at ``sample_rate``: item ``i`` -> float32 tensor [1, T].

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: a file drawn with probability
    proportional to its duration, a uniform crop start, and a gain putting the crop's RMS at
    ``target_rms_db`` +- uniform ``gain_jitter_db`` (limited so the peak stays below 1.0). Files
    shorter than the segment are zero-padded at the end; channels are averaged; other sample rates
    are resampled with soxr. Works with DataLoader workers (no open files are held).

    epoch_size: ``len(self)`` (default: the number of files). :meth:`set_epoch` gives new crops.
    augment: changes each crop (:class:`codec.data.augment.Augmentation`) before the gain; None or a
    disabled one leaves the crops (and their random draws) exactly as without it.
    """

    def __init__(self, sources: Sequence[Path], sample_rate: int, segment_samples: int,
                 split: str | None = "train", seed: int = 0, target_rms_db: float = -20.0,
                 gain_jitter_db: float = 6.0, epoch_size: int | None = None,
                 augment: Augmentation | None = None) -> None:
        if segment_samples < 1:
            raise TrainingError(f"segment_samples must be >= 1, got {segment_samples}")
        self.paths, self.groups, self.frames, self.rates = _index(_list_files(sources, split))
        if not self.paths:
            where = ", ".join(str(s) for s in sources) or "(none)"
            split_note = f" (split {split!r})" if split is not None else ""
            raise TrainingError(f"no audio files found in training sources{split_note}: {where}")
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.seed = seed
        self.epoch = 0
        self.target_rms_db = target_rms_db
        self.gain_jitter_db = gain_jitter_db
        self.durations = self.frames / self.rates
        self._cumulative = np.cumsum(self.durations)
        self.epoch_size = epoch_size if epoch_size is not None else len(self.paths)
        self.augment = augment if augment is not None and augment.enabled else None

    @property
    def total_seconds(self) -> float:
        return float(self._cumulative[-1])

    def set_epoch(self, epoch: int) -> None:
        """Use crops of ``epoch`` (set before creating the DataLoader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.epoch_size:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(np.searchsorted(self._cumulative, rng.uniform(0, self._cumulative[-1]),
                                side="right"))
        k = min(k, len(self.paths) - 1)
        rate = int(self.rates[k])
        speed = self.augment.speed_factor(rng) if self.augment is not None else 1.0
        n_file = int(math.ceil(self.segment_samples * rate * speed / self.sample_rate))
        start = int(rng.integers(0, max(0, int(self.frames[k]) - n_file) + 1))
        audio = _read_segment(self.paths[k], rate, start, n_file, self.sample_rate,
                              self.segment_samples, speed)
        if self.augment is not None:
            audio = self.augment.apply(audio, self.sample_rate, rng)
        target = self.target_rms_db + rng.uniform(-self.gain_jitter_db, self.gain_jitter_db)
        audio = normalise_loudness(audio, target)
        return torch.from_numpy(audio).unsqueeze(0)


class ValidationSet:
    """A fixed list of evaluation clips: the first ``seconds`` of up to ``max_files`` files.

    Files are taken round-robin across speakers (manifest) or folders, in sorted order, preferring
    files of at least ``min_seconds``; clips keep their natural length (<= ``seconds``) and are
    loudness-normalised to ``target_rms_db`` without jitter. ``self[i]`` -> float32 tensor [1, T_i];
    ``self.names[i]`` is its file path. ``corpus_sources`` keeps manifest rows of those sources only
    (e.g. the real-speech ones) and takes the same number of clips from each.
    """

    def __init__(self, sources: Sequence[Path], sample_rate: int, seconds: float = 4.0,
                 max_files: int = 32, split: str | None = "valid", target_rms_db: float = -20.0,
                 min_seconds: float = 1.0, corpus_sources: Sequence[str] | None = None) -> None:
        listed = _list_files(sources, split)
        if corpus_sources is not None:  # manifest rows of these corpus sources only
            listed = [(p, g) for p, g in listed if g.split("/")[0] in set(corpus_sources)]
        paths, groups, frames, rates = _index(listed)
        if not paths:
            raise TrainingError(f"no audio files found for validation (split {split!r}): "
                                + ", ".join(str(s) for s in sources))
        durations = frames / rates
        order = sorted(range(len(paths)), key=lambda i: (durations[i] < min_seconds, paths[i]))
        if corpus_sources is None:
            chosen = _round_robin(order, groups, max_files)
        else:  # the same number of clips from each source (as far as it has them)
            per_source = -(-max_files // max(1, len(corpus_sources)))
            chosen = [i for source in corpus_sources
                      for i in _round_robin([i for i in order if groups[i].split("/")[0] == source],
                                            groups, per_source)][:max_files]
        self.sample_rate = sample_rate
        self.names = [paths[i] for i in chosen]
        self._clips = []
        for i in chosen:
            rate = int(rates[i])
            n_file = min(int(frames[i]), int(seconds * rate))
            n_out = int(round(n_file * sample_rate / rate))
            audio = _read_segment(paths[i], rate, 0, n_file, sample_rate, n_out)
            self._clips.append(torch.from_numpy(normalise_loudness(audio, target_rms_db))[None])

    def __len__(self) -> int:
        return len(self._clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._clips[index]

    @property
    def total_seconds(self) -> float:
        return sum(c.shape[-1] for c in self._clips) / self.sample_rate


def _round_robin(order: Sequence[int], groups: Sequence[str], n: int) -> list[int]:
    """Up to ``n`` of ``order`` taken one per group (speaker) in turn, groups in sorted order."""
    by_group: dict[str, list[int]] = {}
    for i in order:
        by_group.setdefault(groups[i], []).append(i)
    chosen: list[int] = []
    queues = [by_group[g] for g in sorted(by_group)]
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        chosen += [q[depth] for q in queues if depth < len(q)][: n - len(chosen)]
        depth += 1
    return chosen


def synth_speechlike(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A cheap deterministic speech-like test signal, float32 [T] with T = round(seconds * rate).

    A harmonic source whose pitch glides (80-250 Hz) is shaped by three moving formant resonances
    and a spectral tilt, mixed with a little breath noise, under a syllabic (~4 Hz) envelope with
    short pauses; peak 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    t = np.arange(n) / sample_rate

    def smooth_curve(lo: float, hi: float, rate_hz: float) -> np.ndarray:
        knots = max(2, int(seconds * rate_hz) + 2)
        values = rng.uniform(lo, hi, knots)
        return np.interp(t, np.linspace(0, seconds, knots), values)

    f0 = smooth_curve(80, 250, 3.0)
    phase = (2 * np.pi * np.cumsum(f0) / sample_rate).astype(np.float32)
    n_harm = int(min(40, (sample_rate / 2) // 80))
    hop = max(1, sample_rate // 200)  # harmonic gains change smoothly: compute them every 5 ms
    coarse = np.arange(0, n, hop)
    k = np.arange(1, n_harm + 1)[:, None]  # [K, 1]
    freqs = k * f0[None, coarse]  # [K, T/hop]
    gain = np.zeros_like(freqs)
    for lo, hi, bw in ((300, 850, 80), (850, 2300, 110), (2300, 3200, 160)):
        formant = smooth_curve(lo, hi, 5.0)[None, coarse]
        gain += 1.0 / (1.0 + ((freqs - formant) / bw) ** 2)
    gain *= (freqs < 0.45 * sample_rate) / k  # spectral tilt, no aliasing
    gain = np.repeat(gain.astype(np.float32), hop, axis=1)[:, :n]  # [K, T]
    voiced = np.einsum("kt,kt->t", gain, np.sin(k.astype(np.float32) * phase[None, :]))
    voiced /= np.max(np.abs(voiced)) + 1e-9

    noise = rng.standard_normal(n)
    noise = np.convolve(noise, np.array([1.0, -0.9]), mode="same") * 0.05

    # syllables: raised-sine bumps separated by short gaps and occasional pauses
    n_syll = int(seconds / 0.12) + 2
    lengths = rng.uniform(0.12, 0.35, n_syll)
    gaps = np.where(rng.random(n_syll) < 0.12, rng.uniform(0.25, 0.5, n_syll),
                    rng.uniform(0, 0.05, n_syll))
    starts = np.concatenate([[0.0], np.cumsum(lengths + gaps)[:-1]])
    levels = rng.uniform(0.4, 1.0, n_syll)
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, n_syll - 1)
    local = (t - starts[idx]) / lengths[idx]
    env = np.where(local < 1.0, np.sin(np.pi * np.clip(local, 0, 1)) ** 2 * levels[idx], 0.0)
    signal = env * (voiced + noise)
    peak = np.max(np.abs(signal))
    return (0.5 * signal / peak if peak > 0 else signal).astype(np.float32)
