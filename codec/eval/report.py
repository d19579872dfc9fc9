"""Run codecs over reference files, score them, and write a report (markdown, JSON and a plot).

    systems = [System("opus", 6.0, OpusAnchor(6).run), System("diveq", 3.0, my_run)]
    results = evaluate(find_audio_files(Path("refs")), systems, Path("eval-out"))

A :class:`System` is one codec at one operating point: ``run(audio [T], sample_rate)`` returns
``(decoded [T] or [C, T], n_bytes, encode_s, decode_s)``. References are read with soundfile, mixed
to mono and resampled (soxr) to ``sample_rate`` (16 kHz by default); every system gets them at that
rate and is scored at that rate (:func:`codec.eval.metrics.score`, DNSMOS and the added-tone figure).
Per system the report gives mean and standard deviation over files of PESQ-WB, STOI, mel distance,
SI-SDR, DNSMOS (OVRL, SIG, BAK, P.808) and the added tone (dB above the local spectral floor, where
the original has no peak), with the originals' own DNSMOS as the ceiling; the real bitrate (all
compressed bytes * 8 / all reference seconds), and speed as reference seconds / run seconds ("x real
time", wall clock of the ``run`` callable's own timings).

:func:`evaluate` is :func:`measure` (run and score; ``on_decoded`` receives every decoded signal,
which the listening page of :mod:`codec.eval.listen` keeps) followed by :func:`write_report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, UsageError
from ..io.fileio import atomic_output
from .dnsmos import dnsmos
from .metrics import align, score
from .tones import added_tones

AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg")
#: Reference-based metrics (:func:`codec.eval.metrics.score`), the no-reference DNSMOS scores
#: (:mod:`codec.eval.dnsmos`) and the largest added stationary tone (:mod:`codec.eval.tones`).
METRICS: tuple[str, ...] = ("pesq_wb", "stoi", "mel_distance", "si_sdr", "dnsmos_ovrl", "dnsmos_sig",
                            "dnsmos_bak", "dnsmos_p808", "tone_db")
#: What the originals themselves are scored on (the ceiling of the no-reference metrics).
ORIGINAL_METRICS: tuple[str, ...] = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")
OUTPUT_NAMES: tuple[str, ...] = ("results.md", "results.json", "rate_quality.png")

RunFn = Callable[[np.ndarray, int], tuple[np.ndarray, int, float, float]]
ProgressFn = Callable[[int, int, str], None]
DecodedFn = Callable[[int, int, np.ndarray], None]


@dataclasses.dataclass(frozen=True)
class System:
    """One codec at one operating point.

    name: codec name (systems sharing a name form one line in the plot).
    kbps: nominal bitrate (a label; the report measures the real one).
    run: ``run(audio [T] float32, sample_rate)`` ->
        ``(decoded [T] or [C, T], n_bytes, encode_s, decode_s)``.
    """

    name: str
    kbps: float
    run: RunFn


@dataclasses.dataclass(frozen=True)
class FileScore:
    """One system on one reference file."""

    file: str
    duration_s: float
    n_bytes: int
    encode_s: float
    decode_s: float
    scores: dict[str, float]


@dataclasses.dataclass(frozen=True)
class SystemResult:
    """One system over all files: ``mean`` / ``std`` per metric (NaN scores left out, counted in
    ``n_nan``), real bitrate and speed."""

    name: str
    kbps: float
    n_files: int
    mean: dict[str, float]
    std: dict[str, float]
    n_nan: dict[str, int]
    real_kbps: float
    encode_x_realtime: float
    decode_x_realtime: float
    files: tuple[FileScore, ...]


@dataclasses.dataclass(frozen=True)
class Results:
    """The whole evaluation; ``outputs`` are the paths written."""

    sample_rate: int
    files: tuple[str, ...]
    total_duration_s: float
    systems: tuple[SystemResult, ...]
    notes: tuple[str, ...]
    outputs: tuple[Path, ...]
    original: dict[str, float] = dataclasses.field(default_factory=dict)  # ORIGINAL_METRICS means

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN becomes None)."""
        data = dataclasses.asdict(self)
        data["outputs"] = [str(p) for p in self.outputs]
        return _nan_to_none(data)


# ----------------------------------------------------------------------------------------- inputs


