"""codec.format.packets against docs/packets.md: a session and packets built byte by byte from the spec's
tables, the spec's example, .dvq -> packets -> .dvq byte for byte, byte streams, and every check."""

from __future__ import annotations

import binascii
import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from codec.errors import BitstreamError
from codec.format.bitpack import pack_codes
from codec.format.bitstream import encode_stream
from codec.format.packets import (
    SEQUENCE_MODULUS,
    CodePacket,
    EndPacket,
    SessionHeader,
    decode_packet,
    dvq_to_packets,
    encode_packet,
    iter_packets,
    packets_to_dvq,
    parse_session,
    read_packet,
    read_session,
)
from codec.format.streamheader import StreamHeader, frames_for

ROOT = Path(__file__).resolve().parents[1]


def _session(**kw) -> SessionHeader:
    fields = dict(model_hash="0123456789abcdef", quantizer_kind="diveq", sf_inference=None, codebook_size=1024,
                  n_codebooks=2, channels=1, sample_rate=16000, model_sample_rate=16000, hop_length=320,
                  gains=(1.0,))
    fields.update(kw)
    return SessionHeader(**fields)  # type: ignore[arg-type]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _stream(n_samples: int, channels: int = 1, stages: int = 12, rate: int = 16000, chunk_frames: int = 50,
            version: int = 2, seed: int = 0) -> tuple[StreamHeader, bytes]:
    n_frames = frames_for(n_samples, rate, 16000, 320)
    header = StreamHeader(model_name="m" if version == 1 else None,
                          model_hash=("ab" * 32) if version == 1 else "0123456789abcdef", sample_rate=rate,
                          model_sample_rate=16000, channels=channels, n_samples=n_samples, n_frames=n_frames,
                          n_codebooks=stages, codebook_size=1024, hop_length=320, chunk_frames=chunk_frames,
                          gains=tuple([0.5] * channels), quantizer_kind="diveq", sf_inference=None,
                          format_version=version)
    codes = np.random.default_rng(seed).integers(0, 1024, (channels, stages, n_frames))
    return header, encode_stream(header, codes)


# ---------------------------------------------------------------------------------------- the spec

def test_session_and_packets_built_from_the_spec_tables() -> None:
    session = _session(channels=2, gains=(0.5, 2.0), sample_rate=48000, n_codebooks=12)
    body = (b"DVQS" + struct.pack("<H", 1) + bytes([0, 10, 12, 2]) + _varint(48000) + _varint(16000)
            + _varint(320) + bytes.fromhex("0123456789abcdef") + struct.pack("<ff", 0.5, 2.0))
    expected = body + struct.pack("<I", zlib.crc32(body))
    assert session.to_bytes() == expected and parse_session(expected) == session
    init = zlib.crc32(body) & 0xFFFF
    codes = np.random.default_rng(0).integers(0, 1024, (2, 7, 3))
    packet = struct.pack("<H", 65535) + bytes([(0 << 6) | 6, 3]) + pack_codes(codes, 10)
    packet += struct.pack("<H", binascii.crc_hqx(packet, init))
    assert encode_packet(session, CodePacket(65535, codes)) == packet
    parsed = decode_packet(session, packet)
    assert isinstance(parsed, CodePacket) and parsed.seq == 65535 and np.array_equal(parsed.codes, codes)
    end = struct.pack("<H", 2) + bytes([(1 << 6) | 6, 1]) + pack_codes(codes[:, :, :1], 10) + _varint(70000)
    end += struct.pack("<H", binascii.crc_hqx(end, init))
    assert encode_packet(session, EndPacket(2, codes[:, :, :1], 70000)) == end
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3  # CRC-16/XMODEM's check value


def test_the_spec_example() -> None:
    text = (ROOT / "docs" / "packets.md").read_text()
    rows = dict(re.findall(r"^(session|packet|end) +((?:[0-9a-f]{2} ?)+)$", text, re.M))
    session = _session()
    assert session.to_bytes() == bytes.fromhex(rows["session"])
    assert encode_packet(session, CodePacket(0, np.array([[[1, 2], [3, 1023]]]))) == bytes.fromhex(rows["packet"])
    assert encode_packet(session, EndPacket(2, np.zeros((1, 2, 0), np.int64), 640)) == bytes.fromhex(rows["end"])
    assert f"`{session.crc:#010x}`" in text


# ---------------------------------------------------------------------------------- .dvq round trip

@pytest.mark.parametrize("n_samples, channels, rate, frames_per_packet, chunk_frames", [
    (16000 * 3 + 7, 1, 16000, 1, 50), (44100 + 5, 2, 44100, 3, 37), (0, 1, 16000, 2, 500),
    (1, 1, 8000, 5, 1), (320 * 7, 1, 16000, 7, 4)])
def test_dvq_to_packets_and_back_is_byte_identical(n_samples: int, channels: int, rate: int,
                                                   frames_per_packet: int, chunk_frames: int) -> None:
    header, data = _stream(n_samples, channels, rate=rate, chunk_frames=chunk_frames)
    session_bytes, packets = dvq_to_packets(data, frames_per_packet)
    assert packets_to_dvq(session_bytes, packets, chunk_frames) == data
    session = parse_session(session_bytes)
    parsed = [decode_packet(session, p) for p in packets]
    assert isinstance(parsed[-1], EndPacket) and parsed[-1].n_samples == n_samples
    assert all(isinstance(p, CodePacket) and p.frames == frames_per_packet for p in parsed[:-1])
    assert sum(p.frames for p in parsed) == header.n_frames
    # a byte stream: the session header, then the packets back to back
    f = io.BytesIO(session_bytes + b"".join(packets))
    assert read_session(f) == session
    assert [type(p) for p in iter_packets(f, session)] == [type(p) for p in parsed]


