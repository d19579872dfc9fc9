"""The Python API: load a model, compress/decompress audio in memory, encode/decode files.

```python
from codec.api import load_model, compress, decompress, encode_file, decode_file
model = load_model()                       # built-in default model ("auto": cuda if available)
data = compress(model, audio, 44100, bitrate_kbps=6)   # audio [C, T] float32 -> .dvq bytes
audio, sample_rate = decompress(data, model)           # [C, T] float32 at the original rate
encode_file(model, "in.wav", "out.dvq")                # streaming, bounded memory, atomic
decode_file("out.dvq", "back.wav", model)
```

Pipeline (encode; decode is its mirror): each channel is scaled by its own gain (loudness
normalisation, stored in the stream header and divided out on decode), resampled to the model's rate,
and coded separately (channels are the model's batch dimension). Long signals are coded in windows of
``window`` frames, each with ``context`` frames of real signal on both sides; only the centre's codes
(or samples) are kept, so the result matches whole-signal coding up to the model's receptive field
while memory stays bounded. Files are read in blocks and the stream is written chunk by chunk.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from . import audio as audio_io
from .streaming import (Progress, decode_windows, encode_windows, from_model_rate, model_length,
                        to_model_rate, window_frames)
from .errors import AudioError, BitstreamError, ConfigError, DeviceError, ModelError, UsageError

if TYPE_CHECKING:
    import torch

    from .bitstream import StreamHeader
    from .model import Codec

#: The built-in default model (absent until one is installed).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "pretrained" / "default.safetensors"
#: Input sample rates accepted (Hz).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 96000
#: Loudness normalisation: target RMS (-20 dBFS), gain bounds (the stream allows 1e-6..1e6; +40 dB
#: at most here), peak bound after the gain, and the RMS below which a channel is silent (gain 1).
TARGET_RMS, MIN_GAIN, MAX_GAIN, PEAK_LIMIT, SILENT_RMS = 0.1, 1e-6, 100.0, 0.99, 1e-5


# ---------------------------------------------------------------------------------------------
# Models and devices


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``; ``cuda`` / ``cuda:N`` (DeviceError without GPU)."""
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but no CUDA GPU is available "
                              "(use --device cpu or auto)")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise UsageError(f"invalid device {device!r}") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                              "CUDA device(s) exist")
        return dev
    raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")


def _model_path(name_or_path: str | os.PathLike[str] | None) -> Path:
    if name_or_path is None:
        if not DEFAULT_MODEL_PATH.is_file():
            raise ModelError("no built-in default model is installed (pass a model file with --model)")
        return DEFAULT_MODEL_PATH
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


def load_model(name_or_path: str | os.PathLike[str] | None = None, device: str = "auto") -> Codec:
    """Load a model in eval mode on ``device``.

    ``name_or_path``: a ``.safetensors`` model file (written by ``codec.weights.save_model``), the
    name of a built-in model, or None for the built-in default. Raises ModelError (missing or bad file,
    no default installed) or DeviceError (``cuda`` without a GPU).
    """
    path = _model_path(name_or_path)
    dev = resolve_device(device)
    from .weights import load_model_file

    return load_model_file(path, dev).eval()


