"""``diveq-codec eval``: score the codec (and Opus / Codec2 anchors) on a folder of reference audio.

Heavy imports (numpy, torch, ``codec.*``) happen inside the command function.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from codec.eval.report import Results, RunFn, System
    from codec.model import Codec

KNOWN_ANCHORS = ("opus", "codec2")


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval")(evaluate_command)


def evaluate_command(
    ref_dir: Path = typer.Argument(..., help="Folder of .wav/.flac/.ogg references (recursive)."),
    bitrate: str = typer.Option("1.5,3,6", "--bitrate", help="Comma-separated diveq kbps."),
    model: str | None = typer.Option(None, "--model",
                                     help="Model file or name (default: the built-in model)."),
    against: str = typer.Option("opus,codec2", "--against",
                                help="Anchors: comma-separated of opus, codec2; or 'none'."),
    out: Path = typer.Option(Path("eval-results"), "--out", help="Folder for results.md/json/png."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N files (sorted)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing results in --out."),
) -> None:
    """Score diveq (and Opus / Codec2 anchors) on a folder of reference audio.

    Every file is mixed to mono, resampled to 16 kHz, compressed and decompressed by each system,
    aligned and scored (PESQ-WB, STOI, mel distance, SI-SDR); real bitrate and speed are measured.
    Writes results.md, results.json and rate_quality.png to --out.
    """
    from codec.errors import DiveqError

    try:
        _evaluate(ref_dir, bitrate, model, against, out, limit, device, force)
    except DiveqError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _evaluate(ref_dir: Path, bitrate: str, model_name: str | None, against: str, out: Path,
              limit: int | None, device: str, force: bool) -> None:
    from codec.errors import UsageError
    from codec.eval.anchors import (ANCHOR_TOOLS, OPUS_BITRATES_KBPS, Codec2Anchor, OpusAnchor,
                                    missing_tools)
    from codec.eval.report import OUTPUT_NAMES, System, evaluate, find_audio_files

    bitrates = parse_bitrates(bitrate)
    anchors = parse_anchors(against)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    existing = [name for name in OUTPUT_NAMES if (out / name).exists()]
    if existing and not force:  # fail before any slow work
        raise UsageError(f"{out / existing[0]} exists (use --force to overwrite)")
    files = find_audio_files(ref_dir)
    if limit is not None:
        files = files[:limit]

    from codec.api import load_model

    codec_model = load_model(model_name, device=device)
    _warm_up(codec_model)
    systems = [System("diveq", kbps, _diveq_run(codec_model, kbps)) for kbps in bitrates]
    notes = [f"diveq model: {model_name or 'built-in default'} (weights "
             f"{str(getattr(codec_model, 'weights_hash', '?'))[:12]}), device {device}"]
    for anchor in anchors:
        missing = missing_tools(anchor)
        if missing:
            notes.append(f"{anchor} skipped: {', '.join(missing)} not installed "
                         f"(needs {', '.join(ANCHOR_TOOLS[anchor])})")
            continue
        if anchor == "opus":
            systems += [System("opus", kbps, OpusAnchor(kbps).run) for kbps in OPUS_BITRATES_KBPS]
        elif anchor == "codec2":
            codec2 = Codec2Anchor("3200")
            systems.append(System("codec2", codec2.kbps, codec2.run))

    results = _evaluate_with_progress(evaluate, files, systems, out, notes, force)
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {', '.join(str(p) for p in results.outputs)}")


def _evaluate_with_progress(evaluate: Callable[..., Results], files: list[Path],
                            systems: list[System], out: Path, notes: list[str],
                            force: bool) -> Results:
    """Run ``evaluate`` with a rich progress bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        return evaluate(files, systems, out, notes=notes, force=force)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("evaluating", total=len(files) * len(systems))

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, description=label[:50])

        return evaluate(files, systems, out, notes=notes, force=force, progress=progress)


def parse_bitrates(text: str) -> list[float]:
    """``"1.5,3,6"`` -> ``[1.5, 3.0, 6.0]``; UsageError for anything else."""
    from codec.errors import UsageError

    values = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise UsageError(f"--bitrate: {part.strip()!r} is not a number (e.g. 1.5,3,6)") \
                from None
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--bitrate: {part.strip()!r} must be a positive number of kbps")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError(f"--bitrate: repeated value in {text!r}")
    return values


def parse_anchors(text: str) -> list[str]:
    """``"opus,codec2"`` -> ``["opus", "codec2"]``; ``"none"`` or ``""`` -> ``[]``."""
    from codec.errors import UsageError

    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in KNOWN_ANCHORS]
    if unknown:
        known = ", ".join(KNOWN_ANCHORS)
        raise UsageError(f"--against: unknown anchor {unknown[0]!r} (known: {known}, none)")
    return list(dict.fromkeys(names))


def _warm_up(model: Codec) -> None:
    """One untimed compress + decompress of 1 s of quiet noise, so one-off start-up costs (lazy
    initialisation, allocator growth) do not count in the first file's timings."""
    import numpy as np

    from codec.api import compress, decompress

    rate = int(model.config.sample_rate)
    noise = np.random.default_rng(0).standard_normal((1, rate)).astype(np.float32) * 0.01
    decompress(compress(model, noise, rate), model)


def _diveq_run(model: Codec, kbps: float) -> RunFn:
    """A System.run for the diveq model at ``kbps``: compress -> bytes -> decompress, timed."""
    import time

    import numpy as np

    from codec.api import compress, decompress

    def run(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float, float]:
        start = time.perf_counter()
        data = compress(model, audio[None, :], sample_rate, bitrate_kbps=kbps)
        mid = time.perf_counter()
        decoded, decoded_rate = decompress(data, model)
        end = time.perf_counter()
        decoded = np.asarray(decoded, dtype=np.float32).mean(axis=0)  # [C, T] -> [T]
        if decoded_rate != sample_rate:
            import soxr

            decoded = soxr.resample(decoded, decoded_rate, sample_rate, quality="HQ")
            decoded = np.asarray(decoded, dtype=np.float32)
        return decoded, len(data), mid - start, end - mid

    return run
