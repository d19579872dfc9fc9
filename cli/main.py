"""``diveq-codec``: encode, decode, transcode and inspect ``.dvq`` files (plus the commands other
modules register).

Every :class:`~codec.errors.DiveqError` becomes a one-line ``error: ...`` on stderr and the exit code of
its class; Ctrl-C exits 130, SIGTERM 143 and SIGHUP 129 (128 + the signal), after the same cleanup.
Outputs are written atomically, so none of them leaves a partial file behind. ``-`` is standard input or
output. Heavy imports (``codec.api``, onnxruntime) happen inside the commands: ``--help`` stays fast,
``info`` and ``transcode`` load no model, and ``encode`` / ``decode`` import torch only for the torch
runtime (``--runtime torch``, ``--device cuda``, or a model without ONNX graphs).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from codec.errors import UsageError, printable

from .app import (  # noqa: F401  (DiveqApp, register_command_modules, the exit codes: part of cli.main)
    BROKEN_PIPE_EXIT_CODE,
    COMMAND_MODULES,
    INTERRUPTED_EXIT_CODE,
    DiveqApp,
    friendly_errors,
    register_command_modules,
)
from .folders import _folder_jobs, _frame_callback, _progress_bar, _run_folder

if TYPE_CHECKING:
    from codec.api import Model

#: Single files at least this long (seconds) show a progress bar.
PROGRESS_MIN_SECONDS = 60.0
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
    """Where the model runs: ``auto`` is the CPU for the onnx runtime, cuda when available for torch."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Runtime(str, enum.Enum):
    """What runs the model: ``auto`` is onnx on the CPU when the model has ONNX graphs, else torch."""

    auto = "auto"
    onnx = "onnx"
    torch = "torch"


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
DeviceOpt = Annotated[Device, typer.Option(
    "--device", help="auto, cpu or cuda (cuda runs the torch runtime).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads (onnxruntime's; torch's for --runtime torch); default: the runtime's choice.",
    show_default=False)]
RuntimeOpt = Annotated[Runtime, typer.Option(
    "--runtime", help="auto (onnxruntime on the CPU when the model has ONNX graphs, else torch), onnx or "
                      "torch (needs the torch extra).")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs (never the input).")]
BitrateOpt = Annotated[Optional[float], typer.Option(
    "--bitrate", "-b", help="Target bitrate in kbps per channel: the most codebooks that fit (at most "
                            "the model's maximum).")]
CodebooksOpt = Annotated[Optional[int], typer.Option(
    "--n-codebooks", "-n", help="Number of codebook stages to transmit.")]
StreamOpt = Annotated[bool, typer.Option(
    "--stream", help="Real time: raw PCM (s16le, mono) and packets, written as they come (a causal "
                     "model; docs/streaming.md).")]


def _load(model: str | None, device: Device, runtime: Runtime, threads: int | None) -> Model:
    from codec.api import load_model

    return load_model(model, device.value, runtime.value, threads)


def _load_stream(model: str | None, device: Device, runtime: Runtime, threads: int | None) -> Model:
    """A model for --stream (frame by frame): auto = onnx when it has frame graphs; one thread unless
    --threads says otherwise (a frame's tensors are too small to share, and on a busy machine more
    threads mostly wait for each other: a stream decoded ~7x slower with two threads than with one)."""
    from codec.api import load_model

    return load_model(model, device.value, runtime.value, 1 if threads is None else threads, streaming=True)


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
                      f"model {printable(str((card or {}).get('name')))!r}")


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
    runtime: RuntimeOpt = Runtime.auto,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    streaming: StreamOpt = False,
    rate: Annotated[Optional[int], typer.Option(
        "--rate", help="--stream: the input's sample rate in Hz (default 16000).")] = None,
    gain: Annotated[Optional[float], typer.Option(
        "--gain", help="--stream: gain in dB before coding (default 0; models train on speech at "
                       "-20 dBFS).")] = None,
    frames_per_packet: Annotated[Optional[int], typer.Option(
        "--frames-per-packet", help="--stream: frames per packet, 1..255 (default 1).")] = None,
) -> None:
    """Encode audio to a .dvq stream (any rate 8-96 kHz, 1-64 channels), or with --stream raw PCM to
    packets in real time."""
    from codec import api
    from codec.io import audio, fileio

    if streaming:
        from .stream import encode_stream

        _check_bitrate_options(bitrate, n_codebooks)
        encode_stream(input, output, lambda name: _load_stream(name, device, runtime, threads), model, bitrate, n_codebooks,
                      16000 if rate is None else rate, 0.0 if gain is None else gain,
                      1 if frames_per_packet is None else frames_per_packet, force)
        return
    if rate is not None or gain is not None or frames_per_packet is not None:
        raise UsageError("--rate, --gain and --frames-per-packet go with --stream")
    if input != "-" and Path(input).is_dir():
        _check_bitrate_options(bitrate, n_codebooks)
        jobs = _folder_jobs(Path(input), Path(output), audio.INPUT_EXTENSIONS, ".dvq", (".dvq",))
        _check_stages_early(model, bitrate, n_codebooks)
        codec_model = _load(model, device, runtime, threads)
        api.choose_n_codebooks(codec_model, bitrate, n_codebooks)
        _run_folder(jobs, lambda src, out: api.encode_file(
            codec_model, src, out, bitrate_kbps=bitrate, n_codebooks=n_codebooks, force=force),
            "encoded")
        return
    output = _into_folder(output, input, ".dvq")
    with fileio.released_on_failure(output):  # a FIFO's reader is not left waiting
        _check_bitrate_options(bitrate, n_codebooks)
        _encode_one(input, output, bitrate, n_codebooks, model, device, runtime, threads, force)