def find_audio_files(root: Path) -> list[Path]:
    """The .wav/.flac/.ogg files under ``root`` (recursive, sorted).

    Raises UsageError if ``root`` is not a directory, AudioError if it holds no audio file.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"reference directory not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AudioError(f"no {'/'.join(AUDIO_SUFFIXES)} files under {root}")
    return files


def load_reference(path: Path, sample_rate: int) -> np.ndarray:
    """Read ``path``, mix to mono, resample to ``sample_rate``: ``[T]`` float32.

    Raises AudioError for unreadable, empty or non-finite audio.
    """
    import soundfile
    import soxr

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise AudioError(f"cannot read audio file {path}: {exc}") from None
    if audio.shape[0] == 0:
        raise AudioError(f"audio file is empty: {path}")
    if not np.isfinite(audio).all():
        raise AudioError(f"audio file holds NaN/Inf samples: {path}")
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


# ------------------------------------------------------------------------------------ evaluation


def evaluate(ref_files: Sequence[Path], systems: Sequence[System], out_dir: Path, *,
             sample_rate: int = 16000, notes: Sequence[str] = (), force: bool = False,
             progress: ProgressFn | None = None, on_decoded: DecodedFn | None = None) -> Results:
    """Run every system on every reference file, score, and write the report into ``out_dir``:
    :func:`measure` then :func:`write_report` (whose docs say what each argument does)."""
    _check_outputs(Path(out_dir), force)  # before any slow work
    results = measure(ref_files, systems, sample_rate=sample_rate, notes=notes, progress=progress,
                      on_decoded=on_decoded)
    return write_report(results, out_dir, force=force)


def measure(ref_files: Sequence[Path], systems: Sequence[System], *, sample_rate: int = 16000,
            notes: Sequence[str] = (), progress: ProgressFn | None = None,
            on_decoded: DecodedFn | None = None) -> Results:
    """Run every system on every reference file and score it; writes nothing (``outputs`` is empty).

    ``notes`` (e.g. skipped anchors) go into the report. ``progress(done, total, label)`` is called
    after each (file, system) step; ``on_decoded(file_index, system_index, decoded)`` gets each
    decoded signal, mono ``[T]`` float32 at ``sample_rate`` as it was scored (to keep some for
    listening; ``file_index`` counts ``ref_files``, ``system_index`` counts ``systems``).
    """
    if not systems:
        raise UsageError("no systems to evaluate")
    if not ref_files:
        raise AudioError("no reference files to evaluate")
    names = [(s.name, s.kbps) for s in systems]
    if len(set(names)) != len(names):
        raise UsageError("two systems share the same name and bitrate")

    per_system: list[list[FileScore]] = [[] for _ in systems]
    durations: list[float] = []
    original: list[dict[str, float]] = []
    total, done = len(ref_files) * len(systems), 0
    for file_index, path in enumerate(ref_files):
        ref = load_reference(path, sample_rate)
        durations.append(ref.shape[0] / sample_rate)
        original.append(dnsmos(ref, sample_rate))
        for i, system in enumerate(systems):
            file_score, decoded = _run_one(system, ref, sample_rate, Path(path).name)
            per_system[i].append(file_score)
            if on_decoded is not None:
                on_decoded(file_index, i, decoded)
            done += 1
            if progress is not None:
                progress(done, total, f"{system.name} {system.kbps:g} kbps: {Path(path).name}")

    summaries = tuple(_summarise(s, scores) for s, scores in zip(systems, per_system, strict=True))
    return Results(sample_rate=sample_rate, files=tuple(str(p) for p in ref_files),
                   total_duration_s=float(sum(durations)), systems=summaries,
                   notes=tuple(notes), outputs=(),
                   original={m: _nanmean([o[m] for o in original]) for m in ORIGINAL_METRICS})


def write_report(results: Results, out_dir: Path, *, force: bool = False,
                 final_dir: Path | None = None) -> Results:
    """Write ``results.md``, ``results.json`` and ``rate_quality.png`` into ``out_dir`` (created if
    needed; each file atomically; an existing one is a UsageError unless ``force``).

    Returns ``results`` with ``outputs`` set to the paths written, named under ``final_dir`` when
    given: the folder ``out_dir`` becomes afterwards when it is a staging folder (those are the
    paths results.json records).
    """
    out_dir = Path(out_dir)
    _check_outputs(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    named = Path(final_dir) if final_dir is not None else out_dir
    results = dataclasses.replace(results, outputs=tuple(named / name for name in OUTPUT_NAMES))
    paths = [out_dir / name for name in OUTPUT_NAMES]
    _write_text(paths[0], render_markdown(results))
    _write_text(paths[1], json.dumps(results.to_dict(), indent=2) + "\n")
    _write_plot(paths[2], results)
    return results


def _check_outputs(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output path exists and is not a directory: {out_dir}")
    existing = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if existing and not force:
        raise UsageError(f"{out_dir / existing[0]} exists (use --force to overwrite)")


def _run_one(system: System, ref: np.ndarray, sample_rate: int,
             name: str) -> tuple[FileScore, np.ndarray]:
    decoded, n_bytes, encode_s, decode_s = system.run(ref.copy(), sample_rate)
    decoded = np.asarray(decoded, dtype=np.float32)
    if decoded.ndim == 2:
        decoded = decoded.mean(axis=0)  # [C, T] -> [T]
    if decoded.ndim != 1 or decoded.shape[0] == 0:
        raise ValueError(f"{system.name} returned audio of shape {decoded.shape}, expected [T]")
    if not np.isfinite(decoded).all():
        raise ValueError(f"{system.name} returned NaN/Inf samples for {name}")
    file_score = FileScore(file=name, duration_s=ref.shape[0] / sample_rate, n_bytes=int(n_bytes),
                           encode_s=float(encode_s), decode_s=float(decode_s),
                           scores=_all_scores(ref, decoded, sample_rate))
    return file_score, decoded


def _all_scores(ref: np.ndarray, decoded: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one decoded file (``decoded`` as long as ``ref``, or
    aligned and cut to it)."""
    scores = score(ref, decoded, sample_rate)
    scores.update(dnsmos(decoded, sample_rate))
    ref_a, deg_a = align(ref, decoded, max_shift=int(round(0.05 * sample_rate)))
    scores["tone_db"] = added_tones(ref_a, deg_a, sample_rate).tone_db
    return scores


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _summarise(system: System, scores: list[FileScore]) -> SystemResult:
    mean, std, n_nan = {}, {}, {}
    for metric in METRICS:
        values = np.array([s.scores[metric] for s in scores], dtype=np.float64)
        finite = values[np.isfinite(values)]
        n_nan[metric] = int(values.size - finite.size)
        mean[metric] = float(finite.mean()) if finite.size else math.nan
        std[metric] = float(finite.std()) if finite.size else math.nan
    seconds = sum(s.duration_s for s in scores)
    encode_s = sum(s.encode_s for s in scores)
    decode_s = sum(s.decode_s for s in scores)
    return SystemResult(
        name=system.name, kbps=float(system.kbps), n_files=len(scores), mean=mean, std=std,
        n_nan=n_nan, real_kbps=sum(s.n_bytes for s in scores) * 8 / seconds / 1000.0,
        encode_x_realtime=seconds / encode_s if encode_s > 0 else math.inf,
        decode_x_realtime=seconds / decode_s if decode_s > 0 else math.inf,
        files=tuple(scores))


