"""The ``.dvq`` bitstream: a compact, streaming, checksummed container for codec codes.

Layout of format version 2, written by default (integers little-endian; full specification in
``docs/bitstream.md``)::

    header  magic "DVQC" | format_version u16 = 2 | quantizer u8 | bits_per_code u8 | n_codebooks u8 |
            channels u8 | sample_rate, model_sample_rate, hop_length, chunk_frames, n_samples as
            LEB128 varints | model_hash 8 bytes | gains float32 x channels | header_crc32 u32
    chunk*  codes bit-packed at bits_per_code | crc32 u32 (of header_crc32 u32, chunk index u32, codes)

Version 1 (still read; written for headers whose ``format_version`` is 1)::

    prelude  magic "DVQC" | format_version u16 = 1 | header_length u32 | header_crc32 u32   (14 bytes)
    header   raw DEFLATE (preset dictionary HEADER_DICTIONARY) of a UTF-8 JSON object
    chunk*   frame_count u32 | byte_length u32 | crc32 u32 | codes bit-packed at log2(codebook_size)

A chunk holds codes ``[C, K, t]`` (C channels, K codebook stages, t frames) flattened in C order and
packed most significant bit first. Every malformed input raises :class:`~codec.errors.BitstreamError`,
and every size a reader allocates is bounded (:mod:`codec.format.streamheader` holds the limits).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np

from ..errors import BitstreamError
from .bitpack import pack_codes, pack_valid_codes, unpack_codes
from .streamheader import (  # noqa: F401  (re-exported: the format's constants live there)
    FORMAT_VERSION,
    FRAME_TOLERANCE,
    HASH_PREFIX_HEX,
    JSON_KEYS,
    MAX_CHANNELS,
    MAX_CHUNK_CODES,
    MAX_CHUNK_FRAMES,
    MAX_CODEBOOKS,
    MAX_FRAMES,
    MAX_HOP_LENGTH,
    MAX_MODEL_NAME,
    MAX_SAMPLES,
    MAX_STREAM_SAMPLE_RATE,
    MIN_STREAM_SAMPLE_RATE,
    QUANTIZER_KINDS,
    READABLE_VERSIONS,
    SF_INFERENCE_MODES,
    V1_MAX_GAIN,
    V1_MIN_GAIN,
    StreamHeader,
    frames_for,
)
from .streamjson import HEADER_DICTIONARY, MAX_HEADER_BYTES, compress_header_json, parse_header_json

MAGIC = b"DVQC"
#: Extension of stream files (an encoder refuses any other output name).
STREAM_EXTENSION = ".dvq"



_PRELUDE = struct.Struct("<4sHII")   # version 1: magic, format_version, header_length, header_crc32
_CHUNK = struct.Struct("<III")       # version 1: frame_count, byte_length, crc32
_FIXED_V2 = struct.Struct("<BBBB")   # version 2: quantizer, bits_per_code, n_codebooks, channels
_U32 = struct.Struct("<I")
#: Version 2's quantizer byte.
_QUANTIZER_CODES = {("diveq", None): 0, ("sfdiveq", "midpoint"): 1, ("ste", None): 2,
                    ("sfdiveq", "vertex"): 3}
_QUANTIZERS = {code: kind for kind, code in _QUANTIZER_CODES.items()}
_VARINT_KEYS = ("sample_rate", "model_sample_rate", "hop_length", "chunk_frames", "n_samples")
_MAX_VARINT_BYTES = 6            # 2^36 (MAX_SAMPLES) needs 6 bytes of 7 bits
_HASH_BYTES = HASH_PREFIX_HEX // 2


# ---------------------------------------------------------------------------------------- writing

def _json_header(header: StreamHeader) -> bytes:
    """Version 1: the prelude and the DEFLATE-compressed JSON header."""
    blob = compress_header_json(header)
    return _PRELUDE.pack(MAGIC, 1, len(blob), zlib.crc32(blob)) + blob


def _varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, high bit = more follow."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _binary_header(header: StreamHeader) -> bytes:
    """Version 2: the whole header, its CRC32 included (one byte string per header: canonical)."""
    quantizer = _QUANTIZER_CODES[(header.quantizer_kind, header.sf_inference)]
    parts = [MAGIC, struct.pack("<H", 2),
             _FIXED_V2.pack(quantizer, header.bits_per_code, header.n_codebooks, header.channels)]
    parts += [_varint(getattr(header, key)) for key in _VARINT_KEYS]
    parts.append(bytes.fromhex(header.model_hash))
    parts.append(np.asarray(header.gains, dtype="<f4").tobytes())
    data = b"".join(parts)
    return data + _U32.pack(zlib.crc32(data))


def encode_header(header: StreamHeader) -> bytes:
    """The header as stored at the start of a stream, in the layout of ``header.format_version``."""
    if not isinstance(header, StreamHeader):
        raise TypeError(f"header must be a StreamHeader, got {type(header).__name__}")
    return _json_header(header) if header.format_version == 1 else _binary_header(header)


def _chunk_crc(header_crc: int, index: int, payload: bytes) -> int:
    """Version 2's chunk CRC32: over the header's CRC, the chunk's index (both u32) and its codes, so a
    chunk moved to another place or spliced from another stream fails its check."""
    return zlib.crc32(payload, zlib.crc32(_U32.pack(index), zlib.crc32(_U32.pack(header_crc))))


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
    """Write a complete stream to ``f`` one chunk at a time, in the layout of
    ``header.format_version``; returns the bytes written.

    ``chunks``: integer arrays ``[C, K, t]`` with ``t == header.chunk_frames`` except the last, whose
    frames make up ``header.n_frames`` in total. On :class:`BitstreamError` (bad shape, frame count,
    dtype or code) part of the stream may already be written: write to a temporary file and discard it.
    """
    head = encode_header(header)
    header_crc = _U32.unpack(head[-4:])[0]
    f.write(head)
    written = len(head)
    count = 0
    for index, chunk in enumerate(chunks):
        if index >= header.n_chunks:
            raise BitstreamError(f"more chunks than the header's {header.n_chunks} "
                                 f"(n_frames {header.n_frames}, chunk_frames {header.chunk_frames})")
        frames, payload = _chunk_payload(header, chunk, index)
        if header.format_version == 1:
            f.write(_CHUNK.pack(frames, len(payload), zlib.crc32(payload)))
            f.write(payload)
        else:
            f.write(payload)
            f.write(_U32.pack(_chunk_crc(header_crc, index, payload)))
        written += header.chunk_overhead + len(payload)
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
    """Up to ``size`` bytes: fewer only at the end of the file (loops over short reads). An OSError
    (e.g. EIO) becomes a BitstreamError."""
    parts, got = [], 0
    while got < size:
        try:
            part = f.read(size - got)
        except OSError as exc:
            raise BitstreamError(f"cannot read the .dvq stream: {exc.strerror or exc}") from None
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


def _read_json_header(f: BinaryIO) -> StreamHeader:
    """Version 1, after the magic and the version: header length, CRC, DEFLATE'd JSON."""
    length, crc = struct.unpack("<II", _read_exact(f, _PRELUDE.size - 6, "the prelude"))
    if not 1 <= length <= MAX_HEADER_BYTES:
        raise BitstreamError(f"corrupt .dvq header: length {length} is outside 1..{MAX_HEADER_BYTES}")
    blob = _read_exact(f, length, "the header")
    if zlib.crc32(blob) != crc:
        raise BitstreamError(f"CRC mismatch in the header (stored {crc:#010x}, computed "
                             f"{zlib.crc32(blob):#010x}): the file is corrupted")
    return parse_header_json(blob)


