"""Tests of the .dvq bitstream (codec/format/bitstream.py) against docs/bitstream.md."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import struct
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.format import bitstream as bs
from codec.format.bitstream import (
    FORMAT_VERSION, HEADER_DICTIONARY, MAGIC, StreamHeader, decode_stream, encode_stream,
    iter_chunks, pack_codes, read_header, unpack_codes, write_stream,
)
from codec.errors import BitstreamError, DiveqError
from codec.format.streamfile import describe

HASH = hashlib.sha256(b"weights").hexdigest()
FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow])


def make_header(**overrides: Any) -> StreamHeader:
    """A small valid stereo format-version-1 header: 25 frames at 16 kHz / hop 320 in chunks of 10
    frames (the version-2 tests use :func:`make_v2`)."""
    fields: dict[str, Any] = dict(
        model_name="tiny", model_hash=HASH, sample_rate=44100, model_sample_rate=16000, channels=2,
        n_samples=22050, n_frames=25, n_codebooks=3, codebook_size=1024, hop_length=320,
        chunk_frames=10, gains=(0.5, 1.25), quantizer_kind="diveq", sf_inference=None,
        format_version=1)
    fields.update(overrides)
    return StreamHeader(**fields)


def random_codes(header: StreamHeader, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, header.codebook_size, (header.channels, header.n_codebooks, header.n_frames))


def craft(header_json: bytes, body: bytes = b"", version: int = 1) -> bytes:
    """A version-1 stream built independently of the writer, from raw header JSON bytes (spec
    section 2.1)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    blob = deflater.compress(header_json) + deflater.flush()
    return struct.pack("<4sHII", MAGIC, version, len(blob), zlib.crc32(blob)) + blob + body


def header_json(header: StreamHeader, **overrides: Any) -> bytes:
    data = header.to_json()
    data.update(overrides)
    return json.dumps(data).encode()


def body_of(stream: bytes) -> bytes:
    """Bytes after the header (all chunks)."""
    length = struct.unpack_from("<I", stream, 6)[0]
    return stream[14 + length:]


class Trickle(io.RawIOBase):
    """A non-seekable reader that returns at most 3 bytes per read (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(3, len(buffer)))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def read_streaming(data: bytes) -> tuple[StreamHeader, list[np.ndarray]]:
    f = Trickle(data)
    header = read_header(f)  # type: ignore[arg-type]
    return header, list(iter_chunks(f, header))  # type: ignore[arg-type]


def reference_pack(values: list[int], bits: int) -> bytes:
    """The spec's bit order, written the slow obvious way: MSB first, zero padding."""
    text = "".join(format(v, f"0{bits}b") for v in values)
    text += "0" * (-len(text) % 8)
    return bytes(int(text[i:i + 8], 2) for i in range(0, len(text), 8))


# ----------------------------------------------------------------------------------------- packing

@given(st.integers(1, 16).flatmap(
    lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, (1 << bits) - 1), max_size=70))))
@settings(max_examples=300, deadline=timedelta(seconds=2))
def test_pack_unpack_round_trip_every_bits(case: tuple[int, list[int]]) -> None:
    bits, values = case
    packed = pack_codes(np.array(values, dtype=np.int64), bits)
    assert packed == reference_pack(values, bits)
    assert len(packed) == (len(values) * bits + 7) // 8
    unpacked = unpack_codes(packed, bits, len(values))
    assert unpacked.dtype == np.int64 and unpacked.tolist() == values


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_round_trip_large_every_bits(bits: int) -> None:
    values = np.random.default_rng(bits).integers(0, 1 << bits, 10_007, dtype=np.uint64)
    assert np.array_equal(unpack_codes(pack_codes(values, bits), bits, values.size), values)


def test_pack_layout_example() -> None:
    # docs/bitstream.md: codes 1, 2 at 10 bits -> 0000000001 0000000010 0000 -> 00 40 20
    assert pack_codes(np.array([1, 2]), 10) == bytes([0x00, 0x40, 0x20])


