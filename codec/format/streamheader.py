"""What a ``.dvq`` stream says about itself: :class:`StreamHeader`, its limits and its rules.

The container (:mod:`codec.format.bitstream`) stores a header in one of two layouts: format version 1 (a
DEFLATE-compressed JSON object, ~120 bytes) and version 2 (compact binary, ~36 bytes). Both hold the
same fields with the rules of ``docs/bitstream.md`` section 3; version 2 stores the model by the first
8 bytes of its weights' sha256 instead of its name and full hash, gains as float32, and no frame
count (it is derived from the length). Constructing a header checks every rule of its version, so a
reader and a writer can only ever see valid headers; a violation raises
:class:`~codec.errors.BitstreamError` naming the key.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import unicodedata
from typing import Any

import numpy as np

from ..config import MAX_CHANNELS, bits_per_code, frame_count
from ..errors import BitstreamError
from .bitpack import MAX_BITS

#: The version writers write; readers read 1 and 2.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# Bounds: a crafted header can make a reader allocate at most a few tens of MiB (see the spec).
MAX_MODEL_NAME = 256            # characters (version 1)
MAX_STREAM_SAMPLE_RATE = 768000  # Hz, both rates (the codec itself takes config.MIN/MAX_SAMPLE_RATE)
MIN_STREAM_SAMPLE_RATE = 1000
MAX_CODEBOOKS = 64
MAX_HOP_LENGTH = 65536
MAX_CHUNK_FRAMES = 65536
MAX_CHUNK_CODES = 1 << 22       # channels * n_codebooks * chunk_frames
MAX_SAMPLES = 1 << 36           # per channel
MAX_FRAMES = (1 << 32) - 1
FRAME_TOLERANCE = 2             # version 1: |n_frames - n_samples * model_sample_rate / (sample_rate * hop)|
V1_MIN_GAIN, V1_MAX_GAIN = 1e-6, 1e6  # version 1; version 2: any positive finite float32 gain
#: Hex digits of the weights' sha256 a version-2 stream keeps (8 bytes).
HASH_PREFIX_HEX = 16

QUANTIZER_KINDS = ("diveq", "sfdiveq", "ste")
SF_INFERENCE_MODES = ("midpoint", "vertex")

_HASH_RE = {1: re.compile(r"[0-9a-f]{64}"), 2: re.compile(r"[0-9a-f]{16}")}
_INT_KEYS = ("sample_rate", "model_sample_rate", "channels", "n_samples", "n_frames", "n_codebooks",
             "codebook_size", "hop_length", "chunk_frames")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def model_length(n_samples: int, sample_rate: int, model_sample_rate: int) -> int:
    """Samples at the model's rate for ``n_samples`` at ``sample_rate``: ceil(n * msr / sr) (exact)."""
    return -(-n_samples * model_sample_rate // sample_rate)


def frames_for(n_samples: int, sample_rate: int, model_sample_rate: int, hop_length: int) -> int:
    """Code frames for ``n_samples`` at ``sample_rate``: ceil(ceil(n * msr / sr) / hop) (exact)."""
    return frame_count(model_length(n_samples, sample_rate, model_sample_rate), hop_length)


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """Everything a decoder needs besides the codes. Constructing one validates it.

    Integer fields accept any integral number (e.g. ``np.int64``) and are stored as ``int``; ``gains``
    accepts any sequence of reals and is stored as a tuple of ``float``. Invalid values raise
    :class:`BitstreamError` naming the key. ``format_version`` says which layout the header comes
    from or will be written in; it decides the rules for ``model_name``, ``model_hash``, ``gains``
    and ``n_frames`` (see the comments).
    """

    model_name: str | None    # v1: the model's name, 1..256 characters; v2: None (not stored)
    model_hash: str           # v1: sha256 hex of the weights (64 digits); v2: its first 16 digits
    sample_rate: int          # the input's original sample rate (decode restores it), Hz
    model_sample_rate: int    # rate the model codes at, Hz
    channels: int             # C; each channel is coded separately
    n_samples: int            # exact length per channel at sample_rate
    n_frames: int             # code frames per channel (v2: exactly frames_for(...))
    n_codebooks: int          # K, stages used in this stream
    codebook_size: int        # power of two; bits per code = log2(codebook_size)
    hop_length: int           # model samples per frame
    chunk_frames: int         # frames per payload chunk (the last chunk may be shorter)
    gains: tuple[float, ...]  # per channel linear gain the encoder applied (decoder divides by it)
    quantizer_kind: str       # "diveq" | "sfdiveq" | "ste"
    sf_inference: str | None  # SF-DiVeQ finite code ("midpoint" or "vertex"), None otherwise
    format_version: int = FORMAT_VERSION  # 1 or 2: the layout (not part of the version-1 JSON)

    def __post_init__(self) -> None:
        version = _as_int(self.format_version, "format_version")
        if version not in READABLE_VERSIONS:
            raise _bad("format_version", f"must be one of {READABLE_VERSIONS}, got {version}")
        object.__setattr__(self, "format_version", version)
        for key in _INT_KEYS:
            object.__setattr__(self, key, _as_int(getattr(self, key), key))
        object.__setattr__(self, "gains", _as_gains(self.gains))
        _validate(self)

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)

    @property
    def frame_rate(self) -> float:
        """Code frames per second per channel."""
        return self.model_sample_rate / self.hop_length

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def n_chunks(self) -> int:
        return frame_count(self.n_frames, self.chunk_frames)

    @property
    def nominal_bitrate(self) -> float:
        """Bits per second of packed codes, all channels together (no container overhead)."""
        return self.channels * self.n_codebooks * self.bits_per_code * self.frame_rate

    @property
    def stage_bitrate(self) -> float:
        """Bits per second one stage of one channel costs (what ``--bitrate`` counts per channel)."""
        return self.bits_per_code * self.frame_rate

    @property
    def chunk_overhead(self) -> int:
        """Bytes each chunk adds to its packed codes: 12 (v1: frames, length, CRC) or 4 (v2: CRC)."""
        return 12 if self.format_version == 1 else 4

    def chunk_length(self, index: int) -> int:
        """Frames in chunk ``index`` (``chunk_frames``, or fewer for the last chunk)."""
        return min(self.chunk_frames, self.n_frames - index * self.chunk_frames)

    def chunk_bytes(self, frames: int) -> int:
        """Packed payload bytes of a chunk with ``frames`` frames."""
        return (self.channels * self.n_codebooks * frames * self.bits_per_code + 7) // 8

    def payload_size(self) -> int:
        """Bytes of all chunks (with their framing) that follow the header."""
        full, rest = divmod(self.n_frames, self.chunk_frames)
        size = full * (self.chunk_overhead + self.chunk_bytes(self.chunk_frames))
        return size + (self.chunk_overhead + self.chunk_bytes(rest) if rest else 0)

    def matches_model(self, weights_sha256: str) -> bool:
        """True if the stream was made by the model whose weights hash (64 hex digits) is given."""
        return isinstance(weights_sha256, str) and weights_sha256.startswith(self.model_hash)

    def to_json(self) -> dict[str, Any]:
        """The 14 fields as a JSON object, keys in the canonical order (the version-1 header; without
        ``format_version``)."""
        data = dataclasses.asdict(self)
        del data["format_version"]
        data["gains"] = list(self.gains)
        return data


