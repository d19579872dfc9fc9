"""Helpers of the commands that take folders: the progress bar, mirrored (input, output) pairs, and
running a job per file with one error line per failure."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from codec.errors import DiveqError, UsageError, printable


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich Progress on stderr, or None when disabled or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        yield bar


def _frame_callback(bar: Any, label: str) -> Callable[[int, int], None] | None:
    """progress(frames_done, frames_total) that drives a new task of ``bar`` (None: no bar)."""
    if bar is None:
        return None
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


def _folder_jobs(src: Path, dst: Path, suffixes: tuple[str, ...], out_suffix: str,
                 file_suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(input, output) pairs for every file under ``src`` with one of ``suffixes``, mirrored in ``dst``.

    ``dst`` must be a folder: UsageError for ``-``, an existing file, or a name ending in one of
    ``file_suffixes`` (what the command writes single files as: ``x.dvq`` is a file, so a folder
    input there is a mistake, e.g. a folder that happens to be named ``song.wav``)."""
    if str(dst) == "-" or (dst.exists() and not dst.is_dir()):
        raise UsageError(f"input {src} is a folder, so the output must be a folder too: {dst}")
    if dst.suffix.lower() in file_suffixes and not dst.is_dir():
        raise UsageError(f"input {src} is a folder, but the output {dst} names a file (it ends in "
                         f"{dst.suffix}): give a folder for the outputs, or a file as the input")
    inputs = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not inputs:
        raise UsageError(f"no {', '.join(suffixes)} files in {src}")
    jobs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for path in inputs:
        out = dst / path.relative_to(src).with_suffix(out_suffix)
        if out in seen:
            raise UsageError(f"{seen[out]} and {path} would both be written to {out}")
        seen[out] = path
        jobs.append((path, out))
    return jobs


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest first."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty: a failed job leaves none behind."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _run_folder(jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], Any], verb: str) -> None:
    """Run ``work(input, output)`` for each job with a progress bar; a failing file is reported in one
    line and the others go on, and output folders left empty by failures are removed. Exits with the
    first failure's code."""
    first_code = 0
    failures = 0
    created: list[Path] = []
    with _progress_bar(True) as bar:
        task = None if bar is None else bar.add_task(verb, total=len(jobs))
        for src, out in jobs:
            try:
                created = _make_folders(out.parent) + created
                work(src, out)
            except DiveqError as exc:
                text = printable(" ".join(str(exc).split()))
                print(f"error: {printable(str(src))}: {text}", file=sys.stderr, flush=True)
                failures += 1
                first_code = first_code or exc.exit_code
            finally:
                _remove_if_empty(sorted(set(created), key=lambda p: len(p.parts), reverse=True))
            if bar is not None:
                bar.advance(task)
    print(f"{verb} {len(jobs) - failures} of {len(jobs)} files", file=sys.stderr)
    if first_code:
        raise typer.Exit(first_code)
