"""codec.io.audio and codec.api: file I/O, atomic writes, round trips, windowed coding, errors.

A tiny random model (a few thousand parameters) keeps every test fast on CPU; quality is not tested
here, only the plumbing: lengths, rates, channels, gains, determinism, windowing and errors.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from codec import api
from codec.io import audio
from codec.format.bitstream import decode_stream, encode_stream
from codec.config import ModelConfig, QuantizerConfig
from codec.errors import AudioError, BitstreamError, DeviceError, ModelError, UsageError
from codec.models.model import Codec
from codec.models.builder import build_codec
from codec.models.weights import save_model
from support import tiny_config


@pytest.fixture(scope="session")
def model_path(tiny_model_with_graphs: Path) -> Path:
    """The tiny model with its ONNX graphs (so both runtimes can load it)."""
    return tiny_model_with_graphs


@pytest.fixture(scope="session", params=["torch", "onnx"])
def model(request: pytest.FixtureRequest, model_path: Path) -> Any:
    """The tiny model on each runtime: every test that codes with it runs on both."""
    return api.load_model(model_path, device="cpu", runtime=request.param)


def signal(channels: int, sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio [C, T]: a gliding, amplitude-modulated tone plus noise, per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    rows = []
    for c in range(channels):
        f0 = 150 + 50 * c + 40 * np.sin(2 * np.pi * 0.3 * t)
        tone = np.sin(2 * np.pi * np.cumsum(f0) / sample_rate) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        rows.append((0.2 / (c + 1)) * tone + 0.01 * rng.standard_normal(t.size))
    return np.asarray(rows, dtype=np.float32).reshape(channels, -1)


# ----------------------------------------------------------------------------------- codec.io.audio

@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_read_audio_formats(tmp_path: Path, subtype: str) -> None:
    x = signal(2, 22050, 0.2)
    path = tmp_path / "x.wav"
    sf.write(path, x.T, 22050, subtype=subtype)
    y, rate = audio.read_audio(path)
    assert rate == 22050 and y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() < 1e-4
    info = audio.audio_info(path)
    assert (info.sample_rate, info.channels, info.n_samples, info.subtype) == (22050, 2, x.shape[1], subtype)
    blocks = list(audio.iter_blocks(path, block_size=1000))
    assert len(blocks) == -(-x.shape[1] // 1000)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), y)


def test_documented_audio_module_is_codec_io_audio() -> None:
    """The README's ``from codec.audio import read_audio`` keeps working: codec.audio re-exports
    codec.io.audio's public names, the same objects."""
    import codec.audio

    assert set(codec.audio.__all__) == set(audio.__all__)
    assert all(getattr(codec.audio, name) is getattr(audio, name) for name in audio.__all__)


def test_read_audio_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        audio.read_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="not a readable audio file"):
        audio.read_audio(tmp_path / "text.wav")
    with pytest.raises(AudioError, match="is a folder"):
        audio.audio_info(tmp_path)
    x = signal(1, 16000, 0.1)
    x[0, 777] = np.nan
    sf.write(tmp_path / "nan.wav", x.T, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf.*sample 777"):
        audio.read_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="sample 777"):
        list(audio.iter_blocks(tmp_path / "nan.wav", block_size=100))


@pytest.mark.parametrize("rates", [(44100, 16000), (8000, 16000), (48000, 24000)])
def test_stream_resampler_matches_whole(rates: tuple[int, int]) -> None:
    x = signal(2, rates[0], 0.7)
    whole = audio.resample(x, *rates)
    rs = audio.StreamResampler(*rates, channels=2)
    parts = [rs.process(x[:, i:i + 3001]) for i in range(0, x.shape[1], 3001)]
    parts.append(rs.process(np.zeros((2, 0), np.float32), last=True))
    streamed = np.concatenate(parts, axis=1)
    assert whole.shape == (2, round(x.shape[1] * rates[1] / rates[0]))
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_atomic_output(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with audio.atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(UsageError, match="exists.*--force"):
        with audio.atomic_output(target):
            pass
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with audio.atomic_output(target, force=True) as tmp:
                tmp.write_bytes(b"partial")
                raise exc
        assert target.read_bytes() == b"one"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with audio.atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"two")
    assert target.read_bytes() == b"two"
    with pytest.raises(UsageError, match="folder does not exist"):
        with audio.atomic_output(tmp_path / "nope" / "x.wav"):
            pass


