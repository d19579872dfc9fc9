"""The version-1 stream header: JSON, DEFLATE-compressed with a preset dictionary (docs/bitstream.md,
section "version 1"). Readers keep reading it; :mod:`codec.format.bitstream` frames it."""

from __future__ import annotations

import json
import zlib
from typing import Any

from ..errors import BitstreamError
from .streamheader import JSON_KEYS, StreamHeader

#: Preset DEFLATE dictionary for the version-1 header (part of format version 1: never change it).
HEADER_DICTIONARY = (
    b'"ste""sfdiveq"22050,24000,32000,44100,48000,"sf_inference":"midpoint"}{"model_name":'
    b'"diveq-codec","model_hash":"","sample_rate":16000,"model_sample_rate":16000,"channels":1,'
    b'"n_samples":,"n_frames":,"n_codebooks":12,"codebook_size":1024,"hop_length":320,'
    b'"chunk_frames":500,"gains":[1.0],"quantizer_kind":"diveq","sf_inference":null}'
)

MAX_HEADER_BYTES = 65536        # version 1: stored (compressed) header and its decompressed JSON, each


def compress_header_json(header: StreamHeader) -> bytes:
    """The stored blob of a version-1 header: its JSON, raw DEFLATE with :data:`HEADER_DICTIONARY`."""
    text = json.dumps(header.to_json(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return compressor.compress(text.encode("utf-8")) + compressor.flush()


def parse_header_json(blob: bytes) -> StreamHeader:
    """The header from a stored version-1 blob (BitstreamError on anything malformed)."""
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
    missing = [key for key in JSON_KEYS if key not in obj]
    unknown = sorted(key for key in obj if key not in JSON_KEYS)
    if missing:
        raise BitstreamError(f"invalid .dvq header: missing keys {', '.join(missing)}")
    if unknown:
        raise BitstreamError(f"invalid .dvq header: unknown keys {', '.join(unknown)}")
    return StreamHeader(**obj, format_version=1)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