@pytest.mark.parametrize("bits", [3, 10, 13])
def test_padding_bits_are_never_codes(bits: int) -> None:
    values = np.arange(5) % (1 << bits)
    packed = bytearray(pack_codes(values, bits))
    packed[-1] |= (1 << (-5 * bits % 8)) - 1  # set every padding bit
    assert unpack_codes(bytes(packed), bits, 5).tolist() == values.tolist()


def test_pack_rejects_bad_input() -> None:
    with pytest.raises(BitstreamError, match="out of range"):
        pack_codes(np.array([0, 1024]), 10)
    with pytest.raises(BitstreamError, match="out of range"):
        pack_codes(np.array([-1]), 10)
    with pytest.raises(BitstreamError, match="integers"):
        pack_codes(np.array([1.0]), 10)
    for bits in (0, 17, True):
        with pytest.raises(BitstreamError, match="bits per code"):
            pack_codes(np.array([0]), bits)
    with pytest.raises(BitstreamError, match="need 3 bytes"):
        unpack_codes(b"\x00\x00", 10, 2)
    with pytest.raises(BitstreamError, match="need 3 bytes"):
        unpack_codes(b"\x00" * 4, 10, 2)


# ------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("overrides", [
    {},
    dict(chunk_frames=5),                                   # chunks divide n_frames exactly
    dict(chunk_frames=100),                                 # one short chunk
    dict(channels=1, gains=(1.0,), codebook_size=2, n_codebooks=1),
    dict(codebook_size=65536, quantizer_kind="sfdiveq", sf_inference="midpoint"),
    dict(codebook_size=2048, quantizer_kind="ste", model_name="modèle 24k ✓"),
])
def test_stream_round_trip(overrides: dict[str, Any]) -> None:
    header = make_header(**overrides)
    codes = random_codes(header)
    data = encode_stream(header, codes)
    decoded_header, decoded = decode_stream(data)
    assert decoded_header == header
    assert decoded.dtype == np.int64 and np.array_equal(decoded, codes)
    streamed_header, chunks = read_streaming(data)
    assert streamed_header == header and np.array_equal(np.concatenate(chunks, axis=2), codes)


def test_write_stream_streams_to_a_file(tmp_path: Path) -> None:
    header = make_header()
    codes = random_codes(header)
    chunks = (codes[:, :, i:i + 10] for i in range(0, 25, 10))  # a generator: never all in memory
    path = tmp_path / "x.dvq"
    with open(path, "wb") as f:
        written = write_stream(f, header, chunks)
    assert written == path.stat().st_size
    with open(path, "rb") as f:
        assert read_header(f) == header
        assert f.tell() == path.stat().st_size - header.payload_size()
        got = list(iter_chunks(f, header))
    assert [c.shape for c in got] == [(2, 3, 10), (2, 3, 10), (2, 3, 5)]
    assert np.array_equal(np.concatenate(got, axis=2), codes)


def test_empty_stream_is_valid() -> None:
    header = make_header(n_samples=0, n_frames=0)
    assert header.n_chunks == 0 and header.duration_seconds == 0.0
    data = encode_stream(header, np.zeros((2, 3, 0), dtype=np.int64))
    assert body_of(data) == b""
    decoded_header, codes = decode_stream(data)
    assert decoded_header == header and codes.shape == (2, 3, 0) and codes.dtype == np.int64
    assert read_streaming(data)[1] == []
    with pytest.raises(BitstreamError, match="trailing"):
        decode_stream(data + b"\x00")
    with pytest.raises(BitstreamError, match="trailing"):
        read_streaming(data + b"\x00")


def test_derived_properties_and_normalisation() -> None:
    header = make_header(n_frames=np.int64(25), gains=np.array([0.5, 1.25], dtype=np.float32))
    assert type(header.n_frames) is int and header.gains == (0.5, 1.25)
    assert header.bits_per_code == 10
    assert header.frame_rate == 50.0
    assert header.duration_seconds == 0.5
    assert header.n_chunks == 3
    assert header.nominal_bitrate == 2 * 3 * 10 * 50.0