@pytest.mark.parametrize("ext,subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_write_audio_subtype_from_extension(tmp_path: Path, ext: str, subtype: str) -> None:
    x = signal(2, 16000, 0.3)
    x[0, :10] = 3.0  # clipped, not wrapped
    path = tmp_path / f"x{ext}"
    audio.write_audio(path, x, 16000)
    info = audio.audio_info(path)
    assert (info.subtype, info.channels, info.n_samples) == (subtype, 2, x.shape[1])
    if ext != ".ogg":
        y, _ = audio.read_audio(path)
        assert y[0, :10].min() > 0.99
    with pytest.raises(UsageError, match="exists"):
        audio.write_audio(path, x, 16000)
    with pytest.raises(UsageError, match="unsupported audio output extension"):
        audio.write_audio(tmp_path / "x.mp4", x, 16000)


# ----------------------------------------------------------------------------------- codec.api

def test_load_model_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    monkeypatch.setattr(api, "DEFAULT_MODEL_PATH", tmp_path / "pretrained" / "default.safetensors")
    with pytest.raises(ModelError, match="no built-in default model is installed"):
        api.load_model(None, device="cpu")
    with pytest.raises(ModelError, match="no such model file"):
        api.load_model(tmp_path / "missing.safetensors", device="cpu")
    with pytest.raises(UsageError, match="unknown device"):
        api.load_model(model_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            api.load_model(model_path, device="cuda")
    loaded = api.load_model(model_path, device="auto")
    assert not loaded.training and loaded.weights_hash


@pytest.mark.parametrize("channels,rate,subtype", [
    (1, 16000, "PCM_16"), (2, 44100, "PCM_24"), (1, 8000, "FLOAT"), (2, 48000, "PCM_16"),
])
def test_file_round_trip(tmp_path: Path, model: Any, channels: int, rate: int, subtype: str) -> None:
    x = signal(channels, rate, 0.75) * 0.5
    src, dvq, out = tmp_path / "in.wav", tmp_path / "x.dvq", tmp_path / "out.wav"
    sf.write(src, x.T, rate, subtype=subtype)
    header = api.encode_file(model, src, dvq)
    assert (header.sample_rate, header.channels, header.n_samples) == (rate, channels, x.shape[1])
    assert header.model_sample_rate == 16000 and header.n_codebooks == 3
    api.decode_file(dvq, out, model)
    info = audio.audio_info(out)
    assert (info.sample_rate, info.channels, info.n_samples, info.subtype) == (
        rate, channels, x.shape[1], "PCM_16")
    y, _ = audio.read_audio(out)
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav", "x.dvq"]


def test_compress_is_deterministic_and_restores_shape(model: Any) -> None:
    x = signal(2, 32000, 1.3)
    data = api.compress(model, x, 32000)
    assert api.compress(model, x, 32000) == data
    y, rate = api.decompress(data, model)
    assert rate == 32000 and y.shape == x.shape and y.dtype == np.float32
    y2, _ = api.decompress(data, model)
    np.testing.assert_array_equal(y, y2)


def test_gains_normalise_each_channel(model: Any) -> None:
    x = signal(3, 16000, 1.0)
    x[1] *= 0.1  # -20 dB quieter channel
    x[2] *= 1e-3  # so quiet that the gain is capped
    header, _ = decode_stream(api.compress(model, x, 16000))
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(header.gains[:2], api.TARGET_RMS / rms[:2], rtol=1e-5)
    assert header.gains[2] == api.MAX_GAIN
    silent = np.zeros((1, 16000), np.float32)
    assert decode_stream(api.compress(model, silent, 16000))[0].gains == (1.0,)


def test_bitrate_and_codebooks(model: Any) -> None:
    x = signal(1, 16000, 0.5)
    per_stage = model.config.bitrate(1) / 1000  # 0.2 kbps for the tiny model
    assert decode_stream(api.compress(model, x, 16000, n_codebooks=2))[0].n_codebooks == 2
    assert decode_stream(api.compress(model, x, 16000, bitrate_kbps=2.5 * per_stage))[0].n_codebooks == 2
    assert decode_stream(api.compress(model, x, 16000, bitrate_kbps=3 * per_stage))[0].n_codebooks == 3
    with pytest.raises(UsageError, match=r"above the 0.6 kbps maximum of model 'tiny' \(3 stages"):
        api.compress(model, x, 16000, bitrate_kbps=100)  # refused, not silently lowered
    with pytest.raises(UsageError, match="below one stage"):
        api.compress(model, x, 16000, bitrate_kbps=0.5 * per_stage)
    with pytest.raises(UsageError, match="not both"):
        api.compress(model, x, 16000, bitrate_kbps=1.0, n_codebooks=1)
    with pytest.raises(UsageError, match="n_codebooks must be in 1..3"):
        api.compress(model, x, 16000, n_codebooks=4)
    with pytest.raises(AudioError, match="outside 8000..96000"):
        api.compress(model, x, 4000)
    with pytest.raises(AudioError, match="NaN"):
        api.compress(model, np.full((1, 100), np.nan, np.float32), 16000)


def test_empty_audio(tmp_path: Path, model: Any) -> None:
    data = api.compress(model, np.zeros((2, 0), np.float32), 44100)
    header, codes = decode_stream(data)
    assert (header.n_samples, header.n_frames, header.channels) == (0, 0, 2) and codes.shape[2] == 0
    y, rate = api.decompress(data, model)
    assert y.shape == (2, 0) and rate == 44100
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), 22050)
    api.encode_file(model, tmp_path / "empty.wav", tmp_path / "empty.dvq")
    api.decode_file(tmp_path / "empty.dvq", tmp_path / "back.wav", model)
    info = audio.audio_info(tmp_path / "back.wav")
    assert (info.n_samples, info.channels, info.sample_rate) == (0, 2, 22050)


