"""Every encoder / decoder / head kind the builder knows: shapes, eval consistency, save and load."""

from __future__ import annotations

import pytest
import torch

from codec.config import ModelConfig, QuantizerConfig
from codec.models.builder import build_codec
from codec.models.decoder import SPECTRUM_POWER, decompress
from codec.models.weights import load_model_file, save_model

Q = QuantizerConfig(n_codebooks=3, codebook_size=16, codebook_dim=8, dropout=0.5)
KINDS = {
    "dac-polar": dict(),
    "dac-cartesian": dict(spectrum="cartesian"),
    "dac-conv": dict(head="conv"),
    "dac+vocos": dict(decoder="vocos", decoder_dim=32, decoder_depth=2, decoder_rates=(2,),
                      spectrum="cartesian"),
    "stft+vocos": dict(encoder="stft", stem_stride=80, encoder_rates=(2, 2), encoder_dim=32,
                       encoder_depth=1, decoder="vocos", decoder_dim=32, decoder_depth=2,
                       decoder_rates=(2,), spectrum="cartesian"),
    "stft+vocos-polar": dict(encoder="stft", stem_stride=160, encoder_rates=(2,), encoder_dim=32,
                             encoder_depth=1, decoder="vocos", decoder_dim=32, decoder_depth=1,
                             decoder_rates=(), spectrum="polar"),
}


def _config(kind: str) -> ModelConfig:
    base = dict(name=f"test-{kind}", encoder_dim=8, latent_dim=8, decoder_dim=32, quantizer=Q)
    return ModelConfig(**{**base, **KINDS[kind]})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_codes_and_decodes_with_consistent_shapes(kind, tmp_path):
    model = build_codec(_config(kind))
    assert model.hop_length == 320
    x = 0.1 * torch.randn(2, 1, 3000)  # not a multiple of the hop
    model.train()
    out = model(x)
    assert out.audio.shape == x.shape and out.codes.shape == (2, 3, 10)
    out.audio.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        codes = model.encode(x, 2)
        assert codes.shape == (2, 2, 10)
        torch.testing.assert_close(model.decode(codes, x.shape[-1]), model(x, 2).audio)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = load_model_file(path)
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(codes, x.shape[-1]), model.decode(codes, x.shape[-1]))


def test_decompress_inverts_the_power_compression():
    spec = torch.complex(torch.randn(100), torch.randn(100)) * 5
    magnitude = spec.abs()
    compressed = spec * magnitude.pow(SPECTRUM_POWER - 1)
    torch.testing.assert_close(torch.complex(*decompress(compressed.real, compressed.imag)), spec, rtol=1e-4,
                               atol=1e-5)


def test_impossible_combinations_are_config_errors():
    from codec.errors import ConfigError

    with pytest.raises(ConfigError, match="model.head"):
        ModelConfig(decoder="vocos", head="conv")
    with pytest.raises(ConfigError, match="model.spectrum"):
        ModelConfig(head="conv", spectrum="cartesian")


def test_float16_model_files_are_half_the_size_and_decode_alike(tmp_path):
    model = build_codec(_config("stft+vocos")).eval()
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_model(model, full)
    save_model(model, half, torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a, b = load_model_file(full), load_model_file(half)
    assert a.weights_hash != b.weights_hash  # streams name the exact weights
    assert all(p.dtype == torch.float32 for p in b.parameters())
    x = 0.1 * torch.randn(1, 1, 3200)
    with torch.no_grad():
        ya, yb = a.decode(a.encode(x)), b.decode(a.encode(x))
    assert float((ya - yb).norm() / ya.norm()) < 1e-2


def test_model_files_leave_out_training_only_state(tmp_path):
    from safetensors import safe_open

    model = build_codec(_config("dac-polar")).train()
    model(0.1 * torch.randn(2, 1, 3200))  # fills the stages' pools of recent inputs
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.endswith((".frames", ".frames_filled")) for k in keys)
    assert any(k.endswith(".codebook") for k in keys)
    load_model_file(path)  # loads without them
