"""The ``.dvq`` bitstream: a compact, streaming, checksummed container for codec codes.

Layout (all integers little-endian; full specification in ``docs/bitstream.md``)::

    prelude  magic "DVQC" | format_version u16 | header_length u32 | header_crc32 u32   (14 bytes)
    header   raw DEFLATE (preset dictionary HEADER_DICTIONARY) of a UTF-8 JSON object
    chunk*   frame_count u32 | byte_length u32 | crc32 u32 | codes bit-packed at log2(codebook_size)

A chunk holds codes ``[C, K, t]`` (C channels, K codebook stages, t frames) flattened in C order and
packed most significant bit first. Every malformed input raises :class:`~codec.errors.BitstreamError`,
and every size a reader allocates is bounded by the constants below.
"""

from __future__ import annotations

import dataclasses
import io
import json
import operator
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np

from .bitpack import MAX_BITS, pack_codes, pack_valid_codes, unpack_codes
from .errors import BitstreamError

MAGIC = b"DVQC"
FORMAT_VERSION = 1

#: Preset DEFLATE dictionary for the header (part of format version 1: never change it).
HEADER_DICTIONARY = (
    b'"ste""sfdiveq"22050,24000,32000,44100,48000,"sf_inference":"midpoint"}{"model_name":'
    b'"diveq-codec","model_hash":"","sample_rate":16000,"model_sample_rate":16000,"channels":1,'
    b'"n_samples":,"n_frames":,"n_codebooks":12,"codebook_size":1024,"hop_length":320,'
    b'"chunk_frames":500,"gains":[1.0],"quantizer_kind":"diveq","sf_inference":null}'
)

# Bounds: a crafted header can make a reader allocate at most a few tens of MiB (see the spec).
MAX_HEADER_BYTES = 65536        # stored (compressed) header and its decompressed JSON, each
MAX_MODEL_NAME = 256            # characters
MAX_SAMPLE_RATE = 768000        # Hz, both rates; the minimum is MIN_SAMPLE_RATE
MIN_SAMPLE_RATE = 1000
MAX_CHANNELS = 64
MAX_CODEBOOKS = 64
MAX_HOP_LENGTH = 65536
MAX_CHUNK_FRAMES = 65536
MAX_CHUNK_CODES = 1 << 22       # channels * n_codebooks * chunk_frames
MAX_SAMPLES = 1 << 36           # per channel
MAX_FRAMES = (1 << 32) - 1
FRAME_TOLERANCE = 2             # |n_frames - n_samples * model_sample_rate / (sample_rate * hop)|
MIN_GAIN, MAX_GAIN = 1e-6, 1e6

#: Recommended chunk length: shorter chunks push a 1.5 kbps stream's container overhead past 2 %.
DEFAULT_CHUNK_SECONDS = 10.0

QUANTIZER_KINDS = ("diveq", "sfdiveq", "ste")
SF_INFERENCE_MODES = ("midpoint", "vertex")