def _whole_signal(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes [C, K, F], decoded audio [C, F * hop]) of x [C, T] coded in one piece, on the model's
    own runtime (numpy for onnx, tensors for torch)."""
    if getattr(model, "runtime", None) == "onnx":
        codes = model.encode(x[:, None, :])
        return codes, model.decode(codes)[:, 0]
    with torch.inference_mode():
        codes = model.encode(torch.from_numpy(x)[:, None, :])
        return codes.numpy(), model.decode(codes)[:, 0].numpy()


def test_windowed_coding_matches_whole_signal(model: Any) -> None:
    """30 s in 5 s windows (default 1 s context) vs one whole-signal encode/decode."""
    x = signal(1, 16000, 30.0)
    data = api.compress(model, x, 16000, window=250)
    header, codes = decode_stream(data)
    assert header.chunk_frames == 250 and header.n_frames == 1500
    gain = header.gains[0]
    whole_codes, whole = _whole_signal(model, x * gain)
    whole = whole[:, : x.shape[1]] / gain
    assert (whole_codes == codes).mean() > 0.999
    chunked, _ = api.decompress(encode_stream(header, whole_codes), model, window=100)
    assert chunked.shape == x.shape
    codec_error = np.sqrt(np.mean((whole - x) ** 2))
    chunk_error = np.abs(chunked - whole).max()
    assert codec_error > 1e-3
    assert chunk_error < 1e-3 * codec_error, (chunk_error, codec_error)
    # too little context is visibly worse: the test can fail
    no_context, _ = api.decompress(encode_stream(header, whole_codes), model, window=100,
                                   context=0)
    assert np.abs(no_context - whole).max() > 100 * chunk_error


def test_stream_from_another_model(tmp_path: Path, model: Any) -> None:
    torch.manual_seed(1)
    other = build_codec(tiny_config("other-model"))
    save_model(other, tmp_path / "other.safetensors")
    data = api.compress(other, signal(1, 16000, 0.3), 16000)
    # version-2 streams name the model by its weights hash (the name is not stored)
    with pytest.raises(BitstreamError, match=f"another model \\(weights {other.weights_hash[:12]}\\).*'tiny'"):
        api.decompress(data, model)


def test_existing_output_untouched(tmp_path: Path, model: Any) -> None:
    sf.write(tmp_path / "in.wav", signal(1, 16000, 0.3).T, 16000)
    (tmp_path / "x.dvq").write_bytes(b"keep me")
    with pytest.raises(UsageError, match="exists"):
        api.encode_file(model, tmp_path / "in.wav", tmp_path / "x.dvq")
    assert (tmp_path / "x.dvq").read_bytes() == b"keep me"
    api.encode_file(model, tmp_path / "in.wav", tmp_path / "x.dvq", force=True)
    assert (tmp_path / "x.dvq").read_bytes()[:4] == b"DVQC"


def test_corrupt_stream_leaves_no_output(tmp_path: Path, model: Any) -> None:
    data = bytearray(api.compress(model, signal(1, 16000, 3.0), 16000, window=50))
    data[-5] ^= 0xFF  # in the last chunk's payload: found only after earlier chunks are decoded
    (tmp_path / "bad.dvq").write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="CRC"):
        api.decode_file(tmp_path / "bad.dvq", tmp_path / "out.wav", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dvq"]
    with pytest.raises(BitstreamError, match="no such file"):
        api.decode_file(tmp_path / "missing.dvq", tmp_path / "out.wav", model)


class _NullCodec(torch.nn.Module):
    """The tiny model's geometry with free encode/decode (zeros): isolates the pipeline's memory."""

    def __init__(self) -> None:
        super().__init__()
        self.config = tiny_config()
        self.weights_hash = "ab" * 32
        self.scale = torch.nn.Parameter(torch.ones(1))

    def encode(self, audio: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        frames = -(-audio.shape[-1] // self.config.hop_length)
        return torch.zeros(audio.shape[0], n_codebooks or 3, frames, dtype=torch.int64)

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return torch.zeros(codes.shape[0], 1, codes.shape[-1] * self.config.hop_length)


def test_file_coding_memory_is_bounded(tmp_path: Path) -> None:
    """Python-side allocations (numpy is traced by tracemalloc) while coding 2 minutes of 44.1 kHz
    stereo stay far below the signal's size: files are read in blocks and written chunk by chunk."""
    x = np.tile(signal(2, 44100, 1.0), 120)
    sf.write(tmp_path / "long.wav", x.T, 44100)
    signal_bytes = x.nbytes  # 42 MB as float32
    del x
    null = _NullCodec()
    tracemalloc.start()
    try:
        api.encode_file(null, tmp_path / "long.wav", tmp_path / "long.dvq")
        _, enc_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        api.decode_file(tmp_path / "long.dvq", tmp_path / "back.wav", null)
        _, dec_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert enc_peak < signal_bytes / 4, enc_peak
    assert dec_peak < signal_bytes / 4, dec_peak
    assert audio.audio_info(tmp_path / "back.wav").n_samples == 120 * 44100