@contextlib.contextmanager
def _eval_mode(model: Codec) -> Iterator[None]:
    """Run in eval mode (deterministic coding), restoring the model's train/eval flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _weights_hash(model: Codec) -> str:
    value = getattr(model, "weights_hash", None)
    if not value:
        raise ModelError("the model has no weights hash: save it with codec.weights.save_model and "
                         "load it with codec.api.load_model before coding")
    return str(value)


# ---------------------------------------------------------------------------------------------
# Rates, gains, stages


def _check_rate(sample_rate: int, where: str) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{where}: sample rate {sample_rate} Hz is outside "
                         f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")


def _gains(sum_sq: np.ndarray, peak: np.ndarray, n_samples: int) -> tuple[float, ...]:
    """Per-channel linear gains bringing the RMS to TARGET_RMS (bounded by MAX_GAIN and PEAK_LIMIT)."""
    rms = np.sqrt(sum_sq / max(n_samples, 1))
    gain = np.where(rms > SILENT_RMS, TARGET_RMS / np.maximum(rms, SILENT_RMS), 1.0)
    gain = np.minimum(gain, PEAK_LIMIT / np.maximum(peak, 1e-30))
    gain = np.clip(gain, MIN_GAIN, MAX_GAIN)
    return tuple(float(np.float32(g)) for g in gain)  # float32-exact, as a header may store them


class _Stats:
    """Running sum of squares, peak and length per channel over blocks ``[C, t]``."""

    def __init__(self, channels: int) -> None:
        self.sum_sq = np.zeros(channels, dtype=np.float64)
        self.peak = np.zeros(channels, dtype=np.float64)
        self.n_samples = 0

    def add(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        self.sum_sq += np.einsum("ct,ct->c", block, block, dtype=np.float64)
        self.peak = np.maximum(self.peak, np.maximum(block.max(axis=1), -block.min(axis=1)))
        self.n_samples += block.shape[1]


def choose_n_codebooks(model: Codec, bitrate_kbps: float | None = None,
                       n_codebooks: int | None = None) -> int:
    """Stages to transmit: from ``n_codebooks``, or the most that fit ``bitrate_kbps``, or all."""
    config = model.config
    if bitrate_kbps is not None and n_codebooks is not None:
        raise UsageError("give either a bitrate or a number of codebooks, not both")
    if n_codebooks is not None:
        if not 1 <= int(n_codebooks) <= config.n_codebooks:
            raise UsageError(f"n_codebooks must be in 1..{config.n_codebooks}, got {n_codebooks}")
        return int(n_codebooks)
    if bitrate_kbps is not None:
        if not (math.isfinite(bitrate_kbps) and bitrate_kbps > 0):
            raise UsageError(f"bitrate must be a positive number of kbps, got {bitrate_kbps}")
        try:
            return config.n_codebooks_for(float(bitrate_kbps))
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    return config.n_codebooks


# ---------------------------------------------------------------------------------------------
# Headers


def _make_header(model: Codec, sample_rate: int, channels: int, n_samples: int, n_codebooks: int,
                 gains: tuple[float, ...], chunk_frames: int) -> StreamHeader:
    from .bitstream import StreamHeader

    config = model.config
    n_model = model_length(n_samples, sample_rate, config.sample_rate)
    return StreamHeader(
        model_name=config.name,
        model_hash=_weights_hash(model),
        sample_rate=int(sample_rate),
        model_sample_rate=config.sample_rate,
        channels=int(channels),
        n_samples=int(n_samples),
        n_frames=-(-n_model // config.hop_length),
        n_codebooks=int(n_codebooks),
        codebook_size=config.codebook_size,
        hop_length=config.hop_length,
        chunk_frames=int(chunk_frames),
        gains=tuple(gains),
        quantizer_kind=config.quantizer.kind,
        sf_inference=config.quantizer.sf_inference if config.quantizer.kind == "sfdiveq" else None,
    )


def check_stream_model(header: StreamHeader, model: Codec) -> None:
    """Raise BitstreamError unless ``model`` is the one that made the stream (same weights hash)."""
    config = model.config
    mine = _weights_hash(model)
    if header.model_hash != mine:
        raise BitstreamError(
            f"the stream was made by model {header.model_name!r} (weights {header.model_hash[:12]}), "
            f"not by the loaded model {config.name!r} (weights {mine[:12]}); decode it with --model "
            "pointing to the model that encoded it")
    expected = {"model_sample_rate": config.sample_rate, "hop_length": config.hop_length,
                "codebook_size": config.codebook_size}
    for key, value in expected.items():
        if getattr(header, key) != value:
            raise BitstreamError(f"stream {key} {getattr(header, key)} does not match the model's {value}")
    if not 1 <= header.n_codebooks <= config.n_codebooks:
        raise BitstreamError(f"stream uses {header.n_codebooks} codebooks; the model has "
                             f"{config.n_codebooks}")
    if header.n_frames != -(-model_length(header.n_samples, header.sample_rate, config.sample_rate)
                            // config.hop_length):
        raise BitstreamError(f"stream frame count {header.n_frames} does not match its length "
                             f"{header.n_samples} samples at {header.sample_rate} Hz")
    if len(header.gains) != header.channels or not all(math.isfinite(g) and g > 0 for g in header.gains):
        raise BitstreamError("stream gains are invalid")
    _check_rate(header.sample_rate, "stream")


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
# Public API


def _as_audio(audio: Any) -> np.ndarray:
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise UsageError(f"audio must be [C, T] (or [T] for mono), got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise AudioError("audio holds non-finite samples (NaN or Inf)")
    return x


def _encode_to(f: BinaryIO, model: Codec, blocks: Callable[[], Iterable[np.ndarray]], sample_rate: int,
               channels: int, stats: _Stats, n_codebooks: int, window: int, context: int,
               progress: Progress | None) -> StreamHeader:
    from .bitstream import write_stream

    gains = _gains(stats.sum_sq, stats.peak, stats.n_samples)
    header = _make_header(model, sample_rate, channels, stats.n_samples, n_codebooks, gains, window)
    n_model = model_length(header.n_samples, sample_rate, header.model_sample_rate)
    chunks = encode_windows(model, to_model_rate(blocks(), header), n_model, n_codebooks, window,
                             context, progress)
    write_stream(f, header, chunks)
    return header


def compress(model: Codec, audio: Any, sample_rate: int, *, bitrate_kbps: float | None = None,
             n_codebooks: int | None = None, window: int | None = None,
             context: int | None = None) -> bytes:
    """Encode ``audio`` ``[C, T]`` (float, any rate in 8-96 kHz) to ``.dvq`` bytes.

    ``bitrate_kbps`` picks the most stages that fit; ``n_codebooks`` sets them; neither: all.
    ``window`` / ``context`` (frames) override the windowing (default ~10 s windows, ~1 s context).
    """
    x = _as_audio(audio)
    _check_rate(int(sample_rate), "audio")
    n = choose_n_codebooks(model, bitrate_kbps, n_codebooks)
    w, c = window_frames(model, window, context)
    stats = _Stats(x.shape[0])
    stats.add(x)
    buf = io.BytesIO()
    with _eval_mode(model):
        _encode_to(buf, model, lambda: [x], int(sample_rate), x.shape[0], stats, n, w, c, None)
    return buf.getvalue()


def _decode_blocks(f: BinaryIO, header: StreamHeader, model: Codec, window: int | None,
                   context: int | None, progress: Progress | None) -> Iterator[np.ndarray]:
    from .bitstream import iter_chunks

    check_stream_model(header, model)
    w, c = window_frames(model, window, context)
    chunks = _checked_chunks(iter_chunks(f, header), header)
    return from_model_rate(decode_windows(model, chunks, header.n_frames, w, c, progress), header)


def decompress(data: bytes, model: Codec | None = None, *, window: int | None = None,
               context: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``.dvq`` bytes. Returns (audio float32 ``[C, T]``, original sample rate in Hz).

    ``model`` None loads the built-in default. A stream made by another model raises BitstreamError.
    """
    from .bitstream import read_header

    f = io.BytesIO(data)
    header = read_header(f)
    model = load_model(None) if model is None else model
    with _eval_mode(model):
        blocks = list(_decode_blocks(f, header, model, window, context, None))
    audio = (np.concatenate(blocks, axis=1) if blocks
             else np.zeros((header.channels, 0), dtype=np.float32))
    return audio.astype(np.float32, copy=False), header.sample_rate