def test_gains_round_trip_exactly() -> None:
    header = make_header(gains=(0.1 + 0.2, 1 / 3))
    assert decode_stream(encode_stream(header, random_codes(header)))[0].gains == (0.1 + 0.2, 1 / 3)


def test_overhead_under_two_percent_at_1_5_kbps_for_60_s() -> None:
    # default model: 16 kHz, hop 320 (50 frames/s), 1024 codes (10 bits): 3 stages = 1.5 kbps
    v1 = StreamHeader(
        model_name="diveq-codec-speech-16k-v1", model_hash=HASH, sample_rate=48000,
        model_sample_rate=16000, channels=1, n_samples=60 * 48000, n_frames=3000, n_codebooks=3,
        codebook_size=1024, hop_length=320, chunk_frames=500, gains=(0.8912509381337456,),
        quantizer_kind="sfdiveq", sf_inference="midpoint", format_version=1)
    v2 = dataclasses.replace(v1, model_name=None, model_hash=HASH[:16], gains=(0.89125096797943115,),
                             format_version=2)
    payload = 60 * 1500 // 8
    for header in (v1, v2):
        assert header.nominal_bitrate == 1500.0
        data = encode_stream(header, random_codes(header))
        overhead = len(data) - payload
        assert overhead / len(data) < 0.02, f"{overhead} bytes of overhead in {len(data)}"
        if header.format_version == 1:
            assert overhead == 14 + struct.unpack_from("<I", data, 6)[0] + 12 * header.n_chunks
        else:  # 6 fixed + 4 + varints 3+2+2+2+4 + hash 8 + gain 4 + CRC 4, and a CRC per chunk
            assert overhead == 39 + 4 * header.n_chunks == len(bs.encode_header(header)) + 24


def test_describe() -> None:
    info = describe(make_header(quantizer_kind="sfdiveq", sf_inference="midpoint"))
    assert info["duration"].startswith("0.500 s")
    assert info["bitrate"].startswith("3.000 kbps")
    assert info["model"].startswith("tiny") and HASH[:16] in info["model"]
    assert info["channels"] == "2"
    assert info["sample rate"] == "44100 Hz" and info["model sample rate"].startswith("16000 Hz")
    assert info["stages"] == "3 x 1024 codes (10 bits)"
    assert info["chunks"].startswith("3 ")
    assert info["quantizer"] == "sfdiveq (midpoint)"
    assert all(isinstance(v, str) for v in info.values())


def test_spec_matches_code() -> None:
    spec = (Path(__file__).resolve().parents[1] / "docs" / "bitstream.md").read_text()
    assert HEADER_DICTIONARY.decode() in spec.replace("\n", "")
    for field in dataclasses.fields(StreamHeader):
        assert f"`{field.name}`" in spec
    for name in ("MAX_HEADER_BYTES", "MAX_CHANNELS", "MAX_CODEBOOKS", "MAX_CHUNK_CODES", "MAX_SAMPLES"):
        assert f"{getattr(bs, name)}" in spec.replace(",", "").replace(" ", ""), name


# ------------------------------------------------------------------------------------- errors

def test_errors_are_diveq_errors_with_exit_code() -> None:
    assert issubclass(BitstreamError, DiveqError) and BitstreamError.exit_code == 4