# ------------------------------------------------------------------------- arguments (issue 11)

def test_every_bad_argument_raises_our_own_error(model: Any, model_path: Path) -> None:
    x = signal(1, 16000, 0.2)
    data = api.compress(model, x, 16000)
    cases = [  # (call, error class, message pattern)
        (lambda: api.compress(model, x, 16000.5), UsageError, "sample_rate must be an integer"),
        (lambda: api.compress(model, x, "16000"), UsageError, "sample_rate must be an integer, got str"),
        (lambda: api.compress(model, x, None), UsageError, "sample_rate must be an integer, got None"),
        (lambda: api.compress(model, x, True), UsageError, "got a boolean"),
        (lambda: api.compress(model, x, 16000, n_codebooks=1.5), UsageError, "n_codebooks must be an integer"),
        (lambda: api.compress(model, x, 16000, bitrate_kbps="6"), UsageError, "bitrate must be a number"),
        (lambda: api.compress(model, x, 16000, bitrate_kbps=1e308), UsageError, "above the 0.6 kbps maximum"),
        (lambda: api.compress(model, x, 16000, bitrate_kbps=float("inf")), UsageError, "finite"),
        (lambda: api.compress(model, x, 16000, bitrate_kbps=-1), UsageError, "positive"),
        (lambda: api.compress(model, x, 16000, window=2.5), UsageError, "window must be an integer"),
        (lambda: api.compress(model, x.astype(np.complex64), 16000), AudioError, "complex"),
        (lambda: api.compress(model, torch.from_numpy(x).to(torch.complex64), 16000), AudioError, "complex"),
        (lambda: api.compress(model, x > 0, 16000), AudioError, "booleans"),
        (lambda: api.compress(model, x.astype(np.uint16), 16000), AudioError, "not a PCM format"),
        (lambda: api.compress(model, np.array([["a", "b"]]), 16000), UsageError, "numeric array"),
        (lambda: api.compress(model, "audio.wav", 16000), UsageError, "must be an array"),
        (lambda: api.compress(model, None, 16000), UsageError, "must be an array"),
        (lambda: api.compress(model, x.T.repeat(2, axis=1), 16000), AudioError, r"looks like \[T, C\]: pass audio\.T"),
        (lambda: api.compress(model, np.zeros((65, 100), np.float32), 16000), AudioError, "65 channels"),
        (lambda: api.compress(model, np.zeros((1, 1, 100), np.float32), 16000), AudioError, r"must be \[C, T\]"),
        (lambda: api.compress(model, np.full((1, 10), 1e300), 16000), AudioError, "beyond float32"),
        (lambda: api.compress("model", x, 16000), UsageError, "model must be a codec"),
        (lambda: api.load_model(123), UsageError, "path or the name of a built-in model, got int"),
        (lambda: api.load_model(model_path, device=None), UsageError, "device must be a string"),
        (lambda: api.decompress("data.dvq", model), UsageError, "not a path: use decode_file"),
        (lambda: api.decompress(123, model), UsageError, "got int"),
        (lambda: api.decompress(b"RIFF....", model), BitstreamError, "not a .dvq file"),
        (lambda: api.decompress(data, "model"), UsageError, "model must be a codec"),
        (lambda: api.encode_file(model, 42, "x.dvq"), UsageError, "in_path must be a path"),
        (lambda: api.transcode("data", n_codebooks=1), UsageError, "takes the .dvq bytes"),
        (lambda: api.transcode(data, n_codebooks=4), UsageError, r"n_codebooks must be in 1\.\.3"),
    ]
    for call, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            call()


