"""The listening page of an evaluation: ``index.html`` with the scores, the rate-quality plot and, for a
few clips, an audio player, a spectrogram and a per-band error plot per system.

    store = DecodedStore(tmp / "decoded")
    results = measure(files, systems, on_decoded=store.save)      # codec.eval.report
    results = write_report(results, out)
    write_listening_page(results, out, n_clips=3,
                         reference=lambda i: load_reference(files[i], results.sample_rate),
                         decoded=store.load)

The clips span the PESQ-WB range (:func:`choose_clips`: worst, median, best, ...). What the page
refers to is written beside it: ``audio/<clip>/<system>.flac`` (16-bit FLAC, mono at the scoring
rate: exactly what was scored, up to 16-bit rounding) and ``spectrograms/<clip>/<system>.png``.
Plain HTML and CSS, no script and no network: the folder can be opened from disk or copied anywhere.
Every score on the page is a ``<data value="...">`` element holding the number results.json holds
(``data-file`` / ``data-system`` index ``results.files`` / ``results.systems``; ``data-metric``
names the score), so tests can check the page against the JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io.fileio import atomic_output
from .page import METRIC_LABELS, Card, Clip, render_page  # noqa: F401  (Clip: choose_clips's result)
from .report import ProgressFn, Results, SystemResult
from .spectrogram import band_errors, log_spectrogram, write_spectrogram_png

PAGE_NAME = "index.html"
AUDIO_FOLDER = "audio"
SPECTROGRAM_FOLDER = "spectrograms"

ReferenceFn = Callable[[int], np.ndarray]
DecodedAudioFn = Callable[[int, int], np.ndarray]


class DecodedStore:
    """Keeps every decoded signal of an evaluation on disk (16-bit ``.npy``, one per file and system)
    until the page has chosen its clips: memory stays flat however many files are scored."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, file_index: int, system_index: int) -> Path:
        return self.folder / f"{file_index}-{system_index}.npy"

    def save(self, file_index: int, system_index: int, decoded: np.ndarray) -> None:
        """Store ``decoded [T]`` float (clipped to [-1, 1], rounded to 16 bits)."""
        np.save(self._path(file_index, system_index), to_pcm16(decoded), allow_pickle=False)

    def load(self, file_index: int, system_index: int) -> np.ndarray:
        """The stored signal ``[T]`` int16."""
        return np.load(self._path(file_index, system_index), allow_pickle=False)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """``[T]`` float in [-1, 1] (clipped) -> int16; int16 input is returned unchanged."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio
    return np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767.0).astype(np.int16)


def _as_float(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32767.0
    return audio.astype(np.float32)


# ------------------------------------------------------------------------------------ clip choice


def ranking_system(results: Results) -> str:
    """The system name clips are ranked by: ``diveq`` when it was evaluated, else the first one."""
    names = [s.name for s in results.systems]
    return "diveq" if "diveq" in names else names[0]


def file_ranking_scores(results: Results, rank_by: str) -> np.ndarray:
    """Per file, the mean PESQ-WB over the systems named ``rank_by`` (all its bitrates): ``[files]``
    float64, NaN where none was defined."""
    group = [s for s in results.systems if s.name == rank_by]
    if not group:
        raise ValueError(f"no system named {rank_by!r} in the results")
    values = np.array([[f.scores["pesq_wb"] for f in s.files] for s in group], dtype=np.float64)
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def choose_clips(results: Results, n_clips: int, rank_by: str | None = None) -> list[Clip]:
    """``n_clips`` files spread evenly over the ranking (:func:`file_ranking_scores`), lowest first:
    with 3, the worst, the median and the best. Files without a score rank after all others; fewer
    files than ``n_clips`` gives every file."""
    if n_clips < 0:
        raise ValueError(f"n_clips must be >= 0, got {n_clips}")
    scores = file_ranking_scores(results, rank_by or ranking_system(results))
    order = sorted(range(len(scores)),
                   key=lambda i: (not math.isfinite(scores[i]), scores[i] if math.isfinite(scores[i])
                                  else 0.0, i))
    n_files = len(order)
    n = min(n_clips, n_files)
    if n == 0:
        return []
    positions = [0] if n == 1 else sorted({round(k * (n_files - 1) / (n - 1)) for k in range(n)})
    clips = []
    for k, pos in enumerate(positions):
        if n_files == 1:
            label = ""
        elif pos == 0:
            label = "worst"
        elif pos == n_files - 1:
            label = "best"
        elif len(positions) % 2 == 1 and k == len(positions) // 2:
            label = "median"
        else:
            label = f"{_ordinal(round(100 * pos / (n_files - 1)))} percentile"
        clips.append(Clip(index=order[pos], rank=pos, n_ranked=n_files, label=label,
                          score=float(scores[order[pos]])))
    return clips


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ------------------------------------------------------------------------------------------- files


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def system_slug(system: SystemResult) -> str:
    """``diveq-1.5kbps``, ``codec2-3.2kbps``, ..."""
    return slug(f"{system.name}-{system.kbps:g}kbps")


def _write_clip_files(out_dir: Path, clip: Clip, folder: str, results: Results,
                      reference: np.ndarray, decoded: DecodedAudioFn,
                      progress: Callable[[str], None]) -> list[Card]:
    """Write the audio and spectrograms of one clip; return its cards (original first)."""
    import soundfile

    rate = results.sample_rate
    audio_dir, image_dir = out_dir / AUDIO_FOLDER / folder, out_dir / SPECTROGRAM_FOLDER / folder
    audio_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    ref_pcm = to_pcm16(reference)
    ref = _as_float(ref_pcm)
    top_db = float(log_spectrogram(ref, rate).max())  # one colour scale for the whole clip
    cards = []
    signals: list[tuple[int | None, str, np.ndarray]] = [(None, "original", ref_pcm)]
    signals += [(j, system_slug(s), to_pcm16(decoded(clip.index, j)))
                for j, s in enumerate(results.systems)]
    for system, name, pcm in signals:
        audio_path, image_path = audio_dir / f"{name}.flac", image_dir / f"{name}.png"
        soundfile.write(str(audio_path), pcm, rate, format="FLAC", subtype="PCM_16",
                        compression_level=1.0)
        signal = _as_float(pcm)
        size = write_spectrogram_png(image_path, log_spectrogram(signal, rate), top_db)
        errors = None if system is None else band_errors(ref, signal, rate)
        cards.append(Card(system, audio_path.relative_to(out_dir).as_posix(),
                           image_path.relative_to(out_dir).as_posix(), size, errors))
        progress(f"{folder}: {name}")
    return cards


def write_listening_page(results: Results, out_dir: Path, *, n_clips: int = 3,
                         reference: ReferenceFn, decoded: DecodedAudioFn,
                         rank_by: str | None = None, title: str = "diveq-codec listening report",
                         progress: ProgressFn | None = None) -> Path:
    """Write ``out_dir/index.html`` and the audio and spectrograms it shows (module doc).

    ``out_dir`` must already hold the report of :func:`codec.eval.report.write_report` (the page
    shows its plot and links its files). ``reference(file_index)`` gives the reference ``[T]`` and
    ``decoded(file_index, system_index)`` the decoded signal ``[T]`` (float in [-1, 1] or int16),
    both mono at ``results.sample_rate``. ``n_clips`` (0 for none) clips are chosen by
    :func:`choose_clips` with ``rank_by`` (default :func:`ranking_system`). ``progress(done, total,
    label)`` is called after each file written. Returns the page's path.
    """
    out_dir = Path(out_dir)
    rank_by = rank_by or ranking_system(results)
    clips = choose_clips(results, n_clips, rank_by)
    total = len(clips) * (len(results.systems) + 1)
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    for folder in (AUDIO_FOLDER, SPECTROGRAM_FOLDER):  # even without clips: they replace old ones
        (out_dir / folder).mkdir(exist_ok=True)
    rows = []
    for number, clip in enumerate(clips, start=1):
        folder = slug(f"{number:02d}-{Path(results.files[clip.index]).stem}")
        cards = _write_clip_files(out_dir, clip, folder, results, reference(clip.index), decoded,
                                  step)
        rows.append((clip, cards))
    page = out_dir / PAGE_NAME
    with atomic_output(page, force=True) as tmp:
        tmp.write_text(render_page(results, rows, rank_by, title), encoding="utf-8")
    return page
