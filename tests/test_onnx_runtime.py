"""The onnxruntime runtime and the ONNX export: the shipped graphs belong to the shipped weights, the two
runtimes code alike (codes and decoded audio) and decode each other's streams, short inputs, the
runtime choice, stale or foreign graphs refused, and ``diveq-codec export MODEL OUT --onnx``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
from support import copy_model, save_tiny_model, tiny_causal_config

from codec import api
from codec.errors import DeviceError, ModelError, UsageError
from codec.format.bitstream import decode_stream
from codec.models.model import Codec
from codec.models.modelfile import checked_model_file, file_weights_hash, read_model_file
from codec.runtime.base import DECODER, ENCODER, META_HASH, META_ROLE, META_WEIGHTS_FILE, graph_path
from codec.runtime.onnx_runtime import OnnxCodec

PRETRAINED = api.DEFAULT_MODEL_PATH.parent
BUILTIN = sorted(PRETRAINED.glob("*.safetensors"))
SPEECH = sorted((Path(__file__).parent / "data" / "speech").glob("*.flac"))
SCRIPT = Path(sys.executable).parent / "diveq-codec"


def _relative_db(a: np.ndarray, b: np.ndarray) -> float:
    """Energy of a - b relative to b's, in dB."""
    return 10 * float(np.log10(np.sum((a - b) ** 2.0) / np.sum(b.astype(np.float64) ** 2) + 1e-30))


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_shipped_graphs_belong_to_the_shipped_weights(path: Path) -> None:
    """Each built-in model's graphs record its weights hash (the safetensors' own, recomputed from the
    stored bytes) and file name: replacing a model file without remaking its graphs fails here."""
    _, _, digest = checked_model_file(path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert digest == card["weights_sha256"]
    for role in (ENCODER, DECODER):
        graph = graph_path(path, role)
        assert graph.is_file(), f"{graph.name} missing: run diveq-codec export-onnx {path}"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        meta = ort.InferenceSession(str(graph), options).get_modelmeta().custom_metadata_map
        assert (meta[META_ROLE], meta[META_HASH], meta[META_WEIGHTS_FILE]) == (role, digest, path.name)
        assert graph.stat().st_size < 0.5e6  # the weights stay in the model file


@pytest.mark.parametrize("path", BUILTIN[:1], ids=lambda p: p.stem)
def test_weights_hash_without_torch_is_the_torch_hash(path: Path, tmp_path: Path) -> None:
    from codec.models.weights import load_model_file

    tiny = save_tiny_model(tmp_path / "tiny.safetensors")  # float32, and buffers of other dtypes
    for model_path in (path, tiny):
        assert file_weights_hash(read_model_file(model_path)) == load_model_file(model_path).weights_hash


@pytest.mark.parametrize("encoder_lookahead", [0, 1])
def test_weights_hash_without_torch_counts_a_causal_models_timing(encoder_lookahead: int, tmp_path: Path) -> None:
    """A causal model's hash also covers its timing (the torch side adds it to the tensors' hash);
    the light runtime's reading of the file gives the same value, so it does not call the file
    corrupted (it did, for every causal model, until 2026-12-05)."""
    from codec.models.builder import build_codec
    from codec.models.weights import load_model_file, save_model, with_timing

    import torch

    torch.manual_seed(0)
    offline = build_codec(tiny_causal_config(causal=False))
    causal = with_timing(offline, causal=True, lookahead=1, encoder_lookahead=encoder_lookahead)
    save_model(causal, tmp_path / "causal.safetensors")
    save_model(offline, tmp_path / "offline.safetensors")
    _, config, digest = checked_model_file(tmp_path / "causal.safetensors")
    assert config.causal and config.encoder_lookahead == encoder_lookahead
    assert digest == load_model_file(tmp_path / "causal.safetensors").weights_hash
    assert digest != checked_model_file(tmp_path / "offline.safetensors")[2]  # same tensors, other timing


@pytest.fixture(scope="module")
def builtin() -> dict[str, object]:
    return {runtime: api.load_model(None, "cpu", runtime) for runtime in ("onnx", "torch")}


def test_runtimes_agree_on_the_pinned_speech(builtin: dict[str, object]) -> None:
    """The built-in model on the four pinned clips at 6 kbps: codes equal on >= 99.9 % of frames,
    decoded audio within -60 dB, and each runtime decodes the other's stream (same weights hash)."""
    frames = same = 0
    for path in SPEECH:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        streams = {r: api.compress(m, audio.T, rate, bitrate_kbps=6) for r, m in builtin.items()}
        codes = {r: decode_stream(data)[1] for r, data in streams.items()}
        frames += codes["torch"].shape[-1]
        same += int((codes["torch"] == codes["onnx"]).all(axis=1).sum())
        decoded = {(made, by): api.decompress(streams[made], m)[0] for made in streams for by, m in builtin.items()}
        for made in streams:
            assert _relative_db(decoded[made, "onnx"], decoded[made, "torch"]) < -60, (path.name, made)
    assert same >= 0.999 * frames, (same, frames)


@pytest.mark.parametrize("n_samples", [1, 100, 320, 321, 641, 16000])
def test_short_inputs_code_on_both_runtimes(builtin: dict[str, object], n_samples: int) -> None:
    """Down to one sample (the STFT encoder's reflect padding needs two frames: shorter input is
    padded to them), with the same codes on both runtimes."""
    x = (0.1 * np.random.default_rng(n_samples).standard_normal(n_samples)).astype(np.float32)
    streams = {r: api.compress(m, x, 16000) for r, m in builtin.items()}
    for runtime, model in builtin.items():
        decoded, rate = api.decompress(streams[runtime], model)
        assert rate == 16000 and decoded.shape == (1, n_samples) and np.isfinite(decoded).all()
    assert np.array_equal(decode_stream(streams["onnx"])[1], decode_stream(streams["torch"])[1])


def test_the_runtime_is_chosen_as_documented(tmp_path: Path, tiny_model_with_graphs: Path) -> None:
    plain = save_tiny_model(tmp_path / "plain.safetensors")  # no graphs
    assert isinstance(api.load_model(None), OnnxCodec)  # auto on the CPU: the graphs
    assert isinstance(api.load_model(None, "cpu", "torch"), Codec)
    assert isinstance(api.load_model(plain, "cpu"), Codec)  # auto without graphs: torch
    assert isinstance(api.load_model(tiny_model_with_graphs, "auto", "auto"), OnnxCodec)
    with pytest.raises(ModelError, match=r"plain\.safetensors has no ONNX encoder graph .*export-onnx"):
        api.load_model(plain, "cpu", "onnx")
    with pytest.raises(UsageError, match="the onnx runtime runs on the CPU: use --runtime torch"):
        api.load_model(None, "cuda", "onnx")
    with pytest.raises(UsageError, match="runtime must be one of auto, onnx, torch, got 'tpu'"):
        api.load_model(None, "cpu", "tpu")
    with pytest.raises(UsageError, match="threads must be a positive integer"):
        api.load_model(None, "cpu", "onnx", threads=0)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):  # cuda picks torch, which finds no GPU
            api.load_model(None, "cuda")


