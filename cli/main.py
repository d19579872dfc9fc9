"""``diveq-codec``: encode, decode, transcode and inspect ``.dvq`` files (plus the commands other
modules register).

Every :class:`~codec.errors.DiveqError` becomes a one-line ``error: ...`` on stderr and the exit code of
its class; Ctrl-C exits 130, SIGTERM 143 and SIGHUP 129 (128 + the signal), after the same cleanup.
Outputs are written atomically, so none of them leaves a partial file behind. ``-`` is standard input or
output. Heavy imports (torch, ``codec.api``) happen inside the commands: ``--help`` stays fast, and
``info`` and ``transcode`` never import torch.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from codec.errors import DiveqError, DiveqWarning, Terminated, UsageError, printable

if TYPE_CHECKING:
    from codec.model import Codec

#: Modules that add commands with ``register(app)``; a module that does not exist yet is skipped.
COMMAND_MODULES = ("cli.train", "cli.evaluate", "cli.compare", "cli.corpus")
#: Single files at least this long (seconds) show a progress bar.
PROGRESS_MIN_SECONDS = 60.0
#: Exit code after Ctrl-C (128 + SIGINT), as shells use.
INTERRUPTED_EXIT_CODE = 130
#: Exit code when standard output's reader went away (128 + SIGPIPE), as for tools killed by SIGPIPE.
BROKEN_PIPE_EXIT_CODE = 141
#: Signals that end a command like Ctrl-C does (cleanup, one error line, exit 128 + the signal).
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

#: Deprecation notices from torch/DAC internals that users cannot act on; hidden while a command runs.
QUIET_WARNINGS = (r"`torch\.jit\.script` is deprecated", r"`torch\.nn\.utils\.weight_norm` is deprecated")

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` as one line on stderr (control and bidi characters escaped); return
    the Exit to raise."""
    text = printable(" ".join(str(message).split())) or "unknown error"
    print(f"error: {text}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def _show_warning(show: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing DiveqWarning as one ``warning: ...`` line on stderr."""

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DiveqWarning):
            print(f"warning: {printable(' '.join(str(message).split()))}", file=sys.stderr, flush=True)
        else:
            show(message, category, *args, **kwargs)

    return showwarning