def test_integer_pcm_is_scaled_like_soundfile(model: Any) -> None:
    x = signal(2, 16000, 0.4)
    pcm16 = np.round(x * 20000).astype(np.int16)
    as_float = api.compress(model, pcm16.astype(np.float32) / 32768, 16000)
    assert api.compress(model, pcm16, 16000) == as_float
    assert api.compress(model, torch.from_numpy(pcm16), 16000) == as_float
    assert api.compress(model, pcm16.astype(np.int32) << 16, 16000) == as_float  # / 2^31
    pcm8 = np.round(x * 100 + 128).astype(np.uint8)  # 8-bit WAV: offset binary
    assert api.compress(model, pcm8, 16000) == api.compress(model, (pcm8 - 128.0) / 128, 16000)
    restored, _ = api.decompress(api.compress(model, pcm16, 16000), model)
    assert np.abs(restored).max() < 2.0  # at the float scale (it used to come back at ~1.5e4)


def test_torch_tensors_of_any_float_dtype(model: Any) -> None:
    x = torch.from_numpy(signal(1, 16000, 0.3)).to(torch.bfloat16)
    expected = api.compress(model, x.float().numpy(), 16000)
    assert api.compress(model, x, 16000) == expected
    assert api.compress(model, x.to(torch.float64), 16000) == expected


def test_loud_float_input_codes_like_the_same_signal_at_full_scale(model: Any) -> None:
    """Any finite float32 amplitude: the gain takes it down to the target level (issue item 4)."""
    x = signal(1, 16000, 1.0)
    normal_header, normal_codes = decode_stream(api.compress(model, x, 16000))
    for scale in (2e6, 1e30, float(np.finfo(np.float32).max) / float(np.abs(x).max())):
        loud = (x.astype(np.float64) * scale).astype(np.float32)
        data = api.compress(model, loud, 16000)
        header, codes = decode_stream(data)
        assert header.gains[0] == pytest.approx(normal_header.gains[0] / scale, rel=1e-5)
        assert (codes == normal_codes).mean() > 0.95  # the same signal after the gain
        restored, _ = api.decompress(data, model)
        assert np.isfinite(restored).all()
        assert 0.1 * scale < float(np.abs(restored).max()) / float(np.abs(x).max()) < 10 * scale


