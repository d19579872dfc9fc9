"""Real-time coding: :class:`StreamEncoder` turns audio chunks into packets as they arrive,
:class:`StreamDecoder` turns packets back into audio, concealing lost ones.

```python
from codec.api import load_model
from codec.runtime.realtime import StreamEncoder, StreamDecoder
model = load_model("speech16k-stft-causal")          # a causal model (ModelConfig.causal)
enc = StreamEncoder(model, sample_rate=48000, bitrate_kbps=6)
dec = StreamDecoder(model, enc.session_header)       # the session header travels once, first
for chunk in microphone():                           # any chunk sizes, 1 sample to seconds
    for packet in enc.feed(chunk):                   # bytes; send them
        play(dec.feed(packet))                       # dec.feed(None) for a lost packet
play(dec.feed_all(enc.flush()))                      # the last frame, then the end packet
```

Both ends code frame by frame (:mod:`codec.runtime.stepper`), so the codes do not depend on the chunk sizes
and equal what ``encode_file`` / ``compress`` write for the same audio at the model's rate (with the
same gain); the decoded samples equal ``decode_file`` / ``decompress``'s. Other input rates go through
a low-delay resampler (:mod:`codec.runtime.rtresample`; the file path uses soxr, whose block processing
adds ~37 ms), so their codes differ slightly from a file's. The state lives in the objects; memory
stays constant over a stream of any length; ``reset()`` starts over. Mono.

**Latency** (``latency_samples``, the same for both ends: the chain's): the time from a sample going
into the encoder to the decoder putting it out, at worst, with no computing time: one frame
(``hop_length``), the encoder's look-ahead (``encoder_lookahead * stem_stride``), the decoder's
(``lookahead * head_hop``) and each resampler's reach (``docs/streaming.md``). At 16 kHz with look-aheads
of 1 and 2 (``recipes/speech16k-stft-causal.toml``), 320 + 160 + 2 x 160 = 800 samples = 50 ms.

**Packet loss** (``docs/streaming.md``): a lost packet (``feed(None)``, a gap in sequence numbers, a
packet that fails its check and is fed as None) is concealed frame by frame: the decoder runs on the
last frame's latent again while the output fades (full for the first lost frame, then to silence over
4 more), and fades back in over the first frame that arrives; every gain change is a ramp over a
frame, so there are no clicks. Late packets (sequence numbers behind the stream) are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..checks import as_audio, check_integer, check_real, check_sample_rate, choose_stages
from ..errors import BitstreamError, ModelError, UsageError
from ..format.packets import (
    MAX_PACKET_FRAMES,
    SEQUENCE_MODULUS,
    CodePacket,
    EndPacket,
    Packet,
    SessionHeader,
    decode_packet,
    encode_packet,
    parse_session,
)
from ..format.streamheader import HASH_PREFIX_HEX
from .base import check_causal
from .rtresample import LowDelayResampler

if TYPE_CHECKING:
    from ..models.model import Codec
    from .onnx_runtime import OnnxCodec

    Model = Codec | OnnxCodec

#: Concealment: the output gain at the end of the k-th lost frame in a row is
#: clip(1 - (k - 1) / PLC_FADE_FRAMES, 0, 1): the first lost frame plays at full gain, the next ones
#: fade to silence over PLC_FADE_FRAMES frames (80 ms at 50 frames/s).
PLC_FADE_FRAMES = 4
#: A gap of more frames than this is not concealed frame by frame: that many are, the rest skipped.
MAX_GAP_FRAMES = 250
_HALF = SEQUENCE_MODULUS // 2
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _FrameEncoding(Protocol):
    """What a stream encoder codes with (:class:`codec.runtime.stepper.NumpyFrameEncoder` on torch,
    :class:`codec.runtime.onnx_stepper.OnnxFrameEncoder` on onnxruntime)."""

    n_codebooks: int

    def reset(self) -> None: ...

    def encode(self, audio: np.ndarray) -> np.ndarray: ...

    def finish(self) -> np.ndarray: ...


class _FrameDecoding(Protocol):
    """What a stream decoder decodes with (the decoders beside the encoders above)."""

    def reset(self) -> None: ...

    def latent(self, codes: np.ndarray) -> np.ndarray: ...

    def decode_latent(self, latent: np.ndarray) -> np.ndarray: ...

    def finish(self) -> np.ndarray: ...


def _on_onnx(model: Model) -> bool:
    return getattr(model, "runtime", "torch") == "onnx"


def _frame_encoder(model: Model, n_codebooks: int) -> _FrameEncoding:
    if _on_onnx(model):
        from .onnx_stepper import OnnxFrameEncoder

        return OnnxFrameEncoder(model, n_codebooks)  # type: ignore[arg-type]
    from .stepper import NumpyFrameEncoder

    return NumpyFrameEncoder(model, n_codebooks)  # type: ignore[arg-type]


def _frame_decoder(model: Model) -> _FrameDecoding:
    if _on_onnx(model):
        from .onnx_stepper import OnnxFrameDecoder

        return OnnxFrameDecoder(model)  # type: ignore[arg-type]
    from .stepper import NumpyFrameDecoder

    return NumpyFrameDecoder(model)  # type: ignore[arg-type]


def chain_latency(model: Model, sample_rate: int) -> int:
    """Algorithmic latency in samples at ``sample_rate`` of a :class:`StreamEncoder` feeding a
    :class:`StreamDecoder` (both at ``sample_rate``): the largest number of input samples, counted
    from input sample j on, that must go in before output sample j comes out (``docs/streaming.md``).

    Computed from the resamplers' reach, the frame and the encoder's and decoder's look-aheads over one period of
    the rates' pattern (1 s holds one: both rates are whole numbers of samples per second).
    """
    config = model.config
    hop, delay, rate = config.hop_length, config.lookahead * config.head_hop, config.sample_rate
    lead = config.encoder_lookahead * config.stem_stride  # the encoder's look-ahead
    into = LowDelayResampler(sample_rate, rate)   # input -> model rate
    out_of = LowDelayResampler(rate, sample_rate)  # model rate -> output
    j = np.arange(sample_rate, 2 * sample_rate + hop * sample_rate // rate + 2, dtype=np.int64)
    m = out_of.available(j) - 1            # the last model-rate sample output j needs
    frame = (m + delay) // hop             # the latent frame that completes it
    last = (frame + 1) * hop + lead - 1    # the last model-rate input sample that frame needs
    c = into.available(last)               # input samples fed by then
    return int((c - j).max())


def _session_for(model: Model, sample_rate: int, n_codebooks: int, gain: float) -> SessionHeader:
    config = model.config
    digest = getattr(model, "weights_hash", None)
    if not digest:
        raise ModelError("the model has no weights hash: save it with codec.models.weights.save_model and "
                         "load it with codec.api.load_model before coding")
    quantizer = config.quantizer
    return SessionHeader(model_hash=str(digest)[:HASH_PREFIX_HEX], quantizer_kind=quantizer.kind,
                         sf_inference=quantizer.sf_inference if quantizer.kind == "sfdiveq" else None,
                         codebook_size=config.codebook_size, n_codebooks=n_codebooks, channels=1,
                         sample_rate=sample_rate, model_sample_rate=config.sample_rate,
                         hop_length=config.hop_length, gains=(gain,))


def _mono(pcm: Any) -> np.ndarray:
    """A chunk ``[T]`` or ``[1, T]`` (float samples or integer PCM, as :func:`codec.checks.as_audio`)
    -> float32 ``[T]``."""
    x = as_audio(pcm)
    if x.shape[0] != 1:
        raise UsageError(f"streaming codes mono audio: give chunks [T] or [1, T], got {x.shape[0]} channels")
    return x[0]


class StreamEncoder:
    """Audio chunks in, packets out (see the module docstring).

    Args:
        model: a causal codec (``ModelConfig.causal``) loaded with :func:`codec.api.load_model` (on the
            torch runtime, or on onnx with the model's frame graphs: ``load_model(..., streaming=True)``).
        sample_rate: the input's rate in Hz, 8000..96000 (default: the model's).
        bitrate_kbps / n_codebooks: stages per frame, as for files (default: all).
        gain: linear gain applied before coding (stored in the session header and divided out by the
            decoder). Files are normalised to -20 dBFS; a stream cannot know its loudness ahead, so
            the caller sets it (the models train on speech at -20 dBFS +- 6 dB).
        frames_per_packet: frames per code packet, 1..255.
    """

    def __init__(self, model: Model, *, sample_rate: int | None = None, bitrate_kbps: float | None = None,
                 n_codebooks: int | None = None, gain: float = 1.0, frames_per_packet: int = 1) -> None:
        check_causal(model)
        config = model.config
        self.model = model
        self.sample_rate = check_sample_rate(config.sample_rate if sample_rate is None else sample_rate)
        self.n_codebooks = choose_stages(bitrate_kbps, n_codebooks, config.bitrate(1) / 1000.0,
                                         config.n_codebooks, f"model {config.name!r}")
        g = check_real(gain, "gain")
        if not 0.0 < g <= _FLOAT32_MAX:
            raise UsageError(f"gain must be a positive finite number, got {gain!r}")
        self.gain = float(max(np.float32(g), np.float32(np.finfo(np.float32).smallest_subnormal)))
        self.frames_per_packet = check_integer(frames_per_packet, "frames_per_packet")
        if not 1 <= self.frames_per_packet <= MAX_PACKET_FRAMES:
            raise UsageError(f"frames_per_packet must be in 1..{MAX_PACKET_FRAMES}, got {frames_per_packet}")
        self.session = _session_for(model, self.sample_rate, self.n_codebooks, self.gain)
        self.session_header = self.session.to_bytes()
        self.latency_samples = chain_latency(model, self.sample_rate)
        self._resampler = LowDelayResampler(self.sample_rate, config.sample_rate)
        self._frames = _frame_encoder(model, self.n_codebooks)
        self.reset()

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    def set_bitrate(self, bitrate_kbps: float | None = None, n_codebooks: int | None = None) -> None:
        """Stages for the frames from now on (their packets say so), at most the session's
        ``n_codebooks``: a sender can lower its bitrate packet by packet, and raise it back."""
        config = self.model.config
        self._frames.n_codebooks = choose_stages(bitrate_kbps, n_codebooks, config.bitrate(1) / 1000.0,
                                                 self.session.n_codebooks, "this session")

    def reset(self) -> None:
        """Start a new session (same session header and stages; sequence numbers from 0)."""
        self._resampler.reset()
        self._frames.reset()
        self._frames.n_codebooks = self.n_codebooks
        self._pending = np.zeros(0, dtype=np.float32)  # model-rate samples for the frame encoder
        self._held: list[np.ndarray] = []  # coded frames not yet in a packet
        self._seq = 0  # index of the next packet's first frame
        self.n_samples = 0  # input samples fed
        self._closed = False

    def feed(self, pcm: Any) -> list[bytes]:
        """The next chunk (``[T]`` or ``[1, T]``, any T >= 0) -> the packets it completes (each
        ``frames_per_packet`` frames), in order."""
        if self._closed:
            raise UsageError("the stream was flushed: call reset() to start another")
        x = _mono(pcm)
        self.n_samples += x.shape[0]
        self._pending = np.concatenate([self._pending, self._resampler.process(x * np.float32(self.gain))[0]])
        return self._code()

    def flush(self) -> list[bytes]:
        """End the session: the packets still held, then the end packet with the last frames (the
        input's last frame completed with silence) and the exact length."""
        if self._closed:
            return []
        self._pending = np.concatenate([self._pending, self._resampler.flush()[0]])
        packets = self._code(keep=True)
        stages = min((f.shape[0] for f in self._held), default=self._frames.n_codebooks)
        codes = (np.stack([f[:stages] for f in self._held], axis=1)[None] if self._held
                 else np.zeros((1, stages, 0), dtype=np.int64))
        packets.append(encode_packet(self.session, EndPacket(self._seq, codes, self.n_samples)))
        self._held = []
        self._closed = True
        return packets

    def _code(self, keep: bool = False) -> list[bytes]:
        """Hand the pending samples to the frame encoder; packets of every ``frames_per_packet``
        frames it completes (with ``keep``, at the end: the frames it still owes too, and the last
        1..frames_per_packet frames stay held, for the end packet)."""
        if self._pending.shape[0] or keep:
            coded = self._frames.encode(self._pending[None])
            if keep:  # the end: the last frames, completed with silence
                coded = np.concatenate([coded, self._frames.finish()], axis=-1)
            self._pending = self._pending[:0]
            self._held.extend(coded[0].T)  # one [K] array per frame
        packets = []
        while len(self._held) > (self.frames_per_packet if keep else self.frames_per_packet - 1):
            frames = self._held[: self.frames_per_packet]
            del self._held[: self.frames_per_packet]
            stages = min(f.shape[0] for f in frames)  # a packet's frames share its stage count
            codes = np.stack([f[:stages] for f in frames], axis=1)[None]  # [1, K, t]
            packets.append(encode_packet(self.session, CodePacket(self._seq, codes)))
            self._seq = (self._seq + codes.shape[2]) % SEQUENCE_MODULUS
        return packets


@dataclasses.dataclass
class DecoderStats:
    """What a :class:`StreamDecoder` did: frames decoded from packets, frames concealed, packets
    dropped as late or repeated, frames of gaps too long to conceal (skipped)."""

    frames_decoded: int = 0
    frames_concealed: int = 0
    packets_late: int = 0
    frames_skipped: int = 0


class StreamDecoder:
    """Packets in, audio out (see the module docstring).

    Args:
        model: the causal codec that made the session (its weights hash is checked).
        session: the session header (bytes or a :class:`~codec.format.packets.SessionHeader`); None = a
            session of this model at its own rate, gain 1, all stages.
        max_gap_frames: a gap in sequence numbers longer than this is concealed for this many frames
            and the rest skipped (the output then runs that much shorter than the stream).
    """

    def __init__(self, model: Model, session: bytes | SessionHeader | None = None, *,
                 max_gap_frames: int = MAX_GAP_FRAMES) -> None:
        check_causal(model)
        config = model.config
        self.model = model
        if session is None:
            session = _session_for(model, config.sample_rate, config.n_codebooks, 1.0)
        elif not isinstance(session, SessionHeader):
            session = parse_session(session)
        self.session = session
        _check_session_model(session, model)
        self.max_gap_frames = check_integer(max_gap_frames, "max_gap_frames")
        self.sample_rate = session.sample_rate
        self.latency_samples = chain_latency(model, self.sample_rate)
        self._gain = np.float64(session.gains[0])
        self._resampler = LowDelayResampler(config.sample_rate, self.sample_rate)
        self._frames = _frame_decoder(model)
        self.reset()

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    @property
    def ended(self) -> bool:
        """True once the session ended (its end packet was fed, or :meth:`flush` called)."""
        return self._closed

    def reset(self) -> None:
        """Start a new session (sequence numbers from 0)."""
        self._resampler.reset()
        self._frames.reset()
        self._expected = 0  # the sequence number of the next frame
        self._last_latent: np.ndarray | None = None
        self._last_frames = 1  # frames per packet, as last seen (what feed(None) conceals)
        self._lost = 0  # frames lost in a row
        self._level = 1.0  # the output gain now (concealment fades it)
        self._n_out = 0  # samples put out
        self._total: int | None = None  # the session's length, from its end packet
        self._closed = False
        self.stats = DecoderStats()

    def feed(self, packet: bytes | Packet | None) -> np.ndarray:
        """One packet (its bytes, or a parsed packet) or None for a lost one -> the samples it completes,
        float32 ``[T']`` at the session's rate. BitstreamError for a packet that fails its check (the
        decoder is unchanged: feed None instead to conceal it)."""
        if self._closed:
            raise UsageError("the session ended (end packet or flush): call reset() to start another")
        if packet is None:
            self._expected = (self._expected + self._last_frames) % SEQUENCE_MODULUS
            return self._to_output(self._conceal(self._last_frames))
        if isinstance(packet, (bytes, bytearray, memoryview)):
            packet = decode_packet(self.session, bytes(packet))
        gap = (packet.seq - self._expected) % SEQUENCE_MODULUS
        if gap >= _HALF:  # behind the stream: late or repeated
            self.stats.packets_late += 1
            return np.zeros(0, dtype=np.float32)
        if isinstance(packet, EndPacket):
            self._check_end(packet)  # before anything changes
        if packet.n_codebooks > self.model.config.n_codebooks:
            raise BitstreamError(f"packet {packet.seq} carries {packet.n_codebooks} stages; the model has "
                                 f"{self.model.config.n_codebooks}")
        pieces = []
        if gap:
            conceal = min(gap, self.max_gap_frames)
            pieces.append(self._conceal(conceal))
            self.stats.frames_skipped += gap - conceal
            self._expected = (self._expected + gap) % SEQUENCE_MODULUS
        if isinstance(packet, EndPacket):
            self._total = packet.n_samples
        if packet.frames:
            pieces.append(self._decode(packet))
        if isinstance(packet, EndPacket):
            return self._finish(pieces)
        return self._to_output(np.concatenate(pieces))

    def feed_all(self, packets: Iterable[bytes | Packet | None]) -> np.ndarray:
        """:meth:`feed` each packet in turn; the samples joined."""
        out = [self.feed(p) for p in packets]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """End a session whose end packet never came: the last samples after the last frame."""
        if self._closed:
            return np.zeros(0, dtype=np.float32)
        return self._finish([])

    # ---- internals ---------------------------------------------------------------------------
    def _decode(self, packet: CodePacket | EndPacket) -> np.ndarray:
        latent = self._frames.latent(packet.codes)
        audio = self._frames.decode_latent(latent)[0]
        self._last_latent = latent[..., -1:]
        self._last_frames = packet.frames
        self._expected = (self._expected + packet.frames) % SEQUENCE_MODULUS
        self.stats.frames_decoded += packet.frames
        target = 1.0
        audio = self._ramp(audio, self._level, target)
        self._level, self._lost = target, 0
        return audio

    def _conceal(self, frames: int) -> np.ndarray:
        """``frames`` frames of concealment: the last latent again, the gain fading."""
        pieces = []
        for _ in range(frames):
            self._lost += 1
            if self._last_latent is None:
                latent = np.zeros((1, self.model.config.latent_dim, 1), dtype=np.float32)
                target = 0.0
            else:
                latent = self._last_latent
                target = float(np.clip(1.0 - (self._lost - 1) / PLC_FADE_FRAMES, 0.0, 1.0))
            audio = self._frames.decode_latent(latent)[0]
            pieces.append(self._ramp(audio, self._level, target))
            self._level = target
            self.stats.frames_concealed += 1
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    @staticmethod
    def _ramp(audio: np.ndarray, start: float, end: float) -> np.ndarray:
        if start == end == 1.0:
            return audio
        n = audio.shape[0]
        return (audio * np.linspace(start, end, n + 1, dtype=np.float32)[1:]).astype(np.float32)

    def _check_end(self, packet: EndPacket) -> None:
        frames = (packet.seq + packet.frames) % SEQUENCE_MODULUS
        if self.session.frames_for(packet.n_samples) % SEQUENCE_MODULUS != frames:
            raise BitstreamError(f"end packet: a length of {packet.n_samples} samples does not match its "
                                 f"frames (up to sequence number {frames})")

    def _finish(self, pieces: list[np.ndarray]) -> np.ndarray:
        pieces.append(self._frames.finish()[0])
        out = self._to_output(np.concatenate(pieces), last=True)
        self._closed = True
        return out

    def _to_output(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        """Model-rate samples -> un-gained samples at the session's rate (cut to the session's length
        once it is known)."""
        ungained = np.clip(audio / self._gain, -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)
        out = self._resampler.process(ungained[None])[0]
        if last:
            out = np.concatenate([out, self._resampler.flush()[0]])
        if self._total is not None:
            out = out[: max(0, self._total - self._n_out)]
            if last and self._n_out + out.shape[0] < self._total:  # a session shorter than its frames
                out = np.concatenate([out, np.zeros(self._total - self._n_out - out.shape[0], np.float32)])
        self._n_out += out.shape[0]
        return out


def _check_session_model(session: SessionHeader, model: Model) -> None:
    """BitstreamError unless ``model`` is the one the session was made with."""
    config = model.config
    digest = str(getattr(model, "weights_hash", "") or "")
    if not digest.startswith(session.model_hash):
        raise BitstreamError(f"the session was made by another model (weights {session.model_hash}), not "
                             f"by the loaded model {config.name!r} (weights {digest[:16] or 'unknown'})")
    for key, value in (("model_sample_rate", config.sample_rate), ("hop_length", config.hop_length),
                       ("codebook_size", config.codebook_size)):
        if getattr(session, key) != value:
            raise BitstreamError(f"session {key} {getattr(session, key)} does not match the model's {value}")
    if session.n_codebooks > config.n_codebooks:
        raise BitstreamError(f"the session carries {session.n_codebooks} stages; the model has "
                             f"{config.n_codebooks}")
    if session.channels != 1:
        raise UsageError(f"streaming decodes mono sessions; this one has {session.channels} channels")
    check_sample_rate(session.sample_rate, "the session")


__all__ = ["StreamEncoder", "StreamDecoder", "DecoderStats", "chain_latency", "PLC_FADE_FRAMES",
           "MAX_GAP_FRAMES"]