def test_sequence_numbers_wrap() -> None:
    n_frames = SEQUENCE_MODULUS + 40
    _, data = _stream(n_frames * 320, stages=1, chunk_frames=4096)
    session_bytes, packets = dvq_to_packets(data, 255)
    session = parse_session(session_bytes)
    seqs = [decode_packet(session, p).seq for p in packets]
    assert seqs[257] == (257 * 255) % SEQUENCE_MODULUS and max(seqs) < SEQUENCE_MODULUS
    assert packets_to_dvq(session_bytes, packets, 4096) == data


def test_a_version_1_stream_and_fewer_stages() -> None:
    header, data = _stream(16000, version=1)
    session_bytes, packets = dvq_to_packets(data)
    session = parse_session(session_bytes)
    assert session.model_hash == header.model_hash[:16]
    rebuilt = packets_to_dvq(session_bytes, packets, 50)
    assert rebuilt[:4] == b"DVQC" and rebuilt != data  # version 2 now, the same codes
    # packets with fewer stages: the rebuilt stream keeps the stages every packet has
    parsed = [decode_packet(session, p) for p in packets]
    fewer = [CodePacket(p.seq, p.codes[:, :5]) if i == 3 else p for i, p in enumerate(parsed)]
    from codec.format.bitstream import decode_stream

    h, codes = decode_stream(packets_to_dvq(session_bytes, fewer, 50))
    assert h.n_codebooks == 5 and np.array_equal(codes, decode_stream(data)[1][:, :5])


# ------------------------------------------------------------------------------------------ checks

def test_bad_packets_are_refused() -> None:
    session = _session()
    good = encode_packet(session, CodePacket(7, np.array([[[1, 2], [3, 4]]])))
    assert decode_packet(session, good).seq == 7
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                decode_packet(session, bytes(bad))
    other = _session(gains=(0.5,))  # another session: its CRC seeds the check differently
    with pytest.raises(BitstreamError, match="another session"):
        decode_packet(other, good)
    with pytest.raises(BitstreamError, match="truncated"):
        decode_packet(session, good[:-1])
    with pytest.raises(BitstreamError, match="after its end"):
        decode_packet(session, good + b"\0")
    with pytest.raises(BitstreamError, match="stages"):
        encode_packet(session, CodePacket(0, np.zeros((1, 3, 1), np.int64)))
    with pytest.raises(BitstreamError, match="frames"):
        encode_packet(session, CodePacket(0, np.zeros((1, 2, 0), np.int64)))
    with pytest.raises(BitstreamError, match="0..1023"):
        encode_packet(session, CodePacket(0, np.full((1, 2, 1), 1024)))
    with pytest.raises(BitstreamError, match="sequence number"):
        encode_packet(session, CodePacket(SEQUENCE_MODULUS, np.zeros((1, 2, 1), np.int64)))
    # a truncated byte stream
    f = io.BytesIO(good[:5])
    with pytest.raises(BitstreamError, match="truncated"):
        read_packet(f, session)
    assert read_packet(io.BytesIO(b""), session) is None


def test_bad_session_headers_are_refused() -> None:
    good = _session().to_bytes()
    with pytest.raises(BitstreamError, match="empty"):
        parse_session(b"")
    with pytest.raises(BitstreamError, match="truncated"):
        parse_session(good[:2])
    with pytest.raises(BitstreamError, match="truncated"):
        parse_session(good[:-1])
    with pytest.raises(BitstreamError, match="without --stream"):
        parse_session(b"DVQC" + good[4:])
    with pytest.raises(BitstreamError, match="newer"):
        parse_session(good[:4] + struct.pack("<H", 2) + good[6:])
    bad = bytearray(good)
    bad[12] ^= 1
    with pytest.raises(BitstreamError, match="CRC mismatch"):
        parse_session(bytes(bad))
    with pytest.raises(BitstreamError, match="bytes follow"):
        parse_session(good + b"\0")
    for field, value in (("codebook_size", 1000), ("n_codebooks", 0), ("channels", 65),
                         ("sample_rate", 10), ("gains", (-1.0,)), ("model_hash", "xyz")):
        with pytest.raises(BitstreamError, match=field):
            _session(**{field: value})


def test_packets_to_dvq_needs_a_whole_session() -> None:
    _, data = _stream(16000)
    session_bytes, packets = dvq_to_packets(data)
    with pytest.raises(BitstreamError, match="missing"):
        packets_to_dvq(session_bytes, packets[:3] + packets[4:], 50)
    with pytest.raises(BitstreamError, match="no end packet"):
        packets_to_dvq(session_bytes, packets[:-1], 50)
    with pytest.raises(BitstreamError, match="follows the end"):
        packets_to_dvq(session_bytes, packets + packets[:1], 50)
    session = parse_session(session_bytes)
    end = decode_packet(session, packets[-1])
    assert isinstance(end, EndPacket)
    wrong = encode_packet(session, EndPacket(end.seq, end.codes, end.n_samples + 320))
    with pytest.raises(BitstreamError, match="frames"):
        packets_to_dvq(session_bytes, packets[:-1] + [wrong], 50)


def test_packets_need_no_torch() -> None:
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import sys, codec.format.packets, codec.runtime.rtresample; "
                            "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip() == "False", probe.stdout + probe.stderr