def test_wav_shorter_than_its_header_warns(tmp_path: Path) -> None:
    from codec.errors import DiveqWarning

    path = tmp_path / "cut.wav"
    sf.write(path, signal(1, 16000, 1.0).T, 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * 10000])
    with pytest.warns(DiveqWarning, match="declares 16000 samples per channel but the file holds 10000"):
        y, _ = audio.read_audio(path)
    assert y.shape == (1, 10000)


def test_streams_decode_with_the_builtin_model_that_made_them(tmp_path, monkeypatch):
    """An earlier default keeps shipping under its own name; its streams decode without --model."""
    from codec.models.weights import save_model

    pretrained = tmp_path / "pretrained"
    old, new = build_codec(tiny_config("old-default")), build_codec(tiny_config("new-default"))
    save_model(old, pretrained / "speech16k-v1.safetensors")
    save_model(new, pretrained / "default.safetensors")
    monkeypatch.setattr(api, "DEFAULT_MODEL_PATH", pretrained / "default.safetensors")
    assert set(api.builtin_model_cards()) == {"default", "speech16k-v1"}
    audio = np.sin(np.linspace(0, 400, 8000, dtype=np.float32))[None]
    for model, name in ((old, "speech16k-v1"), (new, "default")):
        data = api.compress(model, audio, 16000)
        header = api.read_stream_header(_write(tmp_path / f"{name}.dvq", data))
        assert api.builtin_model_for_stream(header) == name
        decoded, rate = api.decompress(data)  # no model: the one that made it
        expected, _ = api.decompress(data, model)
        assert rate == 16000 and np.array_equal(decoded, expected)
        assert api.decode_file(tmp_path / f"{name}.dvq", tmp_path / f"{name}.wav").sample_rate == 16000


def _write(path, data):
    path.write_bytes(data)
    return path


def test_more_bad_arguments_name_themselves(tmp_path: Path, model: Codec) -> None:
    """Issue 19, item 4: arguments that leaked a bare TypeError, a BitstreamError about another
    name, or NotImplementedError; each is a DiveqError naming the argument now."""
    x = signal(1, 16000, 0.2)
    stream = tmp_path / "ok.dvq"
    stream.write_bytes(api.compress(model, x, 16000))
    cases = [  # (call, error class, message pattern)
        (lambda: api.decode_file(stream, None, model), UsageError, "out_path must be a path"),
        (lambda: api.decode_file(stream, 3, model), UsageError, r"out_path must be a path .*, got int"),
        (lambda: api.encode_file(model, stream, None), UsageError, "out_path must be a path"),
        (lambda: api.transcode_file(stream, None, n_codebooks=1), UsageError, "out_path must be a path"),
        (lambda: api.compress(model, x, 16000, window=10**12), UsageError,
         r"window must be at most 65536 frames for 1 channel\(s\) at 3 stage\(s\)"),
        (lambda: api.compress(model, np.zeros((64, 100), np.float32), 16000, window=30000), UsageError,
         r"window must be at most 21845 frames for 64 channel\(s\)"),
        (lambda: api.encode_file(model, tmp_path / "in.wav", tmp_path / "w.dvq", window=10**12),
         UsageError, "window must be at most"),
        (lambda: api.compress(model, torch.zeros(1, 16000, device="meta"), 16000), UsageError,
         "audio is a tensor on the meta device"),
    ]
    sf.write(tmp_path / "in.wav", x.T, 16000)
    for call, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "ok.dvq"]
    # the largest window allowed still codes (the same codes: the signal fits either window)
    largest, _ = api.decompress(api.compress(model, x, 16000, window=65536), model)
    assert np.array_equal(largest, api.decompress(api.compress(model, x, 16000, window=100), model)[0])