def encode_file(model: Codec, in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                bitrate_kbps: float | None = None, n_codebooks: int | None = None,
                force: bool = False, progress: Progress | None = None,
                window: int | None = None, context: int | None = None) -> StreamHeader:
    """Encode an audio file (wav/flac/ogg) to a ``.dvq`` file, streaming with bounded memory.

    The output is written atomically and an existing one is kept unless ``force``. Returns the header.
    """
    n = choose_n_codebooks(model, bitrate_kbps, n_codebooks)
    w, c = window_frames(model, window, context)
    audio_io.check_output(out_path, force)
    info = audio_io.audio_info(in_path)
    _check_rate(info.sample_rate, str(in_path))
    with audio_io.atomic_output(out_path, force) as tmp:
        stats = _Stats(info.channels)
        for block in audio_io.iter_blocks(in_path):
            stats.add(block)
        with open(tmp, "wb") as f, _eval_mode(model):
            header = _encode_to(f, model, lambda: audio_io.iter_blocks(in_path), info.sample_rate,
                                info.channels, stats, n, w, c, progress)
    return header


def _open_stream(in_path: str | os.PathLike[str]) -> BinaryIO:
    path = Path(in_path)
    if not path.exists():
        raise BitstreamError(f"no such file: {path}")
    if path.is_dir():
        raise BitstreamError(f"is a folder, not a .dvq file: {path}")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise BitstreamError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_stream_header(in_path: str | os.PathLike[str]) -> StreamHeader:
    """The header of a ``.dvq`` file (BitstreamError if it is missing or malformed)."""
    from .bitstream import read_header

    with _open_stream(in_path) as f:
        return read_header(f)


def decode_file(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                model: Codec | None = None, *, force: bool = False,
                progress: Progress | None = None, window: int | None = None,
                context: int | None = None) -> StreamHeader:
    """Decode a ``.dvq`` file to audio (16-bit wav/flac or ogg by extension) at its original rate,
    length and channel count, streaming with bounded memory; written atomically. Returns the header.
    """
    from .bitstream import read_header

    audio_io.output_format(out_path)
    audio_io.check_output(out_path, force)
    with _open_stream(in_path) as f:
        header = read_header(f)
        model = load_model(None) if model is None else model
        blocks = _decode_blocks(f, header, model, window, context, progress)
        with audio_io.open_audio_output(out_path, header.sample_rate, header.channels, force) as out, \
                _eval_mode(model):
            for block in blocks:
                out.write(block)
    return header