def _read_varint(f: BinaryIO, key: str, seen: bytearray) -> int:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        byte = _read_exact(f, 1, "the header")[0]
        seen.append(byte)
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i:
                raise BitstreamError(f"corrupt .dvq header: {key} is not minimally encoded")
            return value
    raise BitstreamError(f"corrupt .dvq header: {key} is longer than {_MAX_VARINT_BYTES} bytes")


def _read_binary_header(f: BinaryIO, start: bytes) -> StreamHeader:
    """Version 2, after the magic and the version (``start`` holds those 6 bytes): fixed fields,
    varints, hash, gains, CRC. Every field is covered by the CRC, which is checked before any value."""
    seen = bytearray(start)
    fixed = _read_exact(f, _FIXED_V2.size, "the header")
    seen += fixed
    quantizer, bits, n_codebooks, channels = _FIXED_V2.unpack(fixed)
    values = {key: _read_varint(f, key, seen) for key in _VARINT_KEYS}
    if not 1 <= channels <= MAX_CHANNELS:  # bounds the gains' read before the CRC can be checked
        rest = _read_upto(f, _HASH_BYTES + 4)
    else:
        rest = _read_exact(f, _HASH_BYTES + 4 * channels + 4, "the header")
    seen += rest[:-4]
    crc = _U32.unpack(rest[-4:])[0] if len(rest) >= 4 else -1
    if zlib.crc32(seen) != crc:
        raise BitstreamError(f"CRC mismatch in the header (stored {max(crc, 0):#010x}, computed "
                             f"{zlib.crc32(seen):#010x}): the file is corrupted")
    if quantizer not in _QUANTIZERS:
        raise BitstreamError(f"invalid .dvq header: quantizer_kind code {quantizer} is unknown "
                             f"(0 diveq, 1 sfdiveq, 2 ste)")
    if not 1 <= bits <= 16:
        raise BitstreamError(f"invalid .dvq header: codebook_size must be a power of two in 2..65536, "
                             f"got 2^{bits}")
    kind, sf_inference = _QUANTIZERS[quantizer]
    gains = np.frombuffer(rest[_HASH_BYTES:-4], dtype="<f4").astype(np.float64)
    n_frames = (frames_for(values["n_samples"], values["sample_rate"], values["model_sample_rate"],
                           values["hop_length"])
                if values["sample_rate"] and values["hop_length"] else 0)
    return StreamHeader(model_name=None, model_hash=rest[:_HASH_BYTES].hex(), channels=channels,
                        n_frames=n_frames, n_codebooks=n_codebooks, codebook_size=1 << bits,
                        gains=tuple(gains.tolist()), quantizer_kind=kind, sf_inference=sf_inference,
                        format_version=2, **values)


