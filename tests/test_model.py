"""The codec model: shapes, save/load, and short training runs that catch collapse and non-refinement."""

from __future__ import annotations

import pytest
import torch

from codec.config import ModelConfig, QuantizerConfig
from codec.errors import ConfigError, ModelError
from codec.models.model import Codec
from codec.models.builder import build_codec
from codec.models.weights import load_model_file, save_model

from support import speechlike, stft_loss


def tiny_config(kind: str = "diveq", **quantizer) -> ModelConfig:
    q = dict(kind=kind, n_codebooks=4, codebook_size=64, codebook_dim=8, replace_interval=20)
    q.update(quantizer)
    return ModelConfig(encoder_dim=8, decoder_dim=64, latent_dim=8, quantizer=QuantizerConfig(**q))


def test_shapes_lengths_and_derived_facts():
    cfg = ModelConfig()
    assert cfg.hop_length == 320 and cfg.frame_rate == 50.0
    assert [cfg.bitrate(n) for n in (3, 6, 12)] == [1500.0, 3000.0, 6000.0]
    assert cfg.n_codebooks_for(6.0) == 12 and cfg.n_codebooks_for(1.5) == 3
    model = build_codec(tiny_config()).eval()
    for T in (1, 319, 320, 4001):
        audio = torch.randn(2, 1, T) * 0.1
        codes = model.encode(audio, 2)
        assert codes.shape == (2, 2, -(-T // 320))
        assert model.decode(codes, T).shape == (2, 1, T)
        assert model(audio).audio.shape == (2, 1, T)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="codebook_size"):
        QuantizerConfig(codebook_size=1000)
    with pytest.raises(ConfigError, match="codebook_dim"):
        build_codec(ModelConfig(latent_dim=8, quantizer=QuantizerConfig(codebook_dim=16)))


@pytest.mark.parametrize("kind", ["diveq", "sfdiveq", "ste"])
def test_save_load_round_trip_is_exact(tmp_path, kind):
    model = build_codec(tiny_config(kind))
    model.train()
    model(torch.randn(2, 1, 3200) * 0.1)  # data-driven init, counters move
    model.eval()
    path = tmp_path / "m.safetensors"
    digest = save_model(model, path)
    loaded = load_model_file(path)
    assert loaded.weights_hash == digest == model.weights_hash
    audio = torch.randn(1, 1, 8000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(audio).audio, loaded(audio).audio)
    assert (tmp_path / "m.json").is_file()


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model_file(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelError, match="not a diveq-codec model"):
        load_model_file(junk)
    path = tmp_path / "m.safetensors"
    save_model(build_codec(tiny_config()), path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a weight byte
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupted"):
        load_model_file(bad)


def _train(model: Codec, clips: torch.Tensor, steps: int, batch: int = 4, seed: int = 0) -> list[float]:
    """Train with an STFT loss on random crops of clips [N, T]; returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, betas=(0.8, 0.99))
    crop = 4000
    losses = []
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, clips.shape[0], (batch,), generator=gen)
        starts = torch.randint(0, clips.shape[1] - crop + 1, (batch,), generator=gen)
        x = torch.stack([clips[r, s:s + crop] for r, s in zip(rows.tolist(), starts.tolist())])[:, None]
        out = model(x)
        loss = stft_loss(out.audio, x) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("kind", ["diveq", "sfdiveq", "ste"])
def test_tiny_codec_overfits_one_second(kind):
    torch.manual_seed(0)
    model = build_codec(tiny_config(kind))
    clip = torch.from_numpy(speechlike(1.0, seed=1))[None]
    losses = _train(model, clip, steps=100)
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)  # a clear fall: at least 40 % in 100 steps


def test_short_run_uses_codes_refines_and_stays_bounded():
    """The collapse and non-refinement traps of TRAINING-NOTES.md, on a short DiVeQ run."""
    torch.manual_seed(0)
    model = build_codec(tiny_config("diveq"))
    clips = torch.stack([torch.from_numpy(speechlike(2.0, seed=s)) for s in range(6)])
    _train(model, clips, steps=120)
    model.quantizer.reset_usage()
    _train(model, clips, steps=10, seed=1)  # usage measured on the latest steps only
    usage = [s.usage for s in model.quantizer.usage_stats()]
    assert min(usage) > 0.15, f"codebook collapse: usage per stage {usage}"
    model.eval()
    x = clips[:, None, :16000]
    with torch.no_grad():
        pre_latent = model.encoder.block(x)
        assert pre_latent.pow(2).mean().sqrt() < 100, "encoder output must stay bounded"
        latent = model.encode_latent(x)
        codes = model.quantizer.encode(latent)
        errors = [(latent - model.quantizer.decode(codes[:, :n])).norm().item() for n in range(1, 5)]
    assert latent.norm().item() > errors[0]
    assert all(b < a for a, b in zip(errors, errors[1:])), f"residual must fall every stage: {errors}"
