"""Streaming on onnxruntime (no torch at run time): a causal model's frame graphs (written by
``export-onnx``), :mod:`codec.runtime.onnx_stepper`, StreamEncoder / StreamDecoder on an OnnxCodec,
against the torch stepper; ``load_model(..., streaming=True)``'s runtime choice; the built-in causal
model's frame graphs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support import copy_model, tiny_causal_config

from codec import api
from codec.errors import ModelError
from codec.format.packets import decode_packet
from codec.models.builder import build_codec
from codec.models.weights import save_model
from codec.runtime.base import FRAME_ROLES, graph_path
from codec.runtime.onnx_export import export_graphs
from codec.runtime.onnx_runtime import OnnxCodec
from codec.runtime.onnx_stepper import OnnxFrameDecoder, OnnxFrameEncoder
from codec.runtime.realtime import StreamDecoder, StreamEncoder
from codec.runtime.stepper import FrameDecoder, FrameEncoder

SCRIPT = Path(sys.executable).parent / "diveq-codec"
BUILTIN_CAUSAL = api.DEFAULT_MODEL_PATH.parent / "speech16k-stft-causal.safetensors"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal model (with an encoder look-ahead) and all its graphs."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("onnx-stream") / "tiny.safetensors"
    save_model(build_codec(tiny_causal_config(lookahead=1, encoder_lookahead=1)), path)
    export_graphs(path)
    return path


def _signal(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _relative_db(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * float(np.log10(np.sum((a - b) ** 2.0) / np.sum(b.astype(np.float64) ** 2) + 1e-30))


def _encode(encoder: OnnxFrameEncoder | FrameEncoder, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    pieces, start, i = [], 0, 0
    while start < x.size:
        chunk = x[None, start:start + sizes[i % len(sizes)]]
        out = encoder.encode(chunk if isinstance(encoder, OnnxFrameEncoder) else torch.from_numpy(chunk))
        pieces.append(np.asarray(out))
        start, i = start + sizes[i % len(sizes)], i + 1
    pieces.append(np.asarray(encoder.finish()))
    return np.concatenate(pieces, axis=-1)


def test_export_writes_the_frame_graphs_of_a_causal_model_only(model_path: Path, tmp_path: Path) -> None:
    for role in FRAME_ROLES:
        assert graph_path(model_path, role).stat().st_size < 0.5e6  # the weights stay in the model file
    offline = tmp_path / "offline.safetensors"
    save_model(build_codec(tiny_causal_config(causal=False)), offline)
    export_graphs(offline)
    assert not any(graph_path(offline, role).exists() for role in FRAME_ROLES)


def test_frame_codes_do_not_depend_on_the_chunking_and_match_torch(model_path: Path) -> None:
    """Any chunking gives the same codes on onnxruntime (each frame runs alone); they equal the torch
    stepper's but for near-ties, and the decoded frames agree to float rounding."""
    onnx_model, torch_model = OnnxCodec(model_path, threads=1), api.load_model(model_path, "cpu", "torch")
    x = _signal(8000 + 37)
    rng = np.random.default_rng(1)
    k = onnx_model.n_codebooks
    runs = [_encode(OnnxFrameEncoder(onnx_model, k), x, [int(s) for s in sizes])
            for sizes in ([x.size], [1, 79], [320], list(rng.integers(1, 900, 40)))]
    for codes in runs[1:]:
        assert np.array_equal(codes, runs[0])
    with torch.inference_mode():
        expected = _encode(FrameEncoder(torch_model, k), x, [160])
    assert expected.shape == runs[0].shape and (expected == runs[0]).mean() >= 0.99
    onnx_dec, torch_dec = OnnxFrameDecoder(onnx_model), FrameDecoder(torch_model)
    audio = np.concatenate([onnx_dec.decode(expected[..., :5]), onnx_dec.decode(expected[..., 5:]),
                            onnx_dec.finish()], axis=-1)
    with torch.inference_mode():
        reference = torch.cat([torch_dec.decode(torch.from_numpy(expected)), torch_dec.finish()], dim=-1).numpy()
    assert audio.shape == reference.shape == (1, expected.shape[-1] * onnx_model.hop_length)
    assert _relative_db(audio, reference) < -60


