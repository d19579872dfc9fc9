"""The Python API: load a model, compress/decompress audio in memory, encode/decode files.

```python
from codec.api import load_model, compress, decompress, encode_file, decode_file, transcode_file
model = load_model()                       # built-in default model (onnxruntime when it has graphs)
data = compress(model, audio, 44100, bitrate_kbps=6)   # audio [C, T] -> .dvq bytes
audio, sample_rate = decompress(data, model)           # [C, T] float32 at the original rate
encode_file(model, "in.wav", "out.dvq")                # streaming, bounded memory, atomic
decode_file("out.dvq", "back.wav", model)
transcode_file("out.dvq", "low.dvq", bitrate_kbps=3)   # fewer stages, no model needed
```

Pipeline (encode; decode is its mirror): each channel is scaled by its own gain (loudness
normalisation, stored in the stream header and divided out on decode), resampled to the model's rate,
and coded separately (channels are the model's batch dimension). Long signals are coded in windows of
``window`` frames, each with ``context`` frames of real signal on both sides; only the centre's codes
(or samples) are kept, so the result matches whole-signal coding up to the model's receptive field
while memory stays bounded. Files are read in blocks and the stream is written chunk by chunk.

Models run on one of two runtimes (:mod:`codec.runtime`): onnxruntime on the model's ONNX graphs
(:class:`~codec.runtime.onnx_runtime.OnnxCodec`, no torch; the built-in models ship their graphs) or
torch (:class:`~codec.models.model.Codec`). Every function here takes either, and a stream made by one decodes
with the other (streams name the weights, not the runtime).

Arguments are checked (:mod:`codec.checks`): every bad one raises a :class:`~codec.errors.DiveqError`
subclass naming it. Paths may be ``-`` for standard input / output (audio written there is wav).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Union

import numpy as np

from .checks import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, as_audio, check_channels, check_sample_rate, choose_stages
from .errors import BitstreamError, ModelError, UsageError
from .format.streamfile import StreamInput, check_stream_output, open_stream  # noqa: F401  (part of the API)
from .format.streamheader import model_length
from .format.transcode import transcode, transcode_file  # noqa: F401  (part of the API)
from .io import audio as audio_io
from .io.fileio import as_path, atomic_output, check_distinct, check_output, released_on_failure
from .runtime import streaming
from .runtime.device import resolve_device  # noqa: F401  (part of the API)
from .runtime.select import as_runtime, load_runtime_model
from .runtime.streaming import MAX_GAIN, TARGET_RMS, Progress, Stats, loudness_gains  # noqa: F401  (gains)

if TYPE_CHECKING:
    from .format.bitstream import StreamHeader
    from .models.model import Codec
    from .runtime.onnx_runtime import OnnxCodec

#: What the coding functions take: a model from :func:`load_model` on either runtime.
Model = Union["Codec", "OnnxCodec"]

#: The built-in default model (absent until one is installed).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "pretrained" / "default.safetensors"


# ---------------------------------------------------------------------------------------------
# Models and devices


def _model_path(name_or_path: str | os.PathLike[str] | None) -> Path:
    if name_or_path is None:
        if not DEFAULT_MODEL_PATH.is_file():
            raise ModelError("no built-in default model is installed (pass a model file with --model)")
        return DEFAULT_MODEL_PATH
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UsageError(f"the model must be a path or the name of a built-in model, got "
                         f"{type(name_or_path).__name__} {name_or_path!r}")
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    builtin = DEFAULT_MODEL_PATH.parent / f"{text}.safetensors"
    if os.sep not in text and "/" not in text and not text.endswith(".safetensors") and builtin.is_file():
        return builtin
    if path.is_dir():
        raise ModelError(f"model path is a folder, not a .safetensors file: {path}")
    raise ModelError(f"no such model file: {path}")


def load_model(name_or_path: str | os.PathLike[str] | None = None, device: str = "auto",
               runtime: str = "auto", threads: int | None = None, streaming: bool = False) -> Model:
    """Load a model, ready to code.

    ``name_or_path``: a ``.safetensors`` model file (written by ``codec.models.weights.save_model``), the
    name of a built-in model, or None for the built-in default. ``runtime``: ``onnx`` (onnxruntime on
    the model's ONNX graphs, CPU, no torch: an :class:`~codec.runtime.onnx_runtime.OnnxCodec`),
    ``torch`` (a :class:`~codec.models.model.Codec` in eval mode on ``device``), or ``auto``: onnx when
    ``device`` is auto or cpu and the model has graphs, else torch. ``threads``: CPU threads
    (onnxruntime's per session; torch's, process-wide); None leaves the runtime's default.
    ``streaming``: the model is for :mod:`codec.runtime.realtime` (a causal model): ``auto`` picks onnx
    only when the model has frame graphs.
    Raises ModelError (missing or bad file or graph, no default installed), UsageError (not a path or
    name, an unknown runtime or device, onnx on cuda; MissingExtrasError when torch is needed and not
    installed) or DeviceError (``cuda`` without a GPU).
    """
    return load_runtime_model(_model_path(name_or_path), device, runtime, threads, streaming)


def builtin_model_hash() -> str | None:
    """The built-in default model's weights sha256, read from its JSON card (no torch)."""
    return builtin_model_cards().get(DEFAULT_MODEL_PATH.stem, {}).get("weights_sha256")


def builtin_model_cards() -> dict[str, dict[str, Any]]:
    """Every built-in model's JSON card by name (``default`` is the default; earlier defaults keep
    shipping under their own names so that their streams still decode). Read without torch."""
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(DEFAULT_MODEL_PATH.parent.glob("*.json")):
        if not path.with_suffix(".safetensors").is_file():
            continue
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and isinstance(card.get("weights_sha256"), str):
            cards[path.stem] = card
    return cards


def builtin_model_for_stream(header: StreamHeader) -> str | None:
    """The name of the built-in model whose weights made the stream (None: no built-in model did)."""
    cards = builtin_model_cards()
    default = DEFAULT_MODEL_PATH.stem
    for name in sorted(cards, key=lambda n: n != default):  # the default first
        if header.matches_model(cards[name]["weights_sha256"]):
            return name
    return None


def _check_model(model: Any) -> None:
    if not all(hasattr(model, name) for name in ("config", "encode", "decode", "eval")):
        raise UsageError(f"model must be a codec from codec.api.load_model, got {type(model).__name__}")


def _weights_hash(model: Model) -> str:
    value = getattr(model, "weights_hash", None)
    if not value:
        raise ModelError("the model has no weights hash: save it with codec.models.weights.save_model and "
                         "load it with codec.api.load_model before coding")
    return str(value)


# ---------------------------------------------------------------------------------------------
# Stages


def max_bitrate_kbps(model: Model) -> float:
    """The model's highest bitrate (all stages) in kbps per channel."""
    return model.config.bitrate() / 1000.0


def choose_n_codebooks(model: Model, bitrate_kbps: float | None = None,
                       n_codebooks: int | None = None) -> int:
    """Stages to transmit: ``n_codebooks``, or the most that fit ``bitrate_kbps`` (kbps per channel),
    or all. A bitrate above the model's maximum is refused (UsageError), not silently lowered."""
    _check_model(model)
    config = model.config
    return choose_stages(bitrate_kbps, n_codebooks, config.bitrate(1) / 1000.0, config.n_codebooks,
                         f"model {config.name!r}")


# ---------------------------------------------------------------------------------------------
# Headers


def _make_header(model: Model, sample_rate: int, channels: int, n_samples: int, n_codebooks: int,
                 gains: tuple[float, ...], chunk_frames: int) -> StreamHeader:
    from .format.bitstream import StreamHeader
    from .format.streamheader import HASH_PREFIX_HEX

    config = model.config
    n_model = model_length(n_samples, sample_rate, config.sample_rate)
    return StreamHeader(
        model_name=None,
        model_hash=_weights_hash(model)[:HASH_PREFIX_HEX],
        sample_rate=int(sample_rate),
        model_sample_rate=config.sample_rate,
        channels=int(channels),
        n_samples=int(n_samples),
        n_frames=config.n_frames(n_model),
        n_codebooks=int(n_codebooks),
        codebook_size=config.codebook_size,
        hop_length=config.hop_length,
        chunk_frames=int(chunk_frames),
        gains=tuple(gains),
        quantizer_kind=config.quantizer.kind,
        sf_inference=config.quantizer.sf_inference if config.quantizer.kind == "sfdiveq" else None,
    )


def check_stream_rate(header: StreamHeader) -> None:
    """BitstreamError unless the stream's sample rate is one this decoder restores (8-96 kHz); the
    format itself allows 1-768 kHz. Needs no model: callers check before loading one."""
    if not MIN_SAMPLE_RATE <= header.sample_rate <= MAX_SAMPLE_RATE:
        raise BitstreamError(f"the stream's sample rate {header.sample_rate} Hz is outside the "
                             f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz this decoder restores")


def check_stream_model(header: StreamHeader, model: Model) -> None:
    """Raise BitstreamError unless ``model`` is the one that made the stream (same weights hash)."""
    config = model.config
    mine = _weights_hash(model)
    if not header.matches_model(mine):
        made_by = f"model {header.model_name!r}" if header.model_name else "another model"
        builtin = builtin_model_for_stream(header)
        hint = (f"it matches the built-in model {builtin!r}: leave out --model"
                if builtin is not None else
                "decode it with --model pointing to the model that encoded it (its .json card lists "
                f"weights_sha256 starting {header.model_hash[:12]})")
        raise BitstreamError(
            f"the stream was made by {made_by} (weights {header.model_hash[:12]}), not by the loaded "
            f"model {config.name!r} (weights {mine[:12]}); {hint}")
    expected = {"model_sample_rate": config.sample_rate, "hop_length": config.hop_length,
                "codebook_size": config.codebook_size}
    for key, value in expected.items():
        if getattr(header, key) != value:
            raise BitstreamError(f"stream {key} {getattr(header, key)} does not match the model's {value}")
    if not 1 <= header.n_codebooks <= config.n_codebooks:
        raise BitstreamError(f"stream uses {header.n_codebooks} codebooks; the model has "
                             f"{config.n_codebooks}")
    if header.n_frames != config.n_frames(model_length(header.n_samples, header.sample_rate,
                                                       config.sample_rate)):
        raise BitstreamError(f"stream frame count {header.n_frames} does not match its length "
                             f"{header.n_samples} samples at {header.sample_rate} Hz")
    check_stream_rate(header)


def _checked_chunks(chunks: Iterable[Any], header: StreamHeader) -> Iterator[np.ndarray]:
    """Range-check code chunks before any model sees them."""
    for chunk in chunks:
        c = np.asarray(chunk)
        if c.ndim != 3 or c.shape[0] != header.channels or c.shape[1] != header.n_codebooks:
            raise BitstreamError(f"stream chunk has shape {tuple(c.shape)}, expected "
                                 f"[{header.channels}, {header.n_codebooks}, t]")
        if c.size and (c.min() < 0 or c.max() >= header.codebook_size):
            raise BitstreamError(f"stream holds a code outside 0..{header.codebook_size - 1}")
        yield c.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------------
# In memory


def _encode_to(f: BinaryIO, model: Model, blocks: Callable[[], Iterable[np.ndarray]], sample_rate: int,
               channels: int, stats: Stats, n_codebooks: int, window: int, context: int,
               progress: Progress | None) -> StreamHeader:
    from .format.bitstream import write_stream

    gains = loudness_gains(stats.sum_sq, stats.peak, stats.n_samples)
    header = _make_header(model, sample_rate, channels, stats.n_samples, n_codebooks, gains, window)
    n_model = model_length(header.n_samples, sample_rate, header.model_sample_rate)
    chunks = streaming.encode_windows(as_runtime(model), streaming.to_model_rate(blocks(), header), n_model,
                                      n_codebooks, window, context, progress)
    write_stream(f, header, chunks)
    return header


def compress(model: Model, audio: Any, sample_rate: int, *, bitrate_kbps: float | None = None,
             n_codebooks: int | None = None, window: int | None = None,
             context: int | None = None) -> bytes:
    """Encode ``audio`` (``[C, T]`` or ``[T]``, any rate in 8-96 kHz) to ``.dvq`` bytes.

    ``audio``: a numpy array or torch tensor; floats are samples (any finite float32 amplitude),
    integers are PCM (int16 / 32768, int32 / 2^31, uint8 offset binary, as soundfile reads them); a
    2-D array is ``[C, T]`` with at most 64 channels (see :mod:`codec.checks`). ``sample_rate``: an
    integer number of Hz. ``bitrate_kbps`` (per channel) picks the most stages that fit (above the
    model's maximum: UsageError); ``n_codebooks`` sets them; neither: all. ``window`` / ``context``
    (frames) override the windowing (default ~10 s windows, ~1 s context).
    """
    _check_model(model)
    rate = check_sample_rate(sample_rate)
    n = choose_n_codebooks(model, bitrate_kbps, n_codebooks)
    w, c = streaming.window_frames(model, window, context)
    x = as_audio(audio)
    streaming.check_window(w, x.shape[0], n)
    stats = Stats(x.shape[0])
    stats.add(x)
    buf = io.BytesIO()
    _encode_to(buf, model, lambda: [x], rate, x.shape[0], stats, n, w, c, None)
    return buf.getvalue()


def _decode_blocks(f: BinaryIO, header: StreamHeader, model: Model, window: int | None,
                   context: int | None, progress: Progress | None) -> Iterator[np.ndarray]:
    from .format.bitstream import iter_chunks

    check_stream_model(header, model)
    w, c = streaming.window_frames(model, window, context)
    chunks = _checked_chunks(iter_chunks(f, header), header)
    windows = streaming.decode_windows(as_runtime(model), chunks, header.n_frames, w, c, progress)
    return streaming.from_model_rate(windows, header)


def _as_stream_bytes(data: Any) -> bytes:
    if isinstance(data, (str, os.PathLike)):
        raise UsageError("decompress takes the .dvq bytes, not a path: use decode_file(path, ...) for "
                         "a file, or Path(path).read_bytes()")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"decompress takes the .dvq bytes (bytes, bytearray or memoryview), got "
                         f"{type(data).__name__}")
    return bytes(data)


def decompress(data: bytes, model: Model | None = None, *, window: int | None = None,
               context: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``.dvq`` bytes. Returns (audio float32 ``[C, T]``, original sample rate in Hz).

    ``model`` None loads the built-in model that made the stream (the default when none did). A
    stream made by another model than ``model`` raises BitstreamError.
    """
    from .format.bitstream import read_header

    f = io.BytesIO(_as_stream_bytes(data))
    header = read_header(f)
    check_stream_rate(header)
    model = load_model(builtin_model_for_stream(header)) if model is None else model
    _check_model(model)
    blocks = list(_decode_blocks(f, header, model, window, context, None))
    audio = (np.concatenate(blocks, axis=1) if blocks
             else np.zeros((header.channels, 0), dtype=np.float32))
    return audio.astype(np.float32, copy=False), header.sample_rate


# ---------------------------------------------------------------------------------------------
# Files


def encode_file(model: Model, in_path: str | os.PathLike[str] | audio_io.AudioInput,
                out_path: str | os.PathLike[str], *, bitrate_kbps: float | None = None,
                n_codebooks: int | None = None, force: bool = False, progress: Progress | None = None,
                window: int | None = None, context: int | None = None) -> StreamHeader:
    """Encode an audio file (any format libsndfile reads; ``-``: standard input) to a ``.dvq`` file
    (``-``: standard output), streaming with bounded memory. ``in_path`` may also be an input already
    opened with :func:`codec.io.audio.open_input`.

    The output must end in ``.dvq`` and must not be the input; it is written atomically and an
    existing one is kept unless ``force``. Returns the header.
    """
    with released_on_failure(out_path):
        _check_model(model)
        n = choose_n_codebooks(model, bitrate_kbps, n_codebooks)
        w, c = streaming.window_frames(model, window, context)
        check_stream_output(out_path)
        if isinstance(in_path, audio_io.AudioInput):
            return _encode_input(model, in_path, out_path, n, w, c, force, progress)
        check_distinct(as_path(in_path, "in_path"), out_path)
        check_output(out_path, force)
        with audio_io.open_input(in_path) as src:
            return _encode_input(model, src, out_path, n, w, c, force, progress)


def _encode_input(model: Model, src: audio_io.AudioInput, out_path: str | os.PathLike[str], n: int,
                  window: int, context: int, force: bool, progress: Progress | None) -> StreamHeader:
    info = src.info
    check_sample_rate(info.sample_rate, src.name)
    check_channels(info.channels, src.name)
    streaming.check_window(window, info.channels, n)
    with atomic_output(out_path, force) as tmp:
        stats = Stats(info.channels)
        for block in src.blocks():
            stats.add(block)
        with open(tmp, "wb") as f:
            header = _encode_to(f, model, src.blocks, info.sample_rate, info.channels, stats, n,
                                window, context, progress)
    return header


def read_stream_header(in_path: str | os.PathLike[str]) -> StreamHeader:
    """The header of a ``.dvq`` file (BitstreamError if it is missing or malformed)."""
    with open_stream(in_path) as stream:
        return stream.header


def decode_file(in_path: str | os.PathLike[str] | StreamInput, out_path: str | os.PathLike[str],
                model: Model | None = None, *, force: bool = False,
                progress: Progress | None = None, window: int | None = None,
                context: int | None = None) -> StreamHeader:
    """Decode a ``.dvq`` file (``-``: standard input, or a :class:`StreamInput` already opened) to
    audio (16-bit wav/flac or ogg by extension; ``-``: wav on standard output) at its original rate,
    length and channel count, streaming with bounded memory; written atomically. The output must not
    be the input. ``model`` None: the built-in model that made the stream. Returns the header.
    """
    with released_on_failure(out_path):
        audio_io.output_format(as_path(out_path, "out_path"))
        if isinstance(in_path, StreamInput):
            return _decode_input(in_path, out_path, model, force, progress, window, context)
        check_distinct(as_path(in_path, "in_path"), out_path)
        check_output(out_path, force)
        with open_stream(in_path) as stream:
            return _decode_input(stream, out_path, model, force, progress, window, context)


def _decode_input(stream: StreamInput, out_path: str | os.PathLike[str], model: Model | None,
                  force: bool, progress: Progress | None, window: int | None,
                  context: int | None) -> StreamHeader:
    header = stream.header
    check_stream_rate(header)
    model = load_model(builtin_model_for_stream(header)) if model is None else model
    _check_model(model)
    blocks = _decode_blocks(stream.file, header, model, window, context, progress)
    with audio_io.open_audio_output(out_path, header.sample_rate, header.channels, force) as out:
        for block in blocks:
            out.write(block)
    return header