@pytest.mark.parametrize("data", [b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x00" * 64])
def test_not_a_dvq_file(data: bytes) -> None:
    with pytest.raises(BitstreamError, match="not a .dvq file"):
        decode_stream(data)


def test_newer_and_unknown_versions() -> None:
    text = header_json(make_header(n_samples=0, n_frames=0))
    with pytest.raises(BitstreamError, match="made by a newer diveq-codec"):
        decode_stream(craft(text, version=FORMAT_VERSION + 1))
    with pytest.raises(BitstreamError, match="unsupported .dvq format version 0"):
        decode_stream(craft(text, version=0))
    assert decode_stream(craft(text))[0].n_frames == 0


def test_every_truncation_is_reported() -> None:
    header = make_header()
    data = encode_stream(header, random_codes(header))
    for end in range(1, len(data)):
        with pytest.raises(BitstreamError, match="truncated"):
            decode_stream(data[:end])
    for end in (5, 20, len(data) - 200, len(data) - 1):
        with pytest.raises(BitstreamError, match="truncated"):
            read_streaming(data[:end])


def test_trailing_data_is_an_error() -> None:
    header = make_header()
    data = encode_stream(header, random_codes(header)) + b"junk"
    with pytest.raises(BitstreamError, match="trailing"):
        decode_stream(data)
    with pytest.raises(BitstreamError, match="trailing"):
        read_streaming(data)


def test_crc_mismatch_names_the_chunk() -> None:
    header = make_header()
    data = bytearray(encode_stream(header, random_codes(header)))
    data[-3] ^= 0x10  # inside the last chunk (index 2)
    with pytest.raises(BitstreamError, match="CRC mismatch in chunk 2"):
        decode_stream(bytes(data))
    header_data = bytearray(encode_stream(header, random_codes(header)))
    header_data[16] ^= 0x01
    with pytest.raises(BitstreamError, match="CRC mismatch in the header"):
        decode_stream(bytes(header_data))


def test_chunk_head_mismatches_on_read() -> None:
    header = make_header()
    data = encode_stream(header, random_codes(header))
    start = len(data) - len(body_of(data))
    wrong_frames = bytearray(data)
    struct.pack_into("<I", wrong_frames, start, 9)
    with pytest.raises(BitstreamError, match="chunk 0 declares 9 frames, expected 10"):
        decode_stream(bytes(wrong_frames))
    wrong_length = bytearray(data)
    struct.pack_into("<I", wrong_length, start + 4, 1 << 31)
    with pytest.raises(BitstreamError, match="chunk 0 declares 2147483648 bytes, expected 75"):
        read_streaming(bytes(wrong_length))


def test_write_rejects_codes_out_of_range_and_bad_chunks() -> None:
    header = make_header()
    codes = random_codes(header)
    codes[1, 2, 17] = 1024
    with pytest.raises(BitstreamError, match="chunk 1: code 1024 at channel 1, stage 2, frame 7"):
        encode_stream(header, codes)
    good = random_codes(header)
    with pytest.raises(BitstreamError, match="chunk 0 has 9 frames, expected 10"):
        write_stream(io.BytesIO(), header, [good[:, :, :9]])
    with pytest.raises(BitstreamError, match="got 2 chunks"):
        write_stream(io.BytesIO(), header, [good[:, :, :10], good[:, :, 10:20]])
    with pytest.raises(BitstreamError, match="more chunks"):
        write_stream(io.BytesIO(), header, [good[:, :, :10], good[:, :, 10:20], good[:, :, 20:], good])
    with pytest.raises(BitstreamError, match="shape"):
        write_stream(io.BytesIO(), header, [good[:1, :, :10]])
    with pytest.raises(BitstreamError, match="integers"):
        write_stream(io.BytesIO(), header, [good[:, :, :10].astype(np.float32)])
    with pytest.raises(BitstreamError, match="expected"):
        encode_stream(header, good[:, :, :24])


ABSURD = [
    ("channels", 0, "channels must be in 1..64"),
    ("channels", 10**12, "channels must be in"),
    ("codebook_size", 1000, "power of two"),
    ("codebook_size", 1 << 17, "power of two"),
    ("codebook_size", 1, "power of two"),
    ("n_codebooks", 0, "n_codebooks"),
    ("n_codebooks", 10**9, "n_codebooks"),
    ("chunk_frames", 0, "chunk_frames"),
    ("chunk_frames", 10**6, "chunk_frames must be in 1..65536"),
    ("n_codebooks", 64, "more than 4194304"),  # with chunk_frames 50000: 2 * 64 * 50000 codes
    ("n_samples", 10**30, "n_samples"),
    ("n_samples", -1, "n_samples"),
    ("n_frames", 10**20, "n_frames"),
    ("n_frames", 26000, "does not match n_samples"),
    ("n_frames", 0, "both are 0"),
    ("sample_rate", 0, "sample_rate"),
    ("model_sample_rate", 10**9, "model_sample_rate"),
    ("hop_length", 0, "hop_length"),
    ("gains", (1.0,), "one gain per channel"),
    ("gains", (1.0, -1.0), "gains must be finite"),
    ("gains", (1.0, 1e300), "gains must be finite"),
    ("gains", "ab", "list of numbers"),
    ("gains", (1.0, "x"), "must hold numbers"),
    ("model_hash", "abc", "sha256"),
    ("model_hash", HASH.upper(), "sha256"),
    ("model_name", "", "model_name"),
    ("model_name", "x" * 257, "model_name"),
    ("model_name", "evil\x1b[2J", "control characters"),
    ("model_name", 7, "model_name"),
    ("quantizer_kind", "vq", "quantizer_kind must be one of"),
    ("sf_inference", "midpoint", "must be null"),
    ("channels", True, "boolean"),
    ("channels", 2.0, "must be an integer"),
    ("n_frames", "25", "must be an integer"),
]


@pytest.mark.parametrize("key, value, message", ABSURD)
def test_absurd_header_values(key: str, value: Any, message: str) -> None:
    base = dict(chunk_frames=50000) if message.startswith("more than") else {}
    with pytest.raises(BitstreamError, match=message):
        make_header(**base, **{key: value})
    json_value = list(value) if isinstance(value, tuple) else value
    with pytest.raises(BitstreamError, match=message):
        decode_stream(craft(header_json(make_header(), **base, **{key: json_value})))


def test_sfdiveq_needs_its_inference_mode() -> None:
    with pytest.raises(BitstreamError, match="sf_inference must be one of midpoint"):
        make_header(quantizer_kind="sfdiveq", sf_inference=None)


@pytest.mark.parametrize("text, message", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{'model_name': 1}", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b"[" * 50000 + b"]" * 50000, "more than 65536 bytes"),
    (b"[" * 30000 + b"]" * 30000, "not valid JSON"),
    (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": 1, "a": 2}', "not valid JSON"),
    (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    (b"\x00" * 1_000_000, "more than 65536 bytes"),
])
def test_header_not_json(text: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        decode_stream(craft(text))


def test_header_keys_missing_or_unknown() -> None:
    data = make_header().to_json()
    del data["hop_length"], data["gains"]
    with pytest.raises(BitstreamError, match="missing keys hop_length, gains"):
        decode_stream(craft(json.dumps(data).encode()))
    with pytest.raises(BitstreamError, match="unknown keys bitrate"):
        decode_stream(craft(header_json(make_header(), bitrate=1500)))
    with pytest.raises(BitstreamError, match="gains must be a list of numbers"):
        decode_stream(craft(header_json(make_header(), gains={"0": 1.0})))


def test_header_blob_errors() -> None:
    good = encode_stream(make_header(n_samples=0, n_frames=0), np.zeros((2, 3, 0), np.int64))
    garbage = b"\xff" * 40
    with pytest.raises(BitstreamError, match="cannot decompress"):
        decode_stream(struct.pack("<4sHII", MAGIC, 1, len(garbage), zlib.crc32(garbage)) + garbage)
    blob = good[14:] + b"xx"
    with pytest.raises(BitstreamError, match="extra bytes"):
        decode_stream(struct.pack("<4sHII", MAGIC, 1, len(blob), zlib.crc32(blob)) + blob)
    blob = good[14:-2]
    with pytest.raises(BitstreamError, match="incomplete"):
        decode_stream(struct.pack("<4sHII", MAGIC, 1, len(blob), zlib.crc32(blob)) + blob)
    for length in (0, bs.MAX_HEADER_BYTES + 1, 0xFFFFFFFF):
        with pytest.raises(BitstreamError, match="length"):
            decode_stream(struct.pack("<4sHII", MAGIC, 1, length, 0) + b"\x00" * 100)


def test_crafted_huge_stream_fails_fast_without_allocating() -> None:
    # the largest frame count the bounds allow, one frame per chunk, and no chunks at all
    header = make_header(channels=1, gains=(1.0,), n_samples=bs.MAX_FRAMES, hop_length=1,
                         sample_rate=16000, n_frames=bs.MAX_FRAMES, chunk_frames=1)
    data = craft(header_json(header))
    with pytest.raises(BitstreamError, match="truncated"):
        decode_stream(data)
    with pytest.raises(BitstreamError, match="truncated"):
        read_streaming(data)


# ------------------------------------------------------------------------------------------ fuzz

def _valid_stream(seed: int) -> bytes:
    header = make_header(codebook_size=[2, 8, 1024, 4096][seed % 4], chunk_frames=[4, 10, 30][seed % 3])
    return encode_stream(header, random_codes(header, seed))


STREAMS = [_valid_stream(seed) for seed in range(4)]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    out = bytearray(data)
    for kind, where, arg in mutations:
        at = where % (len(out) + 1)
        if kind == "flip" and at < len(out):
            out[at] ^= arg
        elif kind == "insert":
            out[at:at] = arg
        elif kind == "delete":
            del out[at:at + arg]
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


def _only_bitstream_errors(data: bytes) -> None:
    for reader in (decode_stream, read_streaming):
        with contextlib.suppress(BitstreamError):
            reader(data)


@given(st.integers(0, len(STREAMS) - 1), st.lists(mutation, min_size=1, max_size=4))
@FUZZ
def test_mutated_streams_raise_only_bitstream_errors(index: int, mutations: list[Any]) -> None:
    _only_bitstream_errors(_mutate(STREAMS[index], mutations))


@given(st.integers(0, len(STREAMS) - 1), st.integers(14, 400), st.integers(1, 255))
@FUZZ
def test_corrupted_headers_raise_only_bitstream_errors(index: int, where: int, xor: int) -> None:
    """Flip a byte of the compressed header and repair its CRC, so the inflater and parser see it."""
    data = bytearray(STREAMS[index])
    length = struct.unpack_from("<I", data, 6)[0]
    data[14 + where % length] ^= xor
    struct.pack_into("<I", data, 10, zlib.crc32(bytes(data[14:14 + length])))
    _only_bitstream_errors(bytes(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(StreamHeader)]),
                       json_values, max_size=4),
       st.integers(0, len(STREAMS) - 1))
@FUZZ
def test_crafted_header_values_raise_only_bitstream_errors(changes: dict[str, Any], index: int) -> None:
    header, _ = decode_stream(STREAMS[index])
    text = json.dumps({**header.to_json(), **changes}).encode()  # NaN/Infinity included
    _only_bitstream_errors(craft(text, body_of(STREAMS[index])))


# ------------------------------------------------------------------------------- format version 2

def make_v2(**overrides: Any) -> StreamHeader:
    """:func:`make_header`'s stream as format version 2 (no name, 16-digit hash, float32 gains)."""
    fields: dict[str, Any] = dict(model_name=None, model_hash=HASH[:16], format_version=2)
    fields.update(overrides)
    return make_header(**fields)


def leb128(value: int) -> bytes:
    """Unsigned LEB128, written independently of the writer (spec section 2.2)."""
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def craft_v2(*, quantizer: int = 0, bits: int = 10, n_codebooks: int = 3, channels: int = 2,
             varints: tuple[bytes, ...] | None = None, model_hash: bytes = bytes.fromhex(HASH[:16]),
             gains: tuple[float, ...] = (0.5, 1.25), body: bytes = b"", crc: int | None = None,
             version: int = 2) -> bytes:
    """A version-2 header (and ``body``) built from the spec's table, independently of the writer."""
    if varints is None:
        varints = tuple(leb128(v) for v in (44100, 16000, 320, 10, 22050))
    data = (b"DVQC" + struct.pack("<HBBBB", version, quantizer, bits, n_codebooks, channels)
            + b"".join(varints) + model_hash + struct.pack(f"<{len(gains)}f", *gains))
    return data + struct.pack("<I", zlib.crc32(data) if crc is None else crc) + body


def chunk_v2(header_crc: int, index: int, payload: bytes) -> bytes:
    return payload + struct.pack("<I", zlib.crc32(struct.pack("<II", header_crc, index) + payload))


V2_CASES = [
    {},
    dict(chunk_frames=5),
    dict(chunk_frames=100),
    dict(channels=1, gains=(1.0,), codebook_size=2, n_codebooks=1),
    dict(codebook_size=65536, quantizer_kind="sfdiveq", sf_inference="midpoint"),
    dict(codebook_size=2048, quantizer_kind="ste"),
    dict(gains=(float(np.float32(3e-39)), float(np.finfo(np.float32).max))),  # any float32 amplitude
    dict(sample_rate=96000, n_samples=48000, n_frames=25),
]


@pytest.mark.parametrize("overrides", V2_CASES)
def test_v2_round_trip(overrides: dict[str, Any]) -> None:
    header = make_v2(**overrides)
    codes = random_codes(header)
    data = encode_stream(header, codes)
    assert data[:6] == b"DVQC\x02\x00"
    decoded_header, decoded = decode_stream(data)
    assert decoded_header == header and decoded_header.format_version == 2
    assert np.array_equal(decoded, codes)
    streamed_header, chunks = read_streaming(data)
    assert streamed_header == header and np.array_equal(np.concatenate(chunks, axis=2), codes)
    assert len(data) == len(bs.encode_header(header)) + header.payload_size()


def test_v2_matches_the_spec_byte_for_byte() -> None:
    header = make_v2()
    codes = random_codes(header)
    head = craft_v2()
    header_crc = struct.unpack("<I", head[-4:])[0]
    body = b"".join(chunk_v2(header_crc, i, pack_codes(codes[:, :, i * 10:(i + 1) * 10], 10))
                    for i in range(3))
    assert len(head) == 4 + 2 + 4 + (3 + 2 + 2 + 1 + 3) + 8 + 2 * 4 + 4 == 41
    assert encode_stream(header, codes) == head + body
    assert decode_stream(head + body)[0] == header


def test_v2_empty_stream_and_derived_frames() -> None:
    header = make_v2(n_samples=0, n_frames=0)
    data = encode_stream(header, np.zeros((2, 3, 0), dtype=np.int64))
    assert data == bs.encode_header(header)
    assert decode_stream(data)[0] == header
    with pytest.raises(BitstreamError, match="trailing"):
        decode_stream(data + b"\x00")
    # version 2 stores no frame count: it must be the exact one (version 1 tolerates +-2)
    with pytest.raises(BitstreamError, match="must be exactly 25"):
        make_v2(n_frames=26)
    assert make_header(n_frames=26).n_frames == 26


@pytest.mark.parametrize("key, value, message", [
    ("model_name", "tiny", "not stored in format version 2"),
    ("model_hash", HASH, "first 16"),
    ("gains", (0.1, 1.0), "float32"),
    ("gains", (1.0, 0.0), "positive finite float32"),
    ("gains", (1.0, float("inf")), "positive finite float32"),
    ("format_version", 3, "must be one of"),
])
def test_v2_header_rules(key: str, value: Any, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        make_v2(**{key: value})


def test_v2_every_truncation_is_reported() -> None:
    header = make_v2()
    data = encode_stream(header, random_codes(header))
    for end in range(1, len(data)):
        with pytest.raises(BitstreamError, match="truncated"):
            decode_stream(data[:end])
        with pytest.raises(BitstreamError, match="truncated"):
            read_streaming(data[:end])


def test_v2_crc_mismatches() -> None:
    header = make_v2()
    data = encode_stream(header, random_codes(header))
    for where, message in ((8, "CRC mismatch in the header"), (30, "CRC mismatch in the header"),
                           (len(data) - 7, "CRC mismatch in chunk 2")):
        bad = bytearray(data)
        bad[where] ^= 0x04
        with pytest.raises(BitstreamError, match=message):
            decode_stream(bytes(bad))
        with pytest.raises(BitstreamError, match=message):
            read_streaming(bytes(bad))


def test_v2_chunks_out_of_place_fail_their_crc() -> None:
    header = make_v2(n_samples=17640, n_frames=20)  # two chunks of 10 frames, the same size
    data = encode_stream(header, random_codes(header))
    head = len(bs.encode_header(header))
    size = header.chunk_bytes(10) + 4
    first, second = data[head:head + size], data[head + size:]
    with pytest.raises(BitstreamError, match="CRC mismatch in chunk 0.*not in its place"):
        decode_stream(data[:head] + second + first)  # swapped
    other = encode_stream(dataclasses.replace(header, gains=(0.25, 1.25)), random_codes(header))
    with pytest.raises(BitstreamError, match="CRC mismatch in chunk 1"):
        decode_stream(data[:head + size] + other[-size:])  # spliced from another stream


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantizer=4), "quantizer_kind code 4"),
    (dict(bits=0), "codebook_size"),
    (dict(bits=17), "codebook_size"),
    (dict(n_codebooks=0), "n_codebooks"),
    (dict(channels=0, gains=()), "channels must be in 1..64"),
    (dict(varints=(leb128(44100), leb128(16000), b"\xc0\x82\x00", leb128(10), leb128(22050))),
     "hop_length is not minimally encoded"),
    (dict(varints=(leb128(44100), leb128(16000), leb128(320), leb128(10), b"\xff" * 7)),
     "longer than 6 bytes"),
    (dict(varints=(leb128(44100), leb128(16000), leb128(320), leb128(10), leb128(2 ** 37))),
     "n_samples must be in"),
    (dict(varints=(leb128(0), leb128(16000), leb128(320), leb128(10), leb128(22050))), "sample_rate"),
    (dict(gains=(0.5, -1.0)), "gains"),
    (dict(gains=(0.5, float("nan"))), "gains"),
    (dict(crc=0), "CRC mismatch in the header"),
])
def test_v2_absurd_headers(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        decode_stream(craft_v2(**kwargs))


def test_v2_version_3_is_newer() -> None:
    with pytest.raises(BitstreamError, match="newer diveq-codec"):
        decode_stream(craft_v2(version=3))


V2_STREAMS = [encode_stream(h, random_codes(h, seed)) for seed, h in enumerate(
    make_v2(codebook_size=size, chunk_frames=frames) for size, frames in ((2, 4), (8, 10), (1024, 30), (4096, 10)))]


@given(st.integers(0, len(V2_STREAMS) - 1), st.lists(mutation, min_size=1, max_size=4))
@FUZZ
def test_v2_mutated_streams_raise_only_bitstream_errors(index: int, mutations: list[Any]) -> None:
    _only_bitstream_errors(_mutate(V2_STREAMS[index], mutations))


@given(st.integers(0, len(V2_STREAMS) - 1), st.integers(6, 40), st.integers(1, 255))
@FUZZ
def test_v2_corrupted_headers_raise_only_bitstream_errors(index: int, where: int, xor: int) -> None:
    """Flip a byte of the header and repair its CRC, so the parser and the rules see the bad value."""
    data = bytearray(V2_STREAMS[index])
    length = len(bs.encode_header(decode_stream(V2_STREAMS[index])[0]))
    data[where % (length - 4)] ^= xor
    struct.pack_into("<I", data, length - 4, zlib.crc32(bytes(data[:length - 4])))
    _only_bitstream_errors(bytes(data))


def test_sf_diveq_vertex_streams_round_trip():
    header = StreamHeader(model_name=None, model_hash="cd" * 8, sample_rate=16000, model_sample_rate=16000,
                          channels=1, n_samples=3200, n_frames=10, n_codebooks=2, codebook_size=64,
                          hop_length=320, chunk_frames=10, gains=(1.0,), quantizer_kind="sfdiveq",
                          sf_inference="vertex")
    codes = random_codes(header)
    back, decoded = decode_stream(encode_stream(header, codes))
    assert back.quantizer_kind == "sfdiveq" and back.sf_inference == "vertex"
    assert np.array_equal(decoded, codes)