#: The fields a version-1 JSON header holds (all but format_version), in the canonical order.
JSON_KEYS = tuple(f.name for f in dataclasses.fields(StreamHeader) if f.name != "format_version")


def _bad(key: str, message: str) -> BitstreamError:
    return BitstreamError(f"invalid .dvq header: {key} {message}")


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise _bad(key, "must be an integer, got a boolean")
    try:
        return operator.index(value)
    except TypeError:
        raise _bad(key, f"must be an integer, got {type(value).__name__}") from None


def _as_gains(value: Any) -> tuple[float, ...]:
    try:
        if isinstance(value, (str, bytes, dict)):
            raise TypeError
        items = iter(value)
    except TypeError:
        raise _bad("gains", f"must be a list of numbers, got {type(value).__name__}") from None
    gains: list[float] = []
    for gain in items:
        if isinstance(gain, (bool, np.bool_, str, bytes)) or not isinstance(gain, (int, float, np.number)):
            raise _bad("gains", f"must hold numbers, got {type(gain).__name__}")
        try:
            gains.append(float(gain))
        except (OverflowError, TypeError):
            raise _bad("gains", "holds a number that is not a real float") from None
        if len(gains) > MAX_CHANNELS:
            break
    return tuple(gains)


def _check_range(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise _bad(key, f"must be in {low}..{high}, got {value}")


def _validate_model(h: StreamHeader) -> None:
    if h.format_version == 1:
        if not isinstance(h.model_name, str) or not 1 <= len(h.model_name) <= MAX_MODEL_NAME:
            raise _bad("model_name", f"must be a string of 1..{MAX_MODEL_NAME} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in h.model_name):
            raise _bad("model_name", "must not contain control characters or lone surrogates")
        if not isinstance(h.model_hash, str) or not _HASH_RE[1].fullmatch(h.model_hash):
            raise _bad("model_hash", "must be a sha256 hex digest (64 lowercase hex digits)")
    else:
        if h.model_name is not None:
            raise _bad("model_name", "is not stored in format version 2 (must be None)")
        if not isinstance(h.model_hash, str) or not _HASH_RE[2].fullmatch(h.model_hash):
            raise _bad("model_hash", f"must be the first {HASH_PREFIX_HEX} lowercase hex digits of the "
                       "weights' sha256 in format version 2")


def _validate_gains(h: StreamHeader) -> None:
    if len(h.gains) != h.channels:
        raise _bad("gains", f"must hold one gain per channel ({h.channels}), got {len(h.gains)}")
    for gain in h.gains:
        if h.format_version == 1:
            if not V1_MIN_GAIN <= gain <= V1_MAX_GAIN:  # also rejects NaN
                raise _bad("gains", f"must be finite and in [{V1_MIN_GAIN:g}, {V1_MAX_GAIN:g}], got {gain}")
        elif not (0.0 < gain <= _FLOAT32_MAX and float(np.float32(gain)) == gain):
            raise _bad("gains", f"must be positive finite float32 values, got {gain}")


def _validate(h: StreamHeader) -> None:
    """Check every field and the relations between them (the rules of docs/bitstream.md)."""
    _validate_model(h)
    _check_range("sample_rate", h.sample_rate, MIN_STREAM_SAMPLE_RATE, MAX_STREAM_SAMPLE_RATE)
    _check_range("model_sample_rate", h.model_sample_rate, MIN_STREAM_SAMPLE_RATE, MAX_STREAM_SAMPLE_RATE)
    _check_range("channels", h.channels, 1, MAX_CHANNELS)
    _check_range("n_samples", h.n_samples, 0, MAX_SAMPLES)
    _check_range("n_frames", h.n_frames, 0, MAX_FRAMES)
    _check_range("n_codebooks", h.n_codebooks, 1, MAX_CODEBOOKS)
    size = h.codebook_size
    if not 2 <= size <= 1 << MAX_BITS or size & (size - 1):
        raise _bad("codebook_size", f"must be a power of two in 2..{1 << MAX_BITS}, got {size}")
    _check_range("hop_length", h.hop_length, 1, MAX_HOP_LENGTH)
    _check_range("chunk_frames", h.chunk_frames, 1, MAX_CHUNK_FRAMES)
    codes = h.channels * h.n_codebooks * h.chunk_frames
    if codes > MAX_CHUNK_CODES:
        raise _bad("chunk_frames", f"makes chunks of {codes} codes (channels * n_codebooks * "
                   f"chunk_frames), more than {MAX_CHUNK_CODES}")
    _validate_gains(h)
    if h.quantizer_kind not in QUANTIZER_KINDS:
        raise _bad("quantizer_kind", f"must be one of {', '.join(QUANTIZER_KINDS)}, "
                   f"got {h.quantizer_kind!r}")
    if h.quantizer_kind == "sfdiveq" and h.sf_inference not in SF_INFERENCE_MODES:
        raise _bad("sf_inference", f"must be one of {', '.join(SF_INFERENCE_MODES)} for sfdiveq, "
                   f"got {h.sf_inference!r}")
    if h.quantizer_kind != "sfdiveq" and h.sf_inference is not None:
        raise _bad("sf_inference", f"must be null unless quantizer_kind is sfdiveq, got {h.sf_inference!r}")
    if (h.n_samples == 0) != (h.n_frames == 0):
        raise _bad("n_frames", f"{h.n_frames} does not match n_samples {h.n_samples} "
                   "(both are 0 for an empty stream, or neither)")
    # n_frames ~= n_samples * model_sample_rate / (sample_rate * hop_length), in exact integers
    scale = h.sample_rate * h.hop_length
    if abs(h.n_frames * scale - h.n_samples * h.model_sample_rate) > FRAME_TOLERANCE * scale:
        expected = h.n_samples * h.model_sample_rate / scale
        raise _bad("n_frames", f"{h.n_frames} does not match n_samples {h.n_samples} "
                   f"(expected about {expected:.1f} frames)")
    if h.format_version >= 2:
        expected_frames = frames_for(h.n_samples, h.sample_rate, h.model_sample_rate, h.hop_length)
        if h.n_frames != expected_frames:
            raise _bad("n_frames", f"must be exactly {expected_frames} for n_samples {h.n_samples} in "
                       "format version 2 (ceil(ceil(n_samples * model_sample_rate / sample_rate) / "
                       "hop_length))")


__all__ = ["FORMAT_VERSION", "READABLE_VERSIONS", "StreamHeader", "JSON_KEYS", "frames_for",
           "HASH_PREFIX_HEX", "QUANTIZER_KINDS", "SF_INFERENCE_MODES", "MAX_CHANNELS", "MAX_CODEBOOKS",
           "MAX_SAMPLES", "MAX_FRAMES", "MAX_CHUNK_CODES", "MAX_CHUNK_FRAMES", "MAX_HOP_LENGTH",
           "MIN_STREAM_SAMPLE_RATE", "MAX_STREAM_SAMPLE_RATE", "MAX_MODEL_NAME", "V1_MIN_GAIN",
           "V1_MAX_GAIN", "model_length"]