def read_header(f: BinaryIO) -> StreamHeader:
    """Read and validate the header (version 1 or 2); leaves ``f`` at the first chunk.

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
    raw_version = _read_exact(f, 2, "the prelude")
    version = struct.unpack("<H", raw_version)[0]
    if version > FORMAT_VERSION:
        raise BitstreamError(f"made by a newer diveq-codec (format version {version}; this one reads "
                             f"up to {FORMAT_VERSION}): upgrade diveq-codec to read it")
    if version not in READABLE_VERSIONS:
        raise BitstreamError(f"unsupported .dvq format version {version}")
    header = _read_json_header(f) if version == 1 else _read_binary_header(f, start + raw_version)
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


def _read_chunk_v1(f: BinaryIO, header: StreamHeader, index: int) -> tuple[int, bytes]:
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
    return frames, payload


def _read_chunk_v2(f: BinaryIO, header: StreamHeader, index: int, header_crc: int) -> tuple[int, bytes]:
    frames = header.chunk_length(index)
    length = header.chunk_bytes(frames)
    data = _read_exact(f, length + 4, f"chunk {index}")
    payload, crc = data[:length], _U32.unpack(data[length:])[0]
    computed = _chunk_crc(header_crc, index, payload)
    if computed != crc:
        raise BitstreamError(f"CRC mismatch in chunk {index} (stored {crc:#010x}, computed "
                             f"{computed:#010x}): the file is corrupted, or the chunk is not in its place")
    return frames, payload


def iter_chunks(f: BinaryIO, header: StreamHeader) -> Iterator[np.ndarray]:
    """Yield every chunk's codes, int64 ``[C, K, t]``, reading ``f`` from just after the header.

    Each chunk's CRC32 (and in version 1 its frame count and byte length) is checked before it is
    yielded, and the end of the file is checked before the last one; the codes are in
    ``0 .. codebook_size - 1`` by design.
    """
    shape = (header.channels, header.n_codebooks)
    header_crc = _U32.unpack(encode_header(header)[-4:])[0] if header.format_version >= 2 else 0
    for index in range(header.n_chunks):
        if header.format_version == 1:
            frames, payload = _read_chunk_v1(f, header, index)
        else:
            frames, payload = _read_chunk_v2(f, header, index, header_crc)
        codes = unpack_codes(payload, header.bits_per_code, shape[0] * shape[1] * frames)
        if index == header.n_chunks - 1:
            _expect_end(f)
        yield codes.reshape(*shape, frames)
    if header.n_chunks == 0:
        _expect_end(f)


def _expect_end(f: BinaryIO) -> None:
    if _read_upto(f, 1):
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


__all__ = [
    "MAGIC", "FORMAT_VERSION", "READABLE_VERSIONS", "HEADER_DICTIONARY",
    "StreamHeader", "encode_header", "write_stream", "read_header", "iter_chunks", "encode_stream",
    "decode_stream", "pack_codes", "unpack_codes", "STREAM_EXTENSION",
]