def _encode_one(input: str, output: str, bitrate: float | None, n_codebooks: int | None,
                model: str | None, device: Device, runtime: Runtime, threads: int | None,
                force: bool) -> None:
    from codec import api, checks
    from codec.io import audio, fileio

    api.check_stream_output(output)
    fileio.check_distinct(input, output)
    fileio.check_output(output, force)
    _check_stages_early(model, bitrate, n_codebooks)
    with audio.open_input(input) as src:  # fail on a bad input before loading the model
        checks.check_sample_rate(src.info.sample_rate, src.name)
        checks.check_channels(src.info.channels, src.name)
        codec_model = _load(model, device, runtime, threads)
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
    runtime: RuntimeOpt = Runtime.auto,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    streaming: StreamOpt = False,
) -> None:
    """Decode a .dvq stream to audio at its original rate, length and channel count, or with --stream
    packets to raw PCM in real time."""
    from codec import api
    from codec.io import audio, fileio

    if streaming:
        from .stream import decode_stream

        decode_stream(input, output, lambda name: _load_stream(name, device, runtime, threads), model, force)
        return
    if input != "-" and Path(input).is_dir():
        jobs = _folder_jobs(Path(input), Path(output), (".dvq",), ".wav", audio.AUDIO_EXTENSIONS)
        models: dict[str | None, Model] = {}

        def decode_one(src: Path, out: Path) -> None:  # each stream with the model that made it
            name = model if model is not None else api.builtin_model_for_stream(
                api.read_stream_header(src))
            if name not in models:
                models[name] = _load(name, device, runtime, threads)
            api.decode_file(src, out, models[name], force=force)

        _run_folder(jobs, decode_one, "decoded")
        return
    output = _into_folder(output, input, ".wav")
    with fileio.released_on_failure(output):  # a FIFO's reader is not left waiting
        _decode_one(input, output, model, device, runtime, threads, force)


def _decode_one(input: str, output: str, model: str | None, device: Device, runtime: Runtime,
                threads: int | None, force: bool) -> None:
    from codec import api
    from codec.io import audio, fileio

    audio.output_format(output)
    fileio.check_distinct(input, output)
    fileio.check_output(output, force)
    with api.open_stream(input) as stream:  # fail on a bad stream before loading the model
        api.check_stream_rate(stream.header)
        codec_model = _load(model if model is not None else api.builtin_model_for_stream(stream.header),
                            device, runtime, threads)
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
    from codec.format.transcode import transcode_file
    from codec.io.fileio import released_on_failure

    with released_on_failure(output):  # a FIFO's reader is not left waiting
        _check_bitrate_options(bitrate, n_codebooks)
        transcode_file(input, output, bitrate_kbps=bitrate, n_codebooks=n_codebooks, force=force)


@app.command()
def info(input: Annotated[str, typer.Argument(
        help=".dvq file, or - for standard input.", show_default=False)]) -> None:
    """Show what a .dvq file holds and verify every checksum (no model needed; exit 4 on corruption)."""
    from codec.format.bitstream import iter_chunks
    from codec.format.streamfile import describe, open_stream

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


register_command_modules(app)


if __name__ == "__main__":
    app()