_PRELUDE = struct.Struct("<4sHII")   # magic, format_version, header_length, header_crc32
_CHUNK = struct.Struct("<III")       # frame_count, byte_length, crc32
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_INT_KEYS = ("sample_rate", "model_sample_rate", "channels", "n_samples", "n_frames", "n_codebooks",
             "codebook_size", "hop_length", "chunk_frames")


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """Everything a decoder needs besides the codes. Constructing one validates it.

    Integer fields accept any integral number (e.g. ``np.int64``) and are stored as ``int``; ``gains``
    accepts any sequence of reals and is stored as a tuple of ``float``. Invalid values raise
    :class:`BitstreamError` naming the key.
    """

    model_name: str           # model's name, 1..256 printable characters
    model_hash: str           # sha256 hex (64 lowercase hex digits) of the model's weights
    sample_rate: int          # the input's original sample rate (decode restores it), Hz
    model_sample_rate: int    # rate the model codes at, Hz
    channels: int             # C; each channel is coded separately
    n_samples: int            # exact length per channel at sample_rate
    n_frames: int             # code frames per channel
    n_codebooks: int          # K, stages used in this stream
    codebook_size: int        # power of two; bits per code = log2(codebook_size)
    hop_length: int           # model samples per frame
    chunk_frames: int         # frames per payload chunk (the last chunk may be shorter)
    gains: tuple[float, ...]  # per channel linear gain the encoder applied (decoder divides by it)
    quantizer_kind: str       # "diveq" | "sfdiveq" | "ste"
    sf_inference: str | None  # SF-DiVeQ finite code ("midpoint"), None otherwise

    def __post_init__(self) -> None:
        for key in _INT_KEYS:
            object.__setattr__(self, key, _as_int(getattr(self, key), key))
        object.__setattr__(self, "gains", _as_gains(self.gains))
        _validate(self)

    @property
    def bits_per_code(self) -> int:
        return self.codebook_size.bit_length() - 1

    @property
    def frame_rate(self) -> float:
        """Code frames per second per channel."""
        return self.model_sample_rate / self.hop_length

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def n_chunks(self) -> int:
        return -(-self.n_frames // self.chunk_frames)

    @property
    def nominal_bitrate(self) -> float:
        """Bits per second of packed codes, all channels together (no container overhead)."""
        return self.channels * self.n_codebooks * self.bits_per_code * self.frame_rate

    def chunk_length(self, index: int) -> int:
        """Frames in chunk ``index`` (``chunk_frames``, or fewer for the last chunk)."""
        return min(self.chunk_frames, self.n_frames - index * self.chunk_frames)

    def chunk_bytes(self, frames: int) -> int:
        """Packed payload bytes of a chunk with ``frames`` frames."""
        return (self.channels * self.n_codebooks * frames * self.bits_per_code + 7) // 8

    def payload_size(self) -> int:
        """Bytes of all chunks (heads and payloads) that follow the header."""
        full, rest = divmod(self.n_frames, self.chunk_frames)
        size = full * (_CHUNK.size + self.chunk_bytes(self.chunk_frames))
        return size + (_CHUNK.size + self.chunk_bytes(rest) if rest else 0)

    def to_json(self) -> dict[str, Any]:
        """The header as the JSON object stored in the file (keys in the canonical order)."""
        data = dataclasses.asdict(self)
        data["gains"] = list(self.gains)
        return data


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
        except OverflowError:
            raise _bad("gains", "holds a number too large for a float") from None
        if len(gains) > MAX_CHANNELS:
            break
    return tuple(gains)


def _check_range(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise _bad(key, f"must be in {low}..{high}, got {value}")


def _validate(h: StreamHeader) -> None:
    """Check every field and the relations between them (the rules of docs/bitstream.md)."""
    if not isinstance(h.model_name, str) or not 1 <= len(h.model_name) <= MAX_MODEL_NAME:
        raise _bad("model_name", f"must be a string of 1..{MAX_MODEL_NAME} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in h.model_name):
        raise _bad("model_name", "must not contain control characters or lone surrogates")
    if not isinstance(h.model_hash, str) or not _HASH_RE.fullmatch(h.model_hash):
        raise _bad("model_hash", "must be a sha256 hex digest (64 lowercase hex digits)")
    _check_range("sample_rate", h.sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    _check_range("model_sample_rate", h.model_sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
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
    if len(h.gains) != h.channels:
        raise _bad("gains", f"must hold one gain per channel ({h.channels}), got {len(h.gains)}")
    for gain in h.gains:
        if not MIN_GAIN <= gain <= MAX_GAIN:  # also rejects NaN
            raise _bad("gains", f"must be finite and in [{MIN_GAIN:g}, {MAX_GAIN:g}], got {gain}")
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


# ---------------------------------------------------------------------------------------- writing

def _header_bytes(header: StreamHeader) -> bytes:
    text = json.dumps(header.to_json(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return compressor.compress(text.encode("utf-8")) + compressor.flush()


def _chunk_payload(header: StreamHeader, chunk: Any, index: int) -> tuple[int, bytes]:
    """Validate chunk ``index`` (shape, frame count, dtype, code range) and pack it."""
    codes = np.asarray(chunk)
    if codes.ndim != 3 or codes.shape[:2] != (header.channels, header.n_codebooks):
        raise BitstreamError(f"chunk {index} has shape {codes.shape}, expected "
                             f"[{header.channels}, {header.n_codebooks}, frames]")
    expected = header.chunk_length(index)
    if codes.shape[2] != expected:
        raise BitstreamError(f"chunk {index} has {codes.shape[2]} frames, expected {expected} "
                             f"(n_frames {header.n_frames}, chunk_frames {header.chunk_frames})")
    if codes.dtype.kind not in "iu":
        raise BitstreamError(f"chunk {index} codes must be integers, got dtype {codes.dtype}")
    if codes.min() < 0 or codes.max() >= header.codebook_size:
        bad = (codes < 0) | (codes >= header.codebook_size)
        channel, stage, frame = np.unravel_index(int(np.flatnonzero(bad)[0]), codes.shape)
        raise BitstreamError(f"chunk {index}: code {int(codes[channel, stage, frame])} at channel "
                             f"{channel}, stage {stage}, frame {frame} is out of range "
                             f"0..{header.codebook_size - 1}")
    return expected, pack_valid_codes(codes.reshape(-1), header.bits_per_code)


def write_stream(f: BinaryIO, header: StreamHeader, chunks: Iterable[np.ndarray]) -> int:
    """Write a complete stream to ``f`` one chunk at a time; returns the bytes written.

    ``chunks``: integer arrays ``[C, K, t]`` with ``t == header.chunk_frames`` except the last, whose
    frames make up ``header.n_frames`` in total. On :class:`BitstreamError` (bad shape, frame count,
    dtype or code) part of the stream may already be written: write to a temporary file and discard it.
    """
    if not isinstance(header, StreamHeader):
        raise TypeError(f"header must be a StreamHeader, got {type(header).__name__}")
    blob = _header_bytes(header)
    head = _PRELUDE.pack(MAGIC, FORMAT_VERSION, len(blob), zlib.crc32(blob)) + blob
    f.write(head)
    written = len(head)
    count = 0
    for index, chunk in enumerate(chunks):
        if index >= header.n_chunks:
            raise BitstreamError(f"more chunks than the header's {header.n_chunks} "
                                 f"(n_frames {header.n_frames}, chunk_frames {header.chunk_frames})")
        frames, payload = _chunk_payload(header, chunk, index)
        f.write(_CHUNK.pack(frames, len(payload), zlib.crc32(payload)))
        f.write(payload)
        written += _CHUNK.size + len(payload)
        count = index + 1
    if count != header.n_chunks:
        raise BitstreamError(f"got {count} chunks ({min(count * header.chunk_frames, header.n_frames)} "
                             f"frames), the header declares {header.n_chunks} ({header.n_frames} frames)")
    return written


def encode_stream(header: StreamHeader, codes: np.ndarray) -> bytes:
    """Whole stream as bytes from all codes ``[C, K, n_frames]`` (split into chunks here)."""
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape != (header.channels, header.n_codebooks, header.n_frames):
        raise BitstreamError(f"codes have shape {codes.shape}, expected "
                             f"[{header.channels}, {header.n_codebooks}, {header.n_frames}]")
    step = header.chunk_frames
    out = io.BytesIO()
    write_stream(out, header, (codes[:, :, i:i + step] for i in range(0, header.n_frames, step)))
    return out.getvalue()


# ---------------------------------------------------------------------------------------- reading

def _read_upto(f: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the file (loops over short reads)."""
    parts, got = [], 0
    while got < size:
        part = f.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_exact(f: BinaryIO, size: int, what: str) -> bytes:
    data = _read_upto(f, size)
    if len(data) < size:
        raise BitstreamError(f"truncated .dvq file: {what} needs {size} bytes, only {len(data)} left")
    return data


def _parse_header_json(blob: bytes) -> StreamHeader:
    inflater = zlib.decompressobj(-15, HEADER_DICTIONARY)
    try:
        text = inflater.decompress(blob, MAX_HEADER_BYTES + 1)
    except zlib.error as exc:
        raise BitstreamError(f"corrupt .dvq header: cannot decompress it ({exc})") from None
    if len(text) > MAX_HEADER_BYTES or inflater.unconsumed_tail:
        raise BitstreamError(f"corrupt .dvq header: it decompresses to more than {MAX_HEADER_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise BitstreamError("corrupt .dvq header: its compressed data is incomplete or has extra bytes")
    try:
        obj = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BitstreamError("corrupt .dvq header: it is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so are huge ints
        raise BitstreamError(f"corrupt .dvq header: it is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BitstreamError(f"corrupt .dvq header: expected a JSON object, got {type(obj).__name__}")
    fields = [field.name for field in dataclasses.fields(StreamHeader)]
    missing = [key for key in fields if key not in obj]
    unknown = sorted(key for key in obj if key not in fields)
    if missing:
        raise BitstreamError(f"invalid .dvq header: missing keys {', '.join(missing)}")
    if unknown:
        raise BitstreamError(f"invalid .dvq header: unknown keys {', '.join(unknown)}")
    return StreamHeader(**obj)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_header(f: BinaryIO) -> StreamHeader:
    """Read and validate the prelude and header; leaves ``f`` at the first chunk.

    If ``f`` is seekable, also checks that the rest of the file is exactly the chunks the header
    declares (early truncation and trailing-data errors).
    """
    start = _read_upto(f, len(MAGIC))
    if not start:
        raise BitstreamError("not a .dvq file (it is empty)")
    if len(start) < len(MAGIC) and MAGIC.startswith(start):
        raise BitstreamError("truncated .dvq file: it ends inside the magic bytes")
    if start != MAGIC:
        raise BitstreamError(f"not a .dvq file (starts with {start!r}, expected {MAGIC!r})")
    version, length, crc = struct.unpack("<HII", _read_exact(f, _PRELUDE.size - len(MAGIC), "the prelude"))
    if version > FORMAT_VERSION:
        raise BitstreamError(f"made by a newer diveq-codec (format version {version}; this one reads "
                             f"up to {FORMAT_VERSION}): upgrade diveq-codec to read it")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported .dvq format version {version}")
    if not 1 <= length <= MAX_HEADER_BYTES:
        raise BitstreamError(f"corrupt .dvq header: length {length} is outside 1..{MAX_HEADER_BYTES}")
    blob = _read_exact(f, length, "the header")
    if zlib.crc32(blob) != crc:
        raise BitstreamError(f"CRC mismatch in the header (stored {crc:#010x}, computed "
                             f"{zlib.crc32(blob):#010x}): the file is corrupted")
    header = _parse_header_json(blob)
    _check_size(f, header)
    return header


def _check_size(f: BinaryIO, header: StreamHeader) -> None:
    seekable = getattr(f, "seekable", None)
    if seekable is None or not seekable():
        return
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    have, need = end - here, header.payload_size()
    if have < need:
        raise BitstreamError(f"truncated .dvq file: {header.n_chunks} chunks need {need} bytes, "
                             f"only {have} left")
    if have > need:
        raise BitstreamError(f"corrupt .dvq file: {have - need} bytes of trailing data after the last chunk")


def iter_chunks(f: BinaryIO, header: StreamHeader) -> Iterator[np.ndarray]:
    """Yield every chunk's codes, int64 ``[C, K, t]``, reading ``f`` from just after the header.

    Each chunk's frame count, byte length and CRC32 are checked before it is yielded, and the end of
    the file is checked before the last one; the codes are in ``0 .. codebook_size - 1`` by design.
    """
    shape = (header.channels, header.n_codebooks)
    for index in range(header.n_chunks):
        frames, length, crc = _CHUNK.unpack(_read_exact(f, _CHUNK.size, f"chunk {index}'s head"))
        expected = header.chunk_length(index)
        if frames != expected:
            raise BitstreamError(f"chunk {index} declares {frames} frames, expected {expected} "
                                 f"(n_frames {header.n_frames}, chunk_frames {header.chunk_frames})")
        if length != header.chunk_bytes(frames):
            raise BitstreamError(f"chunk {index} declares {length} bytes, expected "
                                 f"{header.chunk_bytes(frames)} for {frames} frames")
        payload = _read_exact(f, length, f"chunk {index}")
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f"CRC mismatch in chunk {index} (stored {crc:#010x}, computed "
                                 f"{zlib.crc32(payload):#010x}): the file is corrupted")
        codes = unpack_codes(payload, header.bits_per_code, shape[0] * shape[1] * frames)
        if index == header.n_chunks - 1:
            _expect_end(f)
        yield codes.reshape(*shape, frames)
    if header.n_chunks == 0:
        _expect_end(f)


def _expect_end(f: BinaryIO) -> None:
    if f.read(1):
        raise BitstreamError("corrupt .dvq file: trailing data after the last chunk")


def decode_stream(data: bytes) -> tuple[StreamHeader, np.ndarray]:
    """Header and all codes, int64 ``[C, K, n_frames]``, from a whole stream in memory."""
    f = io.BytesIO(data)
    header = read_header(f)  # also checks that ``data`` holds exactly the declared chunks
    codes = np.empty((header.channels, header.n_codebooks, header.n_frames), dtype=np.int64)
    for index, chunk in enumerate(iter_chunks(f, header)):
        start = index * header.chunk_frames
        codes[:, :, start:start + chunk.shape[2]] = chunk
    return header, codes


def describe(header: StreamHeader) -> dict[str, str]:
    """Human-readable summary for ``diveq-codec info`` (label -> value, in display order)."""
    sf = f" ({header.sf_inference})" if header.sf_inference else ""
    return {
        "format": f".dvq version {FORMAT_VERSION}",
        "duration": f"{header.duration_seconds:.3f} s ({header.n_samples} samples per channel)",
        "bitrate": f"{header.nominal_bitrate / 1000:.3f} kbps nominal (all channels)",
        "model": f"{header.model_name} (weights sha256 {header.model_hash[:16]}...)",
        "channels": str(header.channels),
        "sample rate": f"{header.sample_rate} Hz",
        "model sample rate": f"{header.model_sample_rate} Hz ({header.frame_rate:g} frames/s)",
        "stages": f"{header.n_codebooks} x {header.codebook_size} codes ({header.bits_per_code} bits)",
        "quantizer": header.quantizer_kind + sf,
        "frames": f"{header.n_frames} per channel",
        "chunks": f"{header.n_chunks} of up to {header.chunk_frames} frames",
        "gains": ", ".join(f"{gain:.4g}" for gain in header.gains),
    }


__all__ = [
    "MAGIC", "FORMAT_VERSION", "HEADER_DICTIONARY", "DEFAULT_CHUNK_SECONDS", "StreamHeader",
    "write_stream", "read_header", "iter_chunks", "encode_stream", "decode_stream", "pack_codes",
    "unpack_codes", "describe",
]
