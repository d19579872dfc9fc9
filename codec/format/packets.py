"""Packets for real-time transport (``docs/packets.md``): a session header sent once, then one packet per
frame or few frames.

A **session header** says what every packet of a session shares: the model (the first 8 bytes of its
weights' sha256), the quantizer, the rates, the channels and their gains; the transport sends it once
(as RTP sends an SDP description), so packets carry no model hash. A **code packet** holds a sequence
number (the index of its first frame, modulo 2^16), its stage count (each packet may carry fewer
stages: the bitrate can change per packet), its frame count and the bit-packed codes ``[C, K, t]``
of :mod:`codec.format.bitpack`; an **end packet** closes the session with its exact length in samples. Every
packet ends with a CRC-16 seeded with the session header's CRC, so a packet of another session fails its
check. Packets delimit themselves (their size follows from their first bytes), so a byte stream (a
pipe) carries them back to back after the session header.

A ``.dvq`` stream converts to a session header and packets and back without the model
(:func:`dvq_to_packets`, :func:`packets_to_dvq`): the rebuilt stream is byte for byte the original (a
format-version-2 stream of the same ``chunk_frames``).
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import io
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import numpy as np

from ..config import bits_per_code
from ..errors import BitstreamError
from .bitpack import pack_valid_codes, unpack_codes
from .bitstream import _QUANTIZER_CODES, _QUANTIZERS, _varint, decode_stream, encode_stream
from .streamheader import (
    HASH_PREFIX_HEX,
    MAX_CHANNELS,
    MAX_CHUNK_FRAMES,
    MAX_CODEBOOKS,
    MAX_HOP_LENGTH,
    MAX_SAMPLES,
    MAX_STREAM_SAMPLE_RATE,
    MIN_STREAM_SAMPLE_RATE,
    StreamHeader,
    frames_for,
)

SESSION_MAGIC = b"DVQS"
SESSION_VERSION = 1
#: Sequence numbers count frames modulo this.
SEQUENCE_MODULUS = 1 << 16
#: The most frames one code packet holds.
MAX_PACKET_FRAMES = 255
#: Packet types (the top two bits of a packet's third byte).
CODES, END = 0, 1

_FIXED = struct.Struct("<BBBB")  # quantizer, bits_per_code, n_codebooks, channels
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HASH_BYTES = HASH_PREFIX_HEX // 2
_MAX_VARINT_BYTES = 6


@dataclasses.dataclass(frozen=True)
class SessionHeader:
    """What every packet of a session shares. Constructing one checks every field (BitstreamError
    naming it).

    ``n_codebooks`` is the most stages a packet of the session may carry; ``sample_rate`` the rate of
    the audio the session codes (decoders restore it), ``model_sample_rate`` and ``hop_length`` the
    model's; ``gains`` one linear gain per channel that the encoder applied (the decoder divides by
    it); ``model_hash`` the first 16 hex digits of the model's weights hash.
    """

    model_hash: str
    quantizer_kind: str
    sf_inference: str | None
    codebook_size: int
    n_codebooks: int
    channels: int
    sample_rate: int
    model_sample_rate: int
    hop_length: int
    gains: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "gains", tuple(float(g) for g in self.gains))
        _validate(self)

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)

    @property
    def frame_rate(self) -> float:
        return self.model_sample_rate / self.hop_length

    def payload_bytes(self, n_codebooks: int, frames: int) -> int:
        """Packed bytes of ``frames`` frames of ``n_codebooks`` stages (all channels)."""
        return (self.channels * n_codebooks * frames * self.bits_per_code + 7) // 8

    def frames_for(self, n_samples: int) -> int:
        """Code frames of a session of ``n_samples`` samples per channel at ``sample_rate``."""
        return frames_for(n_samples, self.sample_rate, self.model_sample_rate, self.hop_length)

    def to_bytes(self) -> bytes:
        """The header as sent, its CRC32 included (one byte string per header)."""
        quantizer = _QUANTIZER_CODES[(self.quantizer_kind, self.sf_inference)]
        parts = [SESSION_MAGIC, _U16.pack(SESSION_VERSION),
                 _FIXED.pack(quantizer, self.bits_per_code, self.n_codebooks, self.channels),
                 _varint(self.sample_rate), _varint(self.model_sample_rate), _varint(self.hop_length),
                 bytes.fromhex(self.model_hash), np.asarray(self.gains, dtype="<f4").tobytes()]
        data = b"".join(parts)
        return data + _U32.pack(zlib.crc32(data))

    @functools.cached_property
    def crc(self) -> int:
        """The header's CRC32 (its last 4 bytes); packets seed their CRC-16 with its low 16 bits."""
        return zlib.crc32(self.to_bytes()[:-4])

    @classmethod
    def from_stream_header(cls, header: StreamHeader) -> SessionHeader:
        """The session of a ``.dvq`` stream (a version-1 stream's full hash is cut to its prefix)."""
        return cls(model_hash=header.model_hash[:HASH_PREFIX_HEX], quantizer_kind=header.quantizer_kind,
                   sf_inference=header.sf_inference, codebook_size=header.codebook_size,
                   n_codebooks=header.n_codebooks, channels=header.channels,
                   sample_rate=header.sample_rate, model_sample_rate=header.model_sample_rate,
                   hop_length=header.hop_length, gains=header.gains)

    def to_stream_header(self, n_samples: int, n_codebooks: int, chunk_frames: int) -> StreamHeader:
        """A ``.dvq`` (format version 2) header for ``n_samples`` samples of this session coded with
        ``n_codebooks`` stages in chunks of ``chunk_frames`` frames."""
        return StreamHeader(model_name=None, model_hash=self.model_hash, sample_rate=self.sample_rate,
                            model_sample_rate=self.model_sample_rate, channels=self.channels,
                            n_samples=n_samples, n_frames=self.frames_for(n_samples),
                            n_codebooks=n_codebooks, codebook_size=self.codebook_size,
                            hop_length=self.hop_length, chunk_frames=chunk_frames, gains=self.gains,
                            quantizer_kind=self.quantizer_kind, sf_inference=self.sf_inference)