def test_streams_cross_the_runtimes(model_path: Path) -> None:
    """A session encoded on onnxruntime decodes on torch and the other way round (the same weights
    hash); each end's audio agrees with the other runtime's within -60 dB, lost packets included."""
    onnx_model = api.load_model(model_path, "cpu", streaming=True)
    torch_model = api.load_model(model_path, "cpu", "torch")
    assert isinstance(onnx_model, OnnxCodec)
    x = _signal(6000, seed=2)
    enc = StreamEncoder(onnx_model, bitrate_kbps=None)
    packets = [p for i in range(0, x.size, 160) for p in enc.feed(x[i:i + 160])] + enc.flush()
    torch_enc = StreamEncoder(torch_model)
    torch_packets = [p for i in range(0, x.size, 160) for p in torch_enc.feed(x[i:i + 160])] + torch_enc.flush()
    assert enc.session_header == torch_enc.session_header
    codes = [decode_packet(enc.session, p).codes for p in packets]
    torch_codes = [decode_packet(enc.session, p).codes for p in torch_packets]
    assert np.mean([np.array_equal(a, b) for a, b in zip(codes, torch_codes, strict=True)]) >= 0.95
    lost = {3, 4, 9}
    outs = []
    for decoder_model in (onnx_model, torch_model):
        dec = StreamDecoder(decoder_model, enc.session_header)
        outs.append(np.concatenate([dec.feed(None if i in lost else p) for i, p in enumerate(packets)]))
        assert dec.stats.frames_concealed == len(lost) and dec.ended
    assert outs[0].shape == outs[1].shape == x.shape
    assert np.isfinite(outs[0]).all() and _relative_db(outs[0], outs[1]) < -60


def test_streaming_auto_picks_onnx_only_with_frame_graphs(model_path: Path, tmp_path: Path) -> None:
    copy = copy_model(model_path, tmp_path)
    assert isinstance(api.load_model(copy, "cpu", streaming=True), OnnxCodec)
    for role in FRAME_ROLES:
        graph_path(copy, role).unlink()
    assert isinstance(api.load_model(copy, "cpu"), OnnxCodec)  # files still run on onnx
    assert not isinstance(api.load_model(copy, "cpu", streaming=True), OnnxCodec)  # streams on torch
    forced = api.load_model(copy, "cpu", "onnx", streaming=True)
    with pytest.raises(ModelError, match="no ONNX frame-encoder graph.*export-onnx"):
        StreamEncoder(forced)


def test_an_offline_model_on_onnx_refuses_to_stream() -> None:
    with pytest.raises(ModelError, match="offline model"):
        StreamEncoder(api.load_model(None, "cpu", "onnx"))


def test_the_builtin_causal_model_streams_on_onnxruntime() -> None:
    """The built-in causal model ships its frame graphs; ``encode --stream`` / ``decode --stream``
    with no --model run it on onnxruntime (a second of speech-like sound, 20 ms reads)."""
    assert all(graph_path(BUILTIN_CAUSAL, role).is_file() for role in FRAME_ROLES)
    model = api.load_model("speech16k-stft-causal", "cpu", streaming=True, threads=1)
    assert isinstance(model, OnnxCodec) and model.config.causal
    from support import speechlike

    pcm = (np.clip(speechlike(1.0), -1, 1) * 32767 * 0.3).astype("<i2").tobytes()
    enc = subprocess.run([str(SCRIPT), "encode", "--stream", "-", "-"], input=pcm, capture_output=True, timeout=300)
    assert enc.returncode == 0, enc.stderr.decode()
    dec = subprocess.run([str(SCRIPT), "decode", "--stream", "-", "-"], input=enc.stdout, capture_output=True,
                         timeout=300)
    assert dec.returncode == 0, dec.stderr.decode()
    assert len(dec.stdout) == len(pcm)
    out = np.frombuffer(dec.stdout, dtype="<i2").astype(np.float32)
    ref = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    assert np.sqrt(np.mean(out ** 2)) > 0.1 * np.sqrt(np.mean(ref ** 2))  # it decoded sound, not silence
