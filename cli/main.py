"""``diveq-codec``: encode, decode and inspect ``.dvq`` files (plus the commands other modules register).

Every :class:`~codec.errors.DiveqError` becomes a one-line ``error: ...`` on stderr and the exit code of
its class; Ctrl-C exits 130. Outputs are written atomically, so neither leaves a partial file behind.
Heavy imports (torch, ``codec.api``) happen inside the commands: ``--help`` stays fast.
"""

from __future__ import annotations

import enum
import functools
import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from codec.errors import DiveqError, UsageError

if TYPE_CHECKING:
    from codec.model import Codec

#: Modules that add commands with ``register(app)``; a module that does not exist yet is skipped.
COMMAND_MODULES = ("cli.train", "cli.evaluate", "cli.compare", "cli.corpus")
#: Audio extensions the folder mode encodes (the same set codec.audio reads).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
#: Single files at least this long (seconds) show a progress bar.
PROGRESS_MIN_SECONDS = 60.0
#: Exit code after Ctrl-C (128 + SIGINT), as shells use.
INTERRUPTED_EXIT_CODE = 130

#: Deprecation notices from torch/DAC internals that users cannot act on; hidden while a command runs.
QUIET_WARNINGS = (r"`torch\.jit\.script` is deprecated", r"`torch\.nn\.utils\.weight_norm` is deprecated")

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; return the Exit to raise."""
    text = " ".join(str(message).split()) or "unknown error"
    print(f"error: {text}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def friendly_errors(fn: F) -> F:
    """Wrap a command: DiveqError -> one-line message + its exit code; Ctrl-C -> exit 130; known
    third-party deprecation warnings hidden (only while the command runs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                for pattern in QUIET_WARNINGS:
                    warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
                return fn(*args, **kwargs)
        except DiveqError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", INTERRUPTED_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]


class DiveqApp(typer.Typer):
    """A Typer whose commands (also those other modules register) report DiveqError in one line."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(friendly_errors(fn))
            return fn

        return decorator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except DiveqError as exc:  # raised outside a wrapped command (e.g. a sub-app's callback)
            _fail(str(exc), exc.exit_code)
            sys.exit(exc.exit_code)


def builtin_model_card() -> dict[str, Any] | None:
    """The built-in default model's JSON card (written by ``save_model``), read without torch."""
    import json

    import codec

    path = Path(codec.__file__).resolve().parent / "pretrained" / "default.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def builtin_model_summary() -> str:
    """One line naming the built-in model and the bitrates it serves."""
    card = builtin_model_card()
    if card is None:
        return "Built-in model: none installed (pass --model)."
    rates = card.get("bitrates_kbps", [])
    served = [f"{rates[n - 1]:g}" for n in (3, 6, 12) if n <= len(rates)]
    return (f"Built-in model: {card.get('name')} ({card.get('sample_rate')} Hz, "
            f"{card.get('frame_rate'):g} frames/s, {' / '.join(served)} kbps at 3 / 6 / 12 stages, "
            f"any of 1..{len(rates)} stages; weights {str(card.get('weights_sha256'))[:12]}).")


app = DiveqApp(
    name="diveq-codec",
    help="Neural audio codec with a DiVeQ / SF-DiVeQ residual vector quantizer.\n\n"
         + builtin_model_summary(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


class Device(str, enum.Enum):
    """Where the model runs: ``auto`` picks cuda when a GPU is available."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("diveq-codec")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"diveq-codec {text}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Neural audio codec with a DiVeQ / SF-DiVeQ residual vector quantizer."""


ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Model file (.safetensors) or built-in name; default: the built-in model.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="auto, cpu or cuda.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]


# ---------------------------------------------------------------------------------------------
# Progress display


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich Progress on stderr, or None when disabled or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

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


# ---------------------------------------------------------------------------------------------
# Folders


def _folder_jobs(src: Path, dst: Path, suffixes: tuple[str, ...], out_suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs for every file under ``src`` with one of ``suffixes``, mirrored in ``dst``."""
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"input {src} is a folder, so the output must be a folder too: {dst}")
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


def _run_folder(jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], Any], verb: str) -> None:
    """Run ``work(input, output)`` for each job with a progress bar; a failing file is reported in one
    line and the others go on. Exits with the first failure's code."""
    first_code = 0
    failures = 0
    with _progress_bar(True) as bar:
        task = None if bar is None else bar.add_task(verb, total=len(jobs))
        for src, out in jobs:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                work(src, out)
            except DiveqError as exc:
                text = " ".join(str(exc).split())
                print(f"error: {src}: {text}", file=sys.stderr, flush=True)
                failures += 1
                first_code = first_code or exc.exit_code
            if bar is not None:
                bar.advance(task)
    print(f"{verb} {len(jobs) - failures} of {len(jobs)} files", file=sys.stderr)
    if first_code:
        raise typer.Exit(first_code)


def _load(model: str | None, device: Device) -> Codec:
    from codec.api import load_model

    return load_model(model, device.value)


# ---------------------------------------------------------------------------------------------
# Commands


@app.command()
def encode(
    input: Annotated[Path, typer.Argument(help="Audio file (wav, flac, ogg) or a folder of them.")],
    output: Annotated[Path, typer.Argument(
        help=".dvq file, or a folder (INPUT's name with .dvq; required when INPUT is a folder).")],
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", "-b", help="Target bitrate in kbps: the most codebooks that fit.")] = None,
    n_codebooks: Annotated[Optional[int], typer.Option(
        "--n-codebooks", "-n", help="Number of codebook stages to transmit.")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    force: ForceOpt = False,
) -> None:
    """Encode audio to a .dvq stream (any rate 8-96 kHz, any channel count)."""
    from codec import api, audio

    if bitrate is not None and n_codebooks is not None:
        raise UsageError("give either --bitrate or --n-codebooks, not both")
    if input.is_dir():
        jobs = _folder_jobs(input, output, AUDIO_EXTENSIONS, ".dvq")
        codec_model = _load(model, device)
        api.choose_n_codebooks(codec_model, bitrate, n_codebooks)
        _run_folder(jobs, lambda src, out: api.encode_file(
            codec_model, src, out, bitrate_kbps=bitrate, n_codebooks=n_codebooks, force=force),
            "encoded")
        return
    if output.is_dir():
        output = output / f"{input.stem}.dvq"
    info = audio.audio_info(input)  # fail on a bad input before loading the model
    audio.check_output(output, force)
    codec_model = _load(model, device)
    with _progress_bar(info.duration >= PROGRESS_MIN_SECONDS) as bar:
        api.encode_file(codec_model, input, output, bitrate_kbps=bitrate, n_codebooks=n_codebooks,
                        force=force, progress=_frame_callback(bar, f"encoding {input.name}"))


@app.command()
def decode(
    input: Annotated[Path, typer.Argument(help=".dvq file or a folder of them.")],
    output: Annotated[Path, typer.Argument(
        help="Audio file (.wav/.flac: 16-bit PCM, .ogg: Vorbis), or a folder (writes .wav files).")],
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    force: ForceOpt = False,
) -> None:
    """Decode a .dvq stream to audio at its original rate, length and channel count."""
    from codec import api, audio

    if input.is_dir():
        jobs = _folder_jobs(input, output, (".dvq",), ".wav")
        codec_model = _load(model, device)
        _run_folder(jobs, lambda src, out: api.decode_file(src, out, codec_model, force=force),
                    "decoded")
        return
    if output.is_dir():
        output = output / f"{input.stem}.wav"
    header = api.read_stream_header(input)  # fail on a bad stream before loading the model
    audio.output_format(output)
    audio.check_output(output, force)
    codec_model = _load(model, device)
    with _progress_bar(header.duration_seconds >= PROGRESS_MIN_SECONDS) as bar:
        api.decode_file(input, output, codec_model, force=force,
                        progress=_frame_callback(bar, f"decoding {input.name}"))


@app.command()
def info(input: Annotated[Path, typer.Argument(help=".dvq file.")]) -> None:
    """Show what a .dvq file holds (no model needed)."""
    from codec import api
    from codec.bitstream import describe

    header = api.read_stream_header(input)
    fields = dict(describe(header))
    size = input.stat().st_size
    rate = f", {size * 8 / header.duration_seconds / 1000:.3f} kbps" if header.n_samples else ""
    fields["file size"] = f"{size} bytes{rate}"
    card = builtin_model_card()
    if card is not None:
        same = card.get("weights_sha256") == header.model_hash
        fields["built-in model"] = "yes" if same else f"no (built-in is {card.get('name')})"
    width = max(len(key) for key in fields)
    for key, value in fields.items():
        print(f"{key + ':':<{width + 1}} {value}")


# ---------------------------------------------------------------------------------------------
# Commands from other modules


def register_command_modules(target: typer.Typer, names: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Import each module in ``names`` and call its ``register(target)``; skip modules that do not
    exist (an ImportError from inside an existing module is raised)."""
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        register = getattr(module, "register", None)
        if callable(register):
            register(target)


register_command_modules(app)


if __name__ == "__main__":
    app()