def test_stale_or_foreign_graphs_are_refused(tmp_path: Path, tiny_model_with_graphs: Path) -> None:
    """Graphs are never run with weights they were not made for: a model file replaced under its
    graphs, and graphs renamed to another model file, both give a ModelError naming the fix."""
    x = np.zeros((1, 1, 3200), np.float32)
    stale = tmp_path / "stale"
    stale.mkdir()
    path = copy_model(tiny_model_with_graphs, stale)
    save_tiny_model(path, seed=1)  # new weights, same name, old graphs
    model = api.load_model(path, "cpu", "onnx")
    with pytest.raises(ModelError, match=r"stale\b.*(made for other weights|cannot load).*export-onnx"):
        model.encode(x)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    copy_model(tiny_model_with_graphs, renamed)
    other = save_tiny_model(renamed / "other.safetensors", seed=1)
    for role in (ENCODER, DECODER):
        os.replace(graph_path(renamed / "tiny.safetensors", role), graph_path(other, role))
    with pytest.raises(ModelError, match=r"made for other weights \(tiny\.safetensors.*not for other\.safetensors"):
        api.load_model(other, "cpu", "onnx").encode(x)


def test_export_command_writes_graphs_that_code_like_torch(tmp_path: Path) -> None:
    """``export MODEL OUT --onnx`` copies the model and writes its graphs (no copy of the weights);
    a second export refuses to overwrite them without --force. The model: a small STFT encoder and
    Vocos decoder (the built-in architecture) with SF-DiVeQ stages in projections of the latent."""
    import torch

    from codec.config import ModelConfig, QuantizerConfig
    from codec.models.builder import build_codec
    from codec.models.weights import save_model

    config = ModelConfig(name="small-stft", encoder="stft", stem_stride=80, encoder_rates=(2, 2),
                         encoder_dim=16, encoder_depth=1, latent_dim=8, decoder="vocos", decoder_dim=16,
                         decoder_depth=1, decoder_rates=(2,), spectrum="cartesian",
                         quantizer=QuantizerConfig(kind="sfdiveq", n_codebooks=3, codebook_size=16,
                                                   codebook_dim=4))
    torch.manual_seed(0)
    source = tmp_path / "small.safetensors"
    save_model(build_codec(config), source, torch.float16)
    out = tmp_path / "exported.safetensors"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run([str(SCRIPT), "export", str(source), str(out), "--onnx"], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == source.read_bytes()
    graphs = [graph_path(out, role) for role in (ENCODER, DECODER)]
    assert all(g.is_file() and g.stat().st_size < out.stat().st_size + 200_000 for g in graphs)
    x = (0.1 * np.random.default_rng(0).standard_normal((2, 1, 12800))).astype(np.float32)
    onnx_model, torch_model = api.load_model(out, "cpu", "onnx"), api.load_model(out, "cpu", "torch")
    with torch.inference_mode():
        codes = torch_model.encode(torch.from_numpy(x)).numpy()
        audio = torch_model.decode(torch.from_numpy(codes)).numpy()
    assert (onnx_model.encode(x) == codes).mean() >= 0.99
    for n in (1, 2, 3):  # any number of stages
        with torch.inference_mode():
            expected = torch_model.decode(torch.from_numpy(codes[:, :n])).numpy()
        assert _relative_db(onnx_model.decode(codes[:, :n]), expected) < -60, n
    assert _relative_db(onnx_model.decode(codes), audio) < -60
    again = subprocess.run([str(SCRIPT), "export-onnx", str(out)], capture_output=True, text=True,
                           timeout=600, env=env)
    assert again.returncode == 2 and again.stderr.strip() == f"error: {graphs[0]} exists (use --force to overwrite)"


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_every_builtin_model_codes_alike_on_both_runtimes(path: Path) -> None:
    """The earlier defaults too (their streams decode with the light install): one pinned clip, all
    stages, every frame's codes equal or nearly, decoded audio within -60 dB."""
    audio, rate = sf.read(SPEECH[0], dtype="float32")
    x = audio[None, None, : rate * 2]
    onnx_model, torch_model = OnnxCodec(path, threads=1), api.load_model(path, "cpu", "torch")
    import torch

    with torch.inference_mode():
        codes = torch_model.encode(torch.from_numpy(x)).numpy()
        decoded = torch_model.decode(torch.from_numpy(codes)).numpy()
    assert (onnx_model.encode(x) == codes).all(axis=1).mean() >= 0.99
    assert _relative_db(onnx_model.decode(codes), decoded) < -60
