"""codec.runtime.realtime: StreamEncoder / StreamDecoder with any chunking, against the causal model's offline
output and against the file path (.dvq), the latency measured with an impulse, other input rates,
packet loss and concealment, errors; and the shipped default model's causal conversion run through a
second of speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec import api
from codec.format.bitstream import decode_stream
from codec.models.builder import build_codec
from codec.errors import BitstreamError, ModelError, UsageError
from codec.models.model import Codec
from codec.format.packets import CodePacket, decode_packet, packets_to_dvq, parse_session
from codec.runtime.realtime import PLC_FADE_FRAMES, StreamDecoder, StreamEncoder, chain_latency
from codec.models.weights import load_model_file, save_model, with_timing
from support import speechlike, tiny_causal_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Frame-sized tensors: one thread is several times faster than two on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("causal") / "tiny.safetensors"
    save_model(build_codec(tiny_causal_config(lookahead=3)), path)
    return api.load_model(path, device="cpu")


def _signal(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _run(model: Codec, x: np.ndarray, sizes: list[int], **kw) -> tuple[list[bytes], np.ndarray, StreamEncoder]:
    """Feed ``x`` in pieces of ``sizes`` (cycled); every packet straight into a decoder."""
    enc = StreamEncoder(model, **kw)
    dec = StreamDecoder(model, enc.session_header)
    packets, out, start, i = [], [], 0, 0
    while start < x.size:
        size = sizes[i % len(sizes)]
        for p in enc.feed(x[start:start + size]):
            packets.append(p)
            out.append(dec.feed(p))
        start, i = start + size, i + 1
    for p in enc.flush():
        packets.append(p)
        out.append(dec.feed(p))
    return packets, np.concatenate(out), enc


def _codes(enc: StreamEncoder, packets: list[bytes]) -> np.ndarray:
    return np.concatenate([decode_packet(enc.session, p).codes for p in packets], axis=2)


def test_any_chunking_gives_the_offline_codes_and_samples(model: Codec) -> None:
    x = _signal(16000 + 123)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(x)[None, None])
        expected = model.decode(codes, length=x.size)[0, 0].numpy()
    rng = np.random.default_rng(0)
    chunkings = [[x.size], [1], [80], [7, 300, 1, 1999], list(rng.integers(1, 2000, 50))]
    for sizes in chunkings:
        packets, audio, enc = _run(model, x, [int(s) for s in sizes])
        assert np.array_equal(_codes(enc, packets), codes.numpy()), sizes[:4]
        assert audio.shape == x.shape
        np.testing.assert_allclose(audio, expected, rtol=0, atol=1e-5)


def test_a_stream_is_the_dvq_file_of_the_same_audio(model: Codec) -> None:
    x = _signal(12000 + 5, seed=1)
    data = api.compress(model, x, 16000, bitrate_kbps=1.6)
    header, file_codes = decode_stream(data)
    packets, audio, enc = _run(model, x, [333], gain=header.gains[0], bitrate_kbps=1.6)
    assert np.array_equal(_codes(enc, packets), file_codes)
    decoded, rate = api.decompress(data, model)
    assert rate == 16000 and np.array_equal(audio, decoded[0])  # both decode frame by frame
    # the packets are the .dvq, and make it again without the model
    assert packets_to_dvq(enc.session_header, packets, header.chunk_frames) == data


@pytest.mark.parametrize("rate", [16000, 48000, 44100])
def test_the_reported_latency_is_the_measured_delay_of_an_impulse(model: Codec, rate: int) -> None:
    """Fed one sample at a time, output sample j comes out after input sample j + latency - 1 at the
    latest; and the impulse comes out where it went in (the stream is the offline output)."""
    _check_latency(model, rate)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_the_encoders_lookahead_counts_in_the_latency(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "lead.safetensors"
    save_model(build_codec(tiny_causal_config(lookahead=2, encoder_lookahead=1)), path)
    _check_latency(api.load_model(path, device="cpu"), rate)


def _check_latency(model: Codec, rate: int) -> None:
    n = rate // 16
    x = np.zeros(n, np.float32)
    x[n // 2] = 0.5
    enc = StreamEncoder(model, sample_rate=rate)
    dec = StreamDecoder(model, enc.session_header)
    fed_when: list[int] = []  # for each output sample: input samples fed when it came out
    out = []
    for i in range(n):
        for p in enc.feed(x[i:i + 1]):
            y = dec.feed(p)
            out.append(y)
            fed_when += [i + 1] * y.size
    measured = max(fed - j for j, fed in enumerate(fed_when) if j >= rate // 50)
    assert enc.latency_samples == dec.latency_samples == measured == chain_latency(model, rate)
    config = model.config
    if rate == config.sample_rate:
        assert measured == config.latency_samples
        with torch.no_grad():
            offline = model(torch.from_numpy(x)[None, None]).audio[0, 0].numpy()
        got = np.concatenate(out + [dec.feed_all(enc.flush())])
        np.testing.assert_allclose(got, offline, rtol=0, atol=1e-5)
    else:  # the resamplers' reach adds about a millisecond each
        assert 0 < measured / rate - config.latency_samples / config.sample_rate < 0.003


def test_other_rates_stream_with_any_chunking(model: Codec) -> None:
    x = _signal(48000 // 2 + 11, seed=2)
    p1, a1, enc = _run(model, x, [x.size], sample_rate=48000)
    p2, a2, _ = _run(model, x, [1, 77, 960, 5], sample_rate=48000)
    assert p1 == p2 and np.array_equal(a1, a2) and a1.shape == x.shape
    assert enc.session.sample_rate == 48000
    # the round trip keeps the signal (a random model: only its scale and timing are comparable)
    assert np.isfinite(a1).all()


def test_packets_carry_several_frames_and_fewer_stages(model: Codec) -> None:
    x = _signal(8000, seed=3)
    one, audio1, _ = _run(model, x, [500], n_codebooks=2)
    five, audio5, enc = _run(model, x, [500], n_codebooks=2, frames_per_packet=5)
    assert np.array_equal(audio1, audio5) and len(five) < len(one)
    assert all(decode_packet(enc.session, p).n_codebooks == 2 for p in five)
    assert {decode_packet(enc.session, p).frames for p in five[:-1]} == {5}
    # the bitrate changes packet by packet; the decoder follows
    enc = StreamEncoder(model)
    dec = StreamDecoder(model, enc.session_header)
    packets = enc.feed(x[:4000])
    enc.set_bitrate(n_codebooks=1)
    packets += enc.feed(x[4000:]) + enc.flush()
    stages = [decode_packet(enc.session, p).n_codebooks for p in packets]
    assert stages[0] == 3 and stages[-1] == 1 and dec.feed_all(packets).shape == x.shape
    with pytest.raises(UsageError, match="n_codebooks"):
        enc.set_bitrate(n_codebooks=4)


# ------------------------------------------------------------------------------------ packet loss

def _lossless(model: Codec, x: np.ndarray) -> tuple[list[bytes], np.ndarray, StreamEncoder]:
    return _run(model, x, [x.size])


def test_lost_packets_are_concealed_in_time_without_jumps(model: Codec) -> None:
    x = _signal(16000, seed=4)
    packets, clean, enc = _lossless(model, x)
    lost = set(range(40, 44)) | set(range(100, 110)) | {150}
    dec = StreamDecoder(model, enc.session_header)
    out = dec.feed_all(None if i in lost and i < len(packets) - 1 else p for i, p in enumerate(packets))
    assert out.shape == clean.shape and np.isfinite(out).all()
    assert dec.stats.frames_concealed == len(lost) and dec.stats.frames_decoded == len(packets) - 1 - len(lost)
    hop, delay = model.config.hop_length, model.decoder.delay
    # before the first loss: the lossless output
    first = 40 * hop - delay
    np.testing.assert_array_equal(out[:first], clean[:first])
    # a long loss fades to silence: the first lost frame plays, the next FADE fade out, then nothing
    silent = slice((100 + 1 + PLC_FADE_FRAMES) * hop - delay, 110 * hop - delay)
    assert np.all(out[silent] == 0.0) and np.any(clean[silent] != 0.0)
    # every gain change is a ramp: no jump larger than the signal's own
    assert np.abs(np.diff(out)).max() <= np.abs(np.diff(clean)).max() * 1.5


def test_a_gap_in_sequence_numbers_is_a_loss_and_late_packets_are_dropped(model: Codec) -> None:
    x = _signal(8000, seed=5)
    packets, _, enc = _lossless(model, x)
    with_none = StreamDecoder(model, enc.session_header).feed_all(
        [None if i in (10, 11) else p for i, p in enumerate(packets)])
    dec = StreamDecoder(model, enc.session_header)
    gap = dec.feed_all(p for i, p in enumerate(packets) if i not in (10, 11))
    assert np.array_equal(gap, with_none)
    dec = StreamDecoder(model, enc.session_header)
    out = [dec.feed(p) for p in packets[:20]]
    assert dec.feed(packets[5]).size == 0 and dec.stats.packets_late == 1  # a repeated, late packet
    out += [dec.feed(p) for p in packets[20:]]
    assert np.array_equal(np.concatenate(out), StreamDecoder(model, enc.session_header).feed_all(packets))


def test_a_corrupt_packet_raises_and_leaves_the_decoder_as_it_was(model: Codec) -> None:
    x = _signal(4000, seed=6)
    packets, clean, enc = _lossless(model, x)
    dec = StreamDecoder(model, enc.session_header)
    out = [dec.feed(p) for p in packets[:5]]
    bad = bytearray(packets[5])
    bad[4] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC mismatch"):
        dec.feed(bytes(bad))
    out += [dec.feed(p) for p in packets[5:]]
    assert np.array_equal(np.concatenate(out), clean)


def test_the_end_of_a_stream_without_its_end_packet(model: Codec) -> None:
    x = _signal(4000, seed=7)
    packets, clean, enc = _lossless(model, x)
    dec = StreamDecoder(model, enc.session_header)
    out = np.concatenate([dec.feed_all(packets[:-1]), dec.flush()])
    frames = sum(decode_packet(enc.session, p).frames for p in packets[:-1])
    assert out.shape == (frames * model.config.hop_length,)
    assert dec.ended and dec.flush().size == 0
    with pytest.raises(UsageError, match="reset"):
        dec.feed(packets[0])
    dec.reset()
    assert np.array_equal(dec.feed_all(packets), clean)


# ------------------------------------------------------------------------------------------ errors

def test_errors(model: Codec, tmp_path: Path) -> None:
    offline = build_codec(tiny_causal_config(causal=False))
    with pytest.raises(ModelError, match="causal model"):
        StreamEncoder(offline)
    with pytest.raises(ModelError, match="weights hash"):
        StreamEncoder(build_codec(tiny_causal_config()))
    with pytest.raises(UsageError, match="mono"):
        StreamEncoder(model).feed(np.zeros((2, 100), np.float32))
    with pytest.raises(UsageError, match="bitrate"):
        StreamEncoder(model, bitrate_kbps=1000)
    with pytest.raises(UsageError, match="gain"):
        StreamEncoder(model, gain=0.0)
    enc = StreamEncoder(model)
    enc.flush()
    with pytest.raises(UsageError, match="reset"):
        enc.feed(np.zeros(10, np.float32))
    other = with_timing(model, causal=True, lookahead=1)  # the same weights, another timing
    with pytest.raises(BitstreamError, match="another model"):
        StreamDecoder(other, enc.session_header)
    session = parse_session(enc.session_header)
    assert StreamDecoder(model, session).session == session
    dec = StreamDecoder(model)
    too_many = CodePacket(0, np.zeros((1, model.config.n_codebooks + 1, 1), np.int64))
    with pytest.raises(BitstreamError):
        dec.feed(too_many)


# ------------------------------------------------------------------- the shipped model, made causal

def test_the_default_models_causal_conversion_streams_a_second_of_speech() -> None:
    default = load_model_file(ROOT / "codec" / "pretrained" / "default.safetensors")
    model = with_timing(default, causal=True, lookahead=3)
    x = speechlike(1.0, seed=1)
    packets, audio, enc = _run(model, x, [320, 160, 1000], bitrate_kbps=6)
    assert enc.n_codebooks == 12 and enc.latency_samples == 800  # 50 ms
    assert len(packets) == 51 and all(len(p) == 4 + 15 + 2 for p in packets[:-1])  # 6 kbps + 6 B
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(x)[None, None])
        expected = model.decode(codes, length=x.size)[0, 0].numpy()
    stream_codes = _codes(enc, packets)
    assert stream_codes.shape == codes.shape
    assert (stream_codes == codes.numpy()).mean() > 0.99  # float rounding may tip a near tie
    assert audio.shape == x.shape and np.isfinite(audio).all()
    if np.array_equal(stream_codes, codes.numpy()):
        np.testing.assert_allclose(audio, expected, rtol=0, atol=1e-4)
