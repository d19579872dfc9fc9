"""``diveq-codec eval``: score the codec (and Opus / Codec2 anchors) on a folder of reference audio.

Heavy imports (numpy, torch, ``codec.*``) happen inside the command function.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from codec.api import Model
    from codec.eval.report import ProgressFn, Results, RunFn, System

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
    out: Path = typer.Option(Path("eval-results"), "--out",
                             help="Folder for results.md/json/png and the listening page index.html."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N files (sorted)."),
    listen: int = typer.Option(3, "--listen", help="Clips on the listening page (worst, median, "
                                                   "best, ...; 0 for none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty --out."),
) -> None:
    """Score diveq (and Opus / Codec2 anchors) on a folder of reference audio.

    Every file is mixed to mono, resampled to 16 kHz, compressed and decompressed by each system,
    aligned and scored (PESQ-WB, STOI, mel distance, SI-SDR); real bitrate and speed are measured.
    Writes results.md, results.json, rate_quality.png and index.html (a listening page: players and
    spectrograms of every system for --listen clips spanning the PESQ-WB range) to --out.
    """
    from codec.errors import DiveqError

    try:
        _evaluate(ref_dir, bitrate, model, against, out, limit, listen, device, force)
    except DiveqError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _evaluate(ref_dir: Path, bitrate: str, model_name: str | None, against: str, out: Path,
              limit: int | None, listen: int, device: str, force: bool) -> None:
    from codec.errors import UsageError
    from codec.extras import require_train_extras

    require_train_extras("diveq-codec eval", ("librosa", "pesq", "pystoi", "matplotlib", "PIL", "speechmos"))
    from codec.eval.outdir import check_output_folder
    from codec.eval.report import find_audio_files

    bitrates = parse_bitrates(bitrate)
    anchors = parse_anchors(against)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    if listen < 0:
        raise UsageError(f"--listen must be >= 0, got {listen}")
    check_output_folder(out, force)  # fail before any slow work
    files = find_audio_files(ref_dir)
    if limit is not None:
        files = files[:limit]

    systems, notes = build_systems(model_name, device, bitrates, anchors)
    results = run_report(files, systems, out, notes, force, listen)
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {', '.join(str(p) for p in results.outputs)}, {out / 'index.html'}")


def build_systems(model_name: str | None, device: str, bitrates: list[float],
                  anchors: list[str]) -> tuple[list[System], list[str]]:
    """Load the model and make the systems to evaluate (diveq at each bitrate, then the anchors
    whose tools are installed), with notes naming the model and the anchors measured or skipped."""
    from codec.api import load_model
    from codec.eval.anchors import ANCHOR_TOOLS, OPUS_BITRATES_KBPS, Codec2Anchor, OpusAnchor, missing_tools
    from codec.eval.report import System

    codec_model = load_model(model_name, device=device)
    _warm_up(codec_model)
    systems = [System("diveq", kbps, _diveq_run(codec_model, kbps)) for kbps in bitrates]
    notes = [f"diveq model: {model_name or 'built-in default'} (weights "
             f"{str(getattr(codec_model, 'weights_hash', '?'))[:12]}), device {device}, runtime "
             f"{getattr(codec_model, 'runtime', 'torch')}"]
    measured = []
    for anchor in anchors:
        missing = missing_tools(anchor)
        if missing:
            notes.append(f"{anchor} skipped: {', '.join(missing)} not installed "
                         f"(needs {', '.join(ANCHOR_TOOLS[anchor])})")
            continue
        measured.append(anchor)
        if anchor == "opus":
            systems += [System("opus", kbps, OpusAnchor(kbps).run) for kbps in OPUS_BITRATES_KBPS]
        elif anchor == "codec2":
            codec2 = Codec2Anchor("3200")
            systems.append(System("codec2", codec2.kbps, codec2.run))
    notes.append(f"anchors measured: {', '.join(measured) or 'none'}"
                 + ("" if anchors else " (--against none)"))
    return systems, notes


def run_report(files: list[Path], systems: list[System], out: Path, notes: list[str],
               force: bool, listen: int, title: str = "diveq-codec listening report") -> Results:
    """Evaluate ``systems`` on ``files`` and write the report and the listening page (``listen``
    clips) to the folder ``out``, all at once (built in a temporary folder, then moved into place;
    an existing non-empty ``out`` needs ``force``). Progress bars on stderr when it is a terminal."""
    from codec.eval.listen import DecodedStore, write_listening_page
    from codec.eval.outdir import staged_folder
    from codec.eval.report import load_reference, measure, write_report

    with staged_folder(out, force) as stage, _progress_bars() as task:
        store = DecodedStore(stage / ".decoded")
        results = measure(files, systems, notes=notes, on_decoded=store.save,
                          progress=task("evaluating", len(files) * len(systems)))
        results = write_report(results, stage, final_dir=out)
        n_clips = min(listen, len(files))
        write_listening_page(results, stage, n_clips=n_clips, title=title,
                             reference=lambda i: load_reference(files[i], results.sample_rate),
                             decoded=store.load,
                             progress=task("listening page", n_clips * (len(systems) + 1)))
        shutil.rmtree(store.folder)
    return results


@contextmanager
def _progress_bars() -> Iterator[Callable[[str, int], ProgressFn | None]]:
    """Yields ``task(description, total)`` -> a ``progress(done, total, label)`` driving a new rich
    progress bar on stderr, or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda description, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:

        def task(description: str, total: int) -> ProgressFn:
            task_id = bar.add_task(description, total=total)

            def progress(done: int, total: int, label: str) -> None:
                bar.update(task_id, completed=done, description=f"{description}: {label}"[:60])

            return progress

        yield task


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


def _warm_up(model: Model) -> None:
    """One untimed compress + decompress of 1 s of quiet noise, so one-off start-up costs (lazy
    initialisation, allocator growth) do not count in the first file's timings."""
    import numpy as np

    from codec.api import compress, decompress

    rate = int(model.config.sample_rate)
    noise = np.random.default_rng(0).standard_normal((1, rate)).astype(np.float32) * 0.01
    decompress(compress(model, noise, rate), model)


def _diveq_run(model: Model, kbps: float) -> RunFn:
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