# ----------------------------------------------------------------------------------------- outputs


def render_markdown(results: Results) -> str:
    """The report as markdown: a header, one table row per system, and the notes."""
    lines = [
        "# Codec evaluation",
        "",
        f"{len(results.files)} reference files, {results.total_duration_s:.1f} s, mono, scored at "
        f"{results.sample_rate} Hz after alignment. Mean +- std over files. Real kbps = compressed "
        "bytes * 8 / seconds of audio; speed = seconds of audio / seconds of encoding (decoding) "
        "on this machine. DNSMOS (P.835 OVRL / SIG / BAK, P.808) needs no reference; the originals' "
        "own scores are its ceiling. Tone = the largest peak of the decoded mean spectrum above its "
        "local floor where the original has none (dB; a codec that adds no stationary tone scores "
        "~0-6).",
        "",
        "| system | kbps | real kbps | PESQ-WB | STOI | mel distance | SI-SDR (dB) | DNSMOS OVRL | SIG "
        "| BAK | P.808 | tone (dB) | encode x RT | decode x RT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if results.original:
        cells = ["original", "", "", "", "", "", ""]
        cells += [_number(results.original.get(m, math.nan), 2) for m in ORIGINAL_METRICS]
        lines.append("| " + " | ".join(cells + ["", "", ""]) + " |")
    for r in results.systems:
        cells = [r.name, f"{r.kbps:g}", f"{r.real_kbps:.2f}",
                 _mean_std(r, "pesq_wb", 2), _mean_std(r, "stoi", 3),
                 _mean_std(r, "mel_distance", 2), _mean_std(r, "si_sdr", 1)]
        cells += [_mean_std(r, m, 2) for m in ORIGINAL_METRICS]
        cells += [_mean_std(r, "tone_db", 1), f"{r.encode_x_realtime:.1f}", f"{r.decode_x_realtime:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    nan_notes = [f"{r.name} {r.kbps:g} kbps: {metric} undefined on {r.n_nan[metric]} of "
                 f"{r.n_files} files (left out of the mean)"
                 for r in results.systems for metric in METRICS if r.n_nan[metric]]
    all_notes = list(results.notes) + nan_notes
    if all_notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in all_notes]
    return "\n".join(lines) + "\n"


def _number(value: float, digits: int) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _mean_std(result: SystemResult, metric: str, digits: int) -> str:
    mean, std = result.mean[metric], result.std[metric]
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} +- {std:.{digits}f}"


def _write_plot(path: Path, results: Results) -> None:
    """PESQ-WB against real kbps, one line (with markers) per system name; matplotlib Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    markers = "osD^v<>pX*"
    by_name: dict[str, list[SystemResult]] = {}
    for r in results.systems:
        by_name.setdefault(r.name, []).append(r)
    for i, (name, rows) in enumerate(by_name.items()):
        rows = sorted(rows, key=lambda r: r.real_kbps)
        x = [r.real_kbps for r in rows]
        y = [r.mean["pesq_wb"] for r in rows]
        axes.plot(x, y, marker=markers[i % len(markers)], label=name)
    axes.set_xlabel("real bitrate (kbps)")
    axes.set_ylabel("PESQ-WB (mean)")
    axes.set_title(f"Rate-quality, {len(results.files)} files at {results.sample_rate} Hz")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_output(path, force=True) as tmp:
        figure.savefig(tmp, format="png")


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same directory + rename)."""
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value