def _bad(key: str, message: str) -> BitstreamError:
    return BitstreamError(f"invalid session header: {key} {message}")


def _validate(h: SessionHeader) -> None:
    if not isinstance(h.model_hash, str) or len(h.model_hash) != HASH_PREFIX_HEX or \
            any(c not in "0123456789abcdef" for c in h.model_hash):
        raise _bad("model_hash", f"must be {HASH_PREFIX_HEX} lowercase hex digits")
    if (h.quantizer_kind, h.sf_inference) not in _QUANTIZER_CODES:
        raise _bad("quantizer_kind", f"{h.quantizer_kind!r} with sf_inference {h.sf_inference!r} is unknown")
    size = h.codebook_size
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 1 << 16 or size & (size - 1):
        raise _bad("codebook_size", f"must be a power of two in 2..65536, got {size!r}")
    for key, low, high in (("n_codebooks", 1, MAX_CODEBOOKS), ("channels", 1, MAX_CHANNELS),
                           ("sample_rate", MIN_STREAM_SAMPLE_RATE, MAX_STREAM_SAMPLE_RATE),
                           ("model_sample_rate", MIN_STREAM_SAMPLE_RATE, MAX_STREAM_SAMPLE_RATE),
                           ("hop_length", 1, MAX_HOP_LENGTH)):
        value = getattr(h, key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad(key, f"must be an integer in {low}..{high}, got {value!r}")
    if len(h.gains) != h.channels:
        raise _bad("gains", f"must hold one gain per channel ({h.channels}), got {len(h.gains)}")
    for gain in h.gains:
        if not (0.0 < gain < math.inf and float(np.float32(gain)) == gain):
            raise _bad("gains", f"must be positive finite float32 values, got {gain}")


# ---------------------------------------------------------------------------------- session header

def _read_exact(f: BinaryIO, size: int, what: str) -> bytes:
    data = _read_upto(f, size)
    if len(data) < size:
        raise BitstreamError(f"truncated packet stream: {what} needs {size} bytes, only {len(data)} left")
    return data


def _read_upto(f: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream (loops over short reads)."""
    parts, got = [], 0
    while got < size:
        try:
            part = f.read(size - got)
        except OSError as exc:
            raise BitstreamError(f"cannot read the packet stream: {exc.strerror or exc}") from None
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_varint(f: BinaryIO, key: str, seen: bytearray) -> int:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        byte = _read_exact(f, 1, "the session header")[0]
        seen.append(byte)
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i:
                raise BitstreamError(f"corrupt session header: {key} is not minimally encoded")
            return value
    raise BitstreamError(f"corrupt session header: {key} is longer than {_MAX_VARINT_BYTES} bytes")


def read_session(f: BinaryIO) -> SessionHeader:
    """Read and check a session header from a byte stream; leaves ``f`` at the first packet."""
    magic = _read_upto(f, len(SESSION_MAGIC))
    if not magic:
        raise BitstreamError("not a diveq packet stream (it is empty)")
    if len(magic) < len(SESSION_MAGIC) and SESSION_MAGIC.startswith(magic):
        raise BitstreamError("truncated packet stream: it ends inside the session header")
    if magic != SESSION_MAGIC:
        hint = " (a .dvq file: decode it without --stream)" if magic == b"DVQC" else ""
        raise BitstreamError(f"not a diveq packet stream (starts with {magic!r}, expected "
                             f"{SESSION_MAGIC!r}){hint}")
    seen = bytearray(magic)
    raw_version = _read_exact(f, 2, "the session header")
    seen += raw_version
    version = _U16.unpack(raw_version)[0]
    if version > SESSION_VERSION:
        raise BitstreamError(f"made by a newer diveq-codec (session version {version}; this one reads "
                             f"up to {SESSION_VERSION}): upgrade diveq-codec to read it")
    if version != SESSION_VERSION:
        raise BitstreamError(f"unsupported session version {version}")
    fixed = _read_exact(f, _FIXED.size, "the session header")
    seen += fixed
    quantizer, bits, n_codebooks, channels = _FIXED.unpack(fixed)
    rates = [_read_varint(f, key, seen) for key in ("sample_rate", "model_sample_rate", "hop_length")]
    gain_bytes = 4 * channels if 1 <= channels <= MAX_CHANNELS else 0
    rest = _read_exact(f, _HASH_BYTES + gain_bytes + 4, "the session header")
    seen += rest[:-4]
    stored = _U32.unpack(rest[-4:])[0]
    if zlib.crc32(seen) != stored:
        raise BitstreamError(f"CRC mismatch in the session header (stored {stored:#010x}, computed "
                             f"{zlib.crc32(seen):#010x}): the stream is corrupted")
    if quantizer not in _QUANTIZERS:
        raise _bad("quantizer_kind", f"code {quantizer} is unknown (0 diveq, 1 sfdiveq, 2 ste, 3 sfdiveq vertex)")
    if not 1 <= bits <= 16:
        raise _bad("codebook_size", f"must be a power of two in 2..65536, got 2^{bits}")
    kind, sf_inference = _QUANTIZERS[quantizer]
    gains = tuple(np.frombuffer(rest[_HASH_BYTES:-4], dtype="<f4").astype(np.float64).tolist())
    return SessionHeader(model_hash=rest[:_HASH_BYTES].hex(), quantizer_kind=kind, sf_inference=sf_inference,
                         codebook_size=1 << bits, n_codebooks=n_codebooks, channels=channels,
                         sample_rate=rates[0], model_sample_rate=rates[1], hop_length=rates[2],
                         gains=gains)


def parse_session(data: bytes) -> SessionHeader:
    """A session header from exactly its bytes."""
    f = io.BytesIO(bytes(data))
    session = read_session(f)
    if f.read(1):
        raise BitstreamError("corrupt session header: bytes follow it")
    return session


# ----------------------------------------------------------------------------------------- packets

@dataclasses.dataclass(frozen=True)
class CodePacket:
    """Frames ``[seq, seq + t)`` (modulo 2^16) of a session: ``codes`` int64 ``[C, K, t]``."""

    seq: int
    codes: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.codes.shape[2])

    @property
    def n_codebooks(self) -> int:
        return int(self.codes.shape[1])


@dataclasses.dataclass(frozen=True)
class EndPacket:
    """The end of a session: its last frames ``[seq, seq + t)`` (``codes`` ``[C, K, t]``, t >= 0: a
    decoder learns the length before it decodes them, so it never puts out samples past the end) and
    ``n_samples``, the session's exact length per channel at its sample rate."""

    seq: int
    codes: np.ndarray
    n_samples: int

    @property
    def frames(self) -> int:
        return int(self.codes.shape[2])

    @property
    def n_codebooks(self) -> int:
        return int(self.codes.shape[1])


Packet = CodePacket | EndPacket


def _crc16(data: bytes, session: SessionHeader) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, not reflected) of ``data``, seeded with the low 16 bits of
    the session header's CRC32 instead of 0."""
    return binascii.crc_hqx(data, session.crc & 0xFFFF)


def encode_packet(session: SessionHeader, packet: Packet) -> bytes:
    """One packet as sent. BitstreamError for a packet the session cannot carry (shape, stage count,
    frame count, code range, sequence number, length)."""
    if not 0 <= packet.seq < SEQUENCE_MODULUS:
        raise BitstreamError(f"sequence number {packet.seq} is outside 0..{SEQUENCE_MODULUS - 1}")
    end = isinstance(packet, EndPacket)
    codes = np.asarray(packet.codes)
    if codes.ndim != 3 or codes.shape[0] != session.channels:
        raise BitstreamError(f"packet codes have shape {codes.shape}, expected [{session.channels}, K, t]")
    _, k, t = codes.shape
    if not 1 <= k <= session.n_codebooks:
        raise BitstreamError(f"a packet carries 1..{session.n_codebooks} stages in this session, got {k}")
    if not (0 if end else 1) <= t <= MAX_PACKET_FRAMES:
        raise BitstreamError(f"a {'end' if end else 'code'} packet holds {0 if end else 1}.."
                             f"{MAX_PACKET_FRAMES} frames, got {t}")
    if codes.size and (codes.dtype.kind not in "iu" or codes.min() < 0 or codes.max() >= session.codebook_size):
        raise BitstreamError(f"packet codes must be integers in 0..{session.codebook_size - 1}")
    body = _U16.pack(packet.seq) + bytes([((END if end else CODES) << 6) | (k - 1), t])
    if codes.size:
        body += pack_valid_codes(codes.reshape(-1), session.bits_per_code)
    if isinstance(packet, EndPacket):
        if not 0 <= packet.n_samples <= MAX_SAMPLES:
            raise BitstreamError(f"end packet: n_samples {packet.n_samples} is outside 0..{MAX_SAMPLES}")
        body += _varint(packet.n_samples)
    return body + _U16.pack(_crc16(body, session))


def _parse(session: SessionHeader, head: bytes, read: Callable[[int, str], bytes]) -> Packet:
    """A packet from its first 4 bytes ``head`` and ``read(n, what)`` for the rest."""
    seq = _U16.unpack(head[:2])[0]
    kind, stages, t = head[2] >> 6, (head[2] & 0x3F) + 1, head[3]
    if kind not in (CODES, END):
        raise BitstreamError(f"corrupt packet (sequence number {seq}): unknown packet type {kind}")
    if kind == CODES and t == 0:
        raise BitstreamError(f"corrupt packet (sequence number {seq}): 0 frames")
    if stages > session.n_codebooks:
        raise BitstreamError(f"corrupt packet (sequence number {seq}): {stages} stages, the session "
                             f"carries at most {session.n_codebooks}")
    body = bytearray(head)
    payload = read(session.payload_bytes(stages, t), f"packet {seq}'s codes")
    body += payload
    codes = unpack_codes(payload, session.bits_per_code, session.channels * stages * t)
    codes = codes.reshape(session.channels, stages, t)
    n_samples = 0
    if kind == END:
        for i in range(_MAX_VARINT_BYTES):
            byte = read(1, "the end packet's length")[0]
            body.append(byte)
            n_samples |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                break
        else:
            raise BitstreamError("corrupt end packet: its length is longer than 6 bytes")
    stored = _U16.unpack(read(2, f"packet {seq}'s CRC"))[0]
    computed = _crc16(bytes(body), session)
    if stored != computed:
        raise BitstreamError(f"CRC mismatch in packet {seq} (stored {stored:#06x}, computed "
                             f"{computed:#06x}): the packet is corrupted or from another session")
    if kind == CODES:
        return CodePacket(seq, codes)
    if n_samples > MAX_SAMPLES:
        raise BitstreamError(f"corrupt end packet: n_samples {n_samples} exceeds {MAX_SAMPLES}")
    return EndPacket(seq, codes, n_samples)


def decode_packet(session: SessionHeader, data: bytes) -> Packet:
    """A packet from exactly its bytes (a datagram). BitstreamError if it is truncated, has bytes
    after its end, fails its CRC or carries what the session cannot (it is then lost: conceal it)."""
    data = bytes(data)
    if len(data) < 4:
        raise BitstreamError(f"truncated packet: {len(data)} bytes")
    pos = 4

    def read(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise BitstreamError(f"truncated packet: {what} needs {n} bytes, only {len(data) - pos} left")
        pos += n
        return data[pos - n:pos]

    packet = _parse(session, data[:4], read)
    if pos != len(data):
        raise BitstreamError(f"corrupt packet: {len(data) - pos} bytes after its end")
    return packet


def read_packet(f: BinaryIO, session: SessionHeader) -> Packet | None:
    """The next packet of a byte stream, or None at its end (between packets)."""
    first = _read_upto(f, 1)
    if not first:
        return None
    head = first + _read_exact(f, 3, "a packet's head")
    return _parse(session, head, lambda n, what: _read_exact(f, n, what))


def iter_packets(f: BinaryIO, session: SessionHeader) -> Iterator[Packet]:
    """Every packet of a byte stream after its session header, until the end of the stream."""
    while (packet := read_packet(f, session)) is not None:
        yield packet


# ------------------------------------------------------------------------------ .dvq <-> packets

def dvq_to_packets(data: bytes, frames_per_packet: int = 1) -> tuple[bytes, list[bytes]]:
    """A whole ``.dvq`` stream -> (session header bytes, packets): code packets of
    ``frames_per_packet`` frames with every stage, the last frames (1..frames_per_packet; none for an
    empty stream) in the end packet. Needs no model."""
    if not 1 <= frames_per_packet <= MAX_PACKET_FRAMES:
        raise BitstreamError(f"frames_per_packet must be in 1..{MAX_PACKET_FRAMES}, got {frames_per_packet}")
    header, codes = decode_stream(data)
    session = SessionHeader.from_stream_header(header)
    last = max(0, header.n_frames - 1) // frames_per_packet * frames_per_packet
    packets = [encode_packet(session, CodePacket(start % SEQUENCE_MODULUS,
                                                 codes[:, :, start:start + frames_per_packet]))
               for start in range(0, last, frames_per_packet)]
    packets.append(encode_packet(session, EndPacket(last % SEQUENCE_MODULUS, codes[:, :, last:],
                                                    header.n_samples)))
    return session.to_bytes(), packets


def packets_to_dvq(session_bytes: bytes, packets: Iterable[bytes | Packet], chunk_frames: int) -> bytes:
    """Session header bytes and every packet of a complete session (no gap, ending with its end
    packet) -> a ``.dvq`` stream (format version 2, ``chunk_frames`` frames per chunk) holding the
    stages every packet carries (a stage a packet left out is left out everywhere). Needs no model.
    BitstreamError for a lost, repeated or out-of-order packet, a missing end packet or a length that
    does not match the frames."""
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise BitstreamError(f"chunk_frames must be in 1..{MAX_CHUNK_FRAMES}, got {chunk_frames}")
    session = parse_session(session_bytes)
    parts: list[np.ndarray] = []
    frames = 0
    end: EndPacket | None = None
    for item in packets:
        packet = decode_packet(session, item) if isinstance(item, (bytes, bytearray, memoryview)) else item
        if end is not None:
            raise BitstreamError("a packet follows the end packet")
        if packet.seq != frames % SEQUENCE_MODULUS:
            raise BitstreamError(f"packet with sequence number {packet.seq} where frame "
                                 f"{frames % SEQUENCE_MODULUS} was expected: a packet is missing, "
                                 "repeated or out of order")
        if isinstance(packet, EndPacket):
            end = packet
        if packet.frames:
            parts.append(packet.codes)
            frames += packet.frames
    if end is None:
        raise BitstreamError("the session has no end packet (it was cut short)")
    if session.frames_for(end.n_samples) != frames:
        raise BitstreamError(f"the end packet's length {end.n_samples} samples needs "
                             f"{session.frames_for(end.n_samples)} frames, the packets hold {frames}")
    stages = min((p.shape[1] for p in parts), default=session.n_codebooks)
    codes = (np.concatenate([p[:, :stages] for p in parts], axis=2) if parts
             else np.zeros((session.channels, stages, 0), dtype=np.int64))
    return encode_stream(session.to_stream_header(end.n_samples, stages, chunk_frames), codes)


__all__ = ["SESSION_MAGIC", "SESSION_VERSION", "SEQUENCE_MODULUS", "MAX_PACKET_FRAMES", "SessionHeader",
           "CodePacket", "EndPacket", "Packet", "read_session", "parse_session", "encode_packet",
           "decode_packet", "read_packet", "iter_packets", "dvq_to_packets", "packets_to_dvq"]