@contextmanager
def _terminate_on_signals() -> Iterator[None]:
    """While a command runs, SIGTERM / SIGHUP raise :class:`Terminated` in the main thread, so that
    atomic writes clean up as after Ctrl-C; later copies of the signal are ignored during the cleanup.
    Handlers installed inside (e.g. training's stop request) take precedence while they are active."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        for sig in TERMINATING_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum, signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def friendly_errors(fn: F) -> F:
    """Wrap a command: DiveqError -> one-line message + its exit code; Ctrl-C -> exit 130; SIGTERM /
    SIGHUP -> 143 / 129; DiveqWarning -> one ``warning:`` line; known third-party deprecation warnings
    hidden (only while the command runs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings(), _terminate_on_signals():
                for pattern in QUIET_WARNINGS:
                    warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
                warnings.simplefilter("always", DiveqWarning)
                warnings.showwarning = _show_warning(warnings.showwarning)
                result = fn(*args, **kwargs)
                sys.stdout.flush()  # a closed pipe (``info x.dvq | head -1``) is reported here
                return result
        except BrokenPipeError:
            from codec.fileio import silence_stdout

            silence_stdout()  # the reader has all it wanted: exit quietly, as after SIGPIPE
            raise typer.Exit(BROKEN_PIPE_EXIT_CODE) from None
        except DiveqError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", INTERRUPTED_EXIT_CODE) from None
        except Terminated as exc:
            raise _fail(f"terminated by {exc}", exc.exit_code) from None

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
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs (never the input).")]
BitrateOpt = Annotated[Optional[float], typer.Option(
    "--bitrate", "-b", help="Target bitrate in kbps per channel: the most codebooks that fit (at most "
                            "the model's maximum).")]
CodebooksOpt = Annotated[Optional[int], typer.Option(
    "--n-codebooks", "-n", help="Number of codebook stages to transmit.")]


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
    if str(dst) == "-" or (dst.exists() and not dst.is_dir()):
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


def _load(model: str | None, device: Device) -> Codec:
    from codec.api import load_model

    return load_model(model, device.value)


def _model_card(model: str | None) -> dict[str, Any] | None:
    """The JSON card ``save_model`` writes next to a model (the built-in one for None), or None."""
    import json

    if model is None:
        return builtin_model_card()
    path = Path(model)
    if not path.is_file():  # a built-in model's name
        import codec

        path = Path(codec.__file__).resolve().parent / "pretrained" / f"{model}.safetensors"
    try:
        card = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def _check_stages_early(model: str | None, bitrate: float | None, n_codebooks: int | None) -> None:
    """Refuse a bitrate above, or a stage count outside, what the model serves before loading it
    (seconds with torch), from its JSON card when it has one; the loaded model is checked again."""
    from codec.checks import choose_stages

    card = _model_card(model)
    rates = card.get("bitrates_kbps") if card else None
    if not (isinstance(rates, list) and rates and all(isinstance(r, (int, float)) for r in rates)):
        return
    top = float(rates[-1])
    if (bitrate is not None and bitrate > top * 1.001) or n_codebooks is not None:
        choose_stages(bitrate, n_codebooks, top / len(rates), len(rates),
                      f"model {printable(str(card.get('name')))!r}")


def _into_folder(output: str, name: str, suffix: str) -> str:
    """``output``, or ``output/name+suffix`` when ``output`` is an existing folder."""
    if output != "-" and Path(output).is_dir():
        if name == "-":
            raise UsageError(f"give an output file name in {output} when reading standard input")
        return str(Path(output) / f"{Path(name).stem}{suffix}")
    return output


def _check_bitrate_options(bitrate: float | None, n_codebooks: int | None) -> None:
    """What can be checked before a model or stream is read: not both, a positive finite bitrate."""
    from codec.checks import check_real

    if bitrate is not None and n_codebooks is not None:
        raise UsageError("give either --bitrate or --n-codebooks, not both")
    if bitrate is not None and not check_real(bitrate, "--bitrate") > 0:
        raise UsageError(f"--bitrate must be a positive number of kbps, got {bitrate:g}")


# ---------------------------------------------------------------------------------------------
# Commands


@app.command()
def encode(
    input: Annotated[str, typer.Argument(
        help="Audio file (wav, flac, ogg, mp3, aiff, ...), a folder of them, or - for standard input.",
        show_default=False)],
    output: Annotated[str, typer.Argument(
        help="A .dvq file, a folder (INPUT's name with .dvq; required when INPUT is a folder), or - "
             "for standard output.", show_default=False)],
    bitrate: BitrateOpt = None,
    n_codebooks: CodebooksOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    force: ForceOpt = False,
) -> None:
    """Encode audio to a .dvq stream (any rate 8-96 kHz, 1-64 channels)."""
    from codec import api, audio, checks, fileio

    _check_bitrate_options(bitrate, n_codebooks)
    if input != "-" and Path(input).is_dir():
        jobs = _folder_jobs(Path(input), Path(output), audio.INPUT_EXTENSIONS, ".dvq")
        _check_stages_early(model, bitrate, n_codebooks)
        codec_model = _load(model, device)
        api.choose_n_codebooks(codec_model, bitrate, n_codebooks)
        _run_folder(jobs, lambda src, out: api.encode_file(
            codec_model, src, out, bitrate_kbps=bitrate, n_codebooks=n_codebooks, force=force),
            "encoded")
        return
    output = _into_folder(output, input, ".dvq")
    api.check_stream_output(output)
    fileio.check_distinct(input, output)
    fileio.check_output(output, force)
    _check_stages_early(model, bitrate, n_codebooks)
    with audio.open_input(input) as src:  # fail on a bad input before loading the model
        checks.check_sample_rate(src.info.sample_rate, src.name)
        checks.check_channels(src.info.channels, src.name)
        codec_model = _load(model, device)
        with _progress_bar(src.info.duration >= PROGRESS_MIN_SECONDS) as bar:
            api.encode_file(codec_model, src, output, bitrate_kbps=bitrate, n_codebooks=n_codebooks,
                            force=force, progress=_frame_callback(bar, f"encoding {src.name}"))


@app.command()
def decode(
    input: Annotated[str, typer.Argument(
        help=".dvq file, a folder of them, or - for standard input.", show_default=False)],
    output: Annotated[str, typer.Argument(
        help="Audio file (.wav/.flac: 16-bit PCM, .ogg: Vorbis), a folder (writes .wav files), or - "
             "for a 16-bit wav on standard output.", show_default=False)],
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    force: ForceOpt = False,
) -> None:
    """Decode a .dvq stream to audio at its original rate, length and channel count."""
    from codec import api, audio, fileio

    if input != "-" and Path(input).is_dir():
        jobs = _folder_jobs(Path(input), Path(output), (".dvq",), ".wav")
        models: dict[str | None, Codec] = {}

        def decode_one(src: Path, out: Path) -> None:  # each stream with the model that made it
            name = model if model is not None else api.builtin_model_for_stream(
                api.read_stream_header(src))
            if name not in models:
                models[name] = _load(name, device)
            api.decode_file(src, out, models[name], force=force)

        _run_folder(jobs, decode_one, "decoded")
        return
    output = _into_folder(output, input, ".wav")
    audio.output_format(output)
    fileio.check_distinct(input, output)
    fileio.check_output(output, force)
    with api.open_stream(input) as stream:  # fail on a bad stream before loading the model
        api.check_stream_rate(stream.header)
        codec_model = _load(model if model is not None else api.builtin_model_for_stream(stream.header),
                            device)
        with _progress_bar(stream.header.duration_seconds >= PROGRESS_MIN_SECONDS) as bar:
            api.decode_file(stream, output, codec_model, force=force,
                            progress=_frame_callback(bar, f"decoding {stream.name}"))


@app.command()
def transcode(
    input: Annotated[str, typer.Argument(help=".dvq file, or - for standard input.", show_default=False)],
    output: Annotated[str, typer.Argument(
        help=".dvq file, or - for standard output.", show_default=False)],
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", "-b", help="Bitrate to keep in kbps per channel: the most stages that fit.")] = None,
    n_codebooks: Annotated[Optional[int], typer.Option(
        "--n-codebooks", "-n", help="Number of stages to keep.")] = None,
    force: ForceOpt = False,
) -> None:
    """Lower a .dvq stream's bitrate by keeping its first stages: no model, no audio decoding. The
    result is byte-identical to encoding the audio at that bitrate directly."""
    from codec.transcode import transcode_file

    _check_bitrate_options(bitrate, n_codebooks)
    transcode_file(input, output, bitrate_kbps=bitrate, n_codebooks=n_codebooks, force=force)


@app.command()
def info(input: Annotated[str, typer.Argument(
        help=".dvq file, or - for standard input.", show_default=False)]) -> None:
    """Show what a .dvq file holds and verify every checksum (no model needed; exit 4 on corruption)."""
    from codec.bitstream import describe, iter_chunks, open_stream

    with open_stream(input) as stream:
        header = stream.header
        for _ in iter_chunks(stream.file, header):
            pass
        size = stream.bytes_read
    fields = dict(describe(header))
    rate = f", {size * 8 / header.duration_seconds / 1000:.3f} kbps" if header.n_samples else ""
    fields["file size"] = f"{size} bytes{rate}"
    fields["integrity"] = f"ok (header and {header.n_chunks} chunk checksums verified)"
    from codec.api import builtin_model_cards, builtin_model_for_stream

    cards = builtin_model_cards()
    if cards:
        match = builtin_model_for_stream(header)
        if match is not None:
            kind = "the default" if match == "default" else f"--model {match}"
            fields["built-in model"] = f"yes ({printable(str(cards[match].get('name')))}, {kind})"
        else:
            fields["built-in model"] = "no (decode it with the model that made it: --model FILE)"
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
