"""The causal model kind: causal layers that also run frame by frame, the causal STFT encoder and Vocos
decoder (same parameters as the offline kind), its config, hash, file coding and training fork.

Tiny random-weight models keep these fast; quality is not tested here (tests/test_realtime.py runs
the shipped default's causal conversion).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codec import api
from codec.models.builder import build_codec
from codec.models.causal_encoder import CausalSTFTEncoder
from codec.config import ModelConfig, from_dict, to_dict
from codec.errors import ConfigError, ModelError
from codec.nn.causal import (
    CausalConv1d,
    CausalConvNeXtBlock,
    CausalConvTranspose1d,
    CausalWNConv1d,
)
from codec.runtime.stepper import FrameDecoder, FrameEncoder, check_causal
from codec.models.weights import load_model_file, save_model, weights_hash, with_timing
from support import tiny_causal_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Frame-sized tensors: one thread is several times faster than two on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _chunks(total: int, rng: np.random.Generator, most: int) -> list[tuple[int, int]]:
    out, start = [], 0
    while start < total:
        size = int(rng.integers(1, most + 1))
        out.append((start, min(total, start + size)))
        start += size
    return out


# ------------------------------------------------------------------------------------------ layers

@pytest.mark.parametrize("stride", [1, 2, 3])
def test_causal_conv_steps_equal_forward(stride: int) -> None:
    conv = CausalConv1d(5, 7, kernel_size=2 * stride + 1, stride=stride)
    depthwise = CausalConv1d(5, 5, kernel_size=7, groups=5)
    x = torch.randn(2, 5, 12 * stride)
    rng = np.random.default_rng(stride)
    for layer in (conv, depthwise):
        state, pieces = layer.initial_state(x), []
        s = layer.stride[0]
        for a, b in _chunks(x.shape[-1] // s, rng, 4):
            y, state = layer.step(x[..., a * s:b * s].transpose(1, 2), state)  # steps are time-major
            pieces.append(y)
        torch.testing.assert_close(torch.cat(pieces, 1).transpose(1, 2), layer(x), rtol=0, atol=1e-5)


def test_causal_conv_sees_no_future() -> None:
    conv = CausalConv1d(3, 4, kernel_size=4, stride=2)
    x = torch.randn(1, 3, 20)
    y = conv(x)
    x2 = x.clone()
    x2[..., 11:] += 1.0  # frames from 11 on: output frames t with 2t + 1 < 11 are unchanged
    y2 = conv(x2)
    assert torch.equal(y[..., :5], y2[..., :5]) and not torch.equal(y[..., 5], y2[..., 5])


def test_causal_transposed_conv_and_convnext_and_wn_steps_equal_forward() -> None:
    up = CausalConvTranspose1d(6, 4, kernel_size=6, stride=3)
    block = CausalConvNeXtBlock(6)
    wn = CausalWNConv1d(6, 9, kernel_size=3)
    x = torch.randn(2, 6, 15)
    rng = np.random.default_rng(1)
    for layer in (up, block, wn):
        state, pieces = layer.initial_state(x), []
        for a, b in _chunks(15, rng, 5):
            y, state = layer.step(x[..., a:b].transpose(1, 2), state)
            pieces.append(y)
        torch.testing.assert_close(torch.cat(pieces, 1).transpose(1, 2), layer(x), rtol=0, atol=1e-5)
    # the upsampler: output frame t is complete once input frame t // 3 is in
    x2 = x.clone()
    x2[..., 7:] += 1.0
    assert torch.equal(up(x)[..., :21], up(x2)[..., :21]) and not torch.equal(up(x)[..., 21], up(x2)[..., 21])
    # the weight-normalised step keeps its normalised weight only until the weights change
    with torch.no_grad():
        wn.weight_g.mul_(2.0)
    state = wn.initial_state(x)
    torch.testing.assert_close(wn.step(x.transpose(1, 2), state)[0].transpose(1, 2), wn(x), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------ models

def test_causal_kind_has_the_offline_kinds_parameters() -> None:
    offline = load_model_file(ROOT / "codec" / "pretrained" / "default.safetensors").config
    causal = dataclasses.replace(offline, causal=True, lookahead=3)
    a, b = build_codec(offline).state_dict(), build_codec(causal).state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)


@pytest.mark.parametrize("lookahead,encoder_lookahead", [(0, 0), (1, 0), (2, 0), (3, 0), (2, 1), (0, 2)])
def test_frame_by_frame_equals_the_whole_signal(lookahead: int, encoder_lookahead: int) -> None:
    torch.manual_seed(lookahead)
    model = build_codec(tiny_causal_config(lookahead, encoder_lookahead=encoder_lookahead)).eval()
    hop, lead = model.config.hop_length, encoder_lookahead * model.config.stem_stride
    x = 0.1 * torch.randn(2, 1, 37 * hop)
    with torch.no_grad():
        latent = model.encode_latent(x)
        codes = model.quantizer.encode(latent)
        # the encoder's steps give the whole signal's latent (up to float rounding)
        encoder = cast(CausalSTFTEncoder, model.encoder)
        state = encoder.initial_state(2)
        encoder.prefill(x[:, 0, :lead], state)
        padded = F.pad(x[:, 0, lead:], (0, lead))
        steps = [encoder.step(padded[:, i * hop:(i + 1) * hop], state) for i in range(37)]
    torch.testing.assert_close(torch.cat(steps, -1), latent, rtol=0, atol=1e-5)
    frames = FrameEncoder(model, n_codebooks=3, batch=2)
    decoder = FrameDecoder(model, batch=2)
    rng = np.random.default_rng(lookahead)
    got_codes, got_audio = [], []
    for a, b in _chunks(37, rng, 6):
        c = frames.encode(x[:, 0, a * hop:b * hop])
        assert c.shape[-1] == b - a - (lead > 0 and a == 0)  # a look-ahead holds the newest frame
        got_codes.append(c)
        got_audio.append(decoder.decode(c))
    got_codes.append(frames.finish())
    got_audio.append(decoder.decode(got_codes[-1]))
    got_audio.append(decoder.finish())
    got = torch.cat(got_codes, -1)
    assert frames.frames == 37 and frames.finish().shape[-1] == 0
    # the codes do not depend on the chunking, and are the whole signal's but for near-ties that
    # float rounding tips (none in most draws)
    whole = FrameEncoder(model, n_codebooks=3, batch=2)
    assert torch.equal(torch.cat([whole.encode(x[:, 0]), whole.finish()], -1), got)
    assert (got == codes).float().mean() > 0.98
    assert decoder.delay == lookahead * model.config.head_hop
    with torch.no_grad():
        audio = model.decode(got)
    torch.testing.assert_close(torch.cat(got_audio, -1), audio[:, 0], rtol=0, atol=1e-5)


def test_an_encoder_lookahead_codes_inputs_of_any_length() -> None:
    """Inputs shorter than the look-ahead, than a frame, or a frame and a bit: the frames owed come
    out of finish(), and they are the whole signal's."""
    torch.manual_seed(5)
    model = build_codec(tiny_causal_config(lookahead=2, encoder_lookahead=1)).eval()
    for n in (1, 17, 40, 79, 80, 81, 121, 200):
        x = 0.1 * torch.randn(1, n)
        frames = FrameEncoder(model, n_codebooks=3)
        got = torch.cat([frames.encode(x[:, :n // 2]), frames.encode(x[:, n // 2:]), frames.finish()], -1)
        assert got.shape[-1] == -(-n // 80) == frames.frames
        with torch.no_grad():
            assert torch.equal(got, model.encode(x[:, None])), n


@pytest.mark.parametrize("encoder_lookahead", [0, 1])
def test_the_causal_model_sees_no_future(encoder_lookahead: int) -> None:
    model = build_codec(tiny_causal_config(lookahead=2, encoder_lookahead=encoder_lookahead)).eval()
    hop, delay = model.config.hop_length, model.decoder.delay
    lead = encoder_lookahead * model.config.stem_stride
    x = 0.1 * torch.randn(1, 1, 30 * hop)
    x2 = x.clone()
    x2[..., 12 * hop + lead:] = 0.1 * torch.randn(18 * hop - lead)  # a new future from frame 12's lead on
    with torch.no_grad():
        la, lb = model.encode_latent(x), model.encode_latent(x2)
        assert torch.equal(la[..., :12], lb[..., :12]) and not torch.equal(la[..., 12], lb[..., 12])
        if lead:  # frame 11 reads the lead samples after it
            x3 = x.clone()
            x3[..., 12 * hop:] = 0.1 * torch.randn(18 * hop)
            assert not torch.equal(model.encode_latent(x3)[..., 11], la[..., 11])
        qa = model.quantizer.decode(model.quantizer.encode(la))
        qb = qa.clone()
        qb[..., 12:] += 1.0  # another latent from frame 12 on
        ya, yb = model.decoder(qa), model.decoder(qb)
    # samples before the end of frame 11 minus the look-ahead depend on frames up to 11 only (the
    # next window starts there, at its zero: the sample after it is the first that changes)
    cut = 12 * hop - delay
    assert torch.equal(ya[..., :cut + 1], yb[..., :cut + 1]) and not torch.equal(ya[..., cut + 1], yb[..., cut + 1])


def test_config_rules_and_older_configs_load_as_offline() -> None:
    with pytest.raises(ConfigError, match="model.causal"):
        ModelConfig(causal=True)  # the default encoder is dac
    with pytest.raises(ConfigError, match="model.lookahead"):
        tiny_causal_config(lookahead=4)
    with pytest.raises(ConfigError, match="model.lookahead"):
        dataclasses.replace(tiny_causal_config(causal=False), lookahead=1)
    data = to_dict(tiny_causal_config(causal=False))
    del data["causal"], data["lookahead"]  # a model file written before the causal kind existed
    config = from_dict(ModelConfig, data)
    assert not config.causal and config.lookahead == 0 and config.latency_samples == 0
    causal = tiny_causal_config(lookahead=3)
    assert causal.latency_samples == 80 + 3 * 40
    assert tiny_causal_config(lookahead=2, encoder_lookahead=1).latency_samples == 80 + 40 + 2 * 40
    with pytest.raises(ConfigError, match="model.encoder_lookahead"):
        tiny_causal_config(encoder_lookahead=3)
    with pytest.raises(ConfigError, match="model.encoder_lookahead"):
        dataclasses.replace(tiny_causal_config(causal=False), encoder_lookahead=1)
    with pytest.raises(ModelError, match="offline model"):
        check_causal(build_codec(config))


def test_hash_names_the_timing_and_files_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    offline = build_codec(tiny_causal_config(causal=False)).eval()
    save_model(offline, tmp_path / "offline.safetensors")
    loaded = load_model_file(tmp_path / "offline.safetensors")
    causal = with_timing(loaded, causal=True, lookahead=2)
    assert causal.config.causal and causal.weights_hash != loaded.weights_hash
    assert all(torch.equal(a, b) for a, b in zip(causal.state_dict().values(), loaded.state_dict().values(), strict=True))
    assert weights_hash(loaded.state_dict()) == weights_hash(loaded.state_dict(), loaded.config)
    save_model(causal, tmp_path / "causal.safetensors")
    again = load_model_file(tmp_path / "causal.safetensors")
    assert again.config.causal and again.config.lookahead == 2
    assert again.weights_hash == causal.weights_hash
    # the encoder's look-ahead is timing too: in the hash and in the file
    ahead = with_timing(loaded, causal=True, lookahead=2, encoder_lookahead=1)
    assert ahead.weights_hash not in (causal.weights_hash, loaded.weights_hash)
    save_model(ahead, tmp_path / "ahead.safetensors")
    assert load_model_file(tmp_path / "ahead.safetensors").config.encoder_lookahead == 1
    # a stream of the causal model is not decoded by the offline one
    x = (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    data = api.compress(again, x, 16000)
    with pytest.raises(Exception, match="made by another model"):
        api.decompress(data, loaded)


@pytest.mark.parametrize("encoder_lookahead", [0, 1])
def test_files_of_a_causal_model_are_coded_frame_by_frame(tmp_path: Path, encoder_lookahead: int) -> None:
    """Windows are not needed (and would change nothing): the file path codes the whole signal frame
    by frame, so its codes equal the whole-signal codes, whatever the window."""
    torch.manual_seed(1)
    save_model(build_codec(tiny_causal_config(encoder_lookahead=encoder_lookahead)), tmp_path / "m.safetensors")
    model = api.load_model(tmp_path / "m.safetensors", device="cpu")
    x = (0.1 * np.random.default_rng(2).standard_normal((2, 8000 + 17))).astype(np.float32)
    from codec.format.bitstream import decode_stream

    whole = api.compress(model, x, 16000)
    small = api.compress(model, x, 16000, window=7, context=0)
    header, codes = decode_stream(whole)
    assert np.array_equal(codes, decode_stream(small)[1])
    gained = torch.from_numpy(x * np.asarray(header.gains, dtype=np.float32)[:, None])[:, None]
    with torch.no_grad():
        assert np.array_equal(codes, model.encode(gained).numpy())  # the batched whole-signal codes
        expected = model.decode(torch.from_numpy(codes), length=x.shape[1])[:, 0].numpy()
    audio, rate = api.decompress(whole, model)
    assert rate == 16000 and audio.shape == x.shape
    np.testing.assert_allclose(audio * np.asarray(header.gains)[:, None], expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------- training

def test_a_causal_run_starts_from_offline_weights_or_forks_an_offline_run(tmp_path: Path) -> None:
    from codec.train import loop
    from codec.train.export import export_model
    from codec.train.recipe import load_recipe
    from codec.train.state import load_initial_weights

    debug = load_recipe(ROOT / "recipes" / "debug.toml")
    offline = debug.replace(model=dataclasses.replace(
        tiny_causal_config(causal=False), quantizer=debug.model.quantizer))
    run = tmp_path / "offline"
    loop.train(offline, run, progress=False, max_steps=2)
    exported = export_model(run, tmp_path / "offline.safetensors")
    causal = offline.replace(model=dataclasses.replace(offline.model, causal=True, lookahead=3))
    model = build_codec(causal.model)
    load_initial_weights(model, exported, causal)  # same names and shapes, kernels kept in time
    source = load_model_file(exported).state_dict()
    assert model.state_dict().keys() == source.keys()
    moved = [k for k in source if not torch.equal(model.state_dict()[k], source[k])]
    assert moved and all(k.endswith(("weight", "weight_v", "weight_g")) for k in moved)
    result = loop.train(causal, tmp_path / "fresh", progress=False, max_steps=1, init_from=exported)
    assert result.step == 1
    # a fork: the offline run's checkpoint continued with the causal timing
    result = loop.train(causal, run, progress=False, max_steps=3, resume=True)
    assert result.step == 3
    forked = export_model(run, tmp_path / "forked.safetensors")
    assert load_model_file(forked).config.causal


def test_the_causal_recipe_is_the_default_recipe_plus_timing() -> None:
    from codec.train.recipe import load_recipe

    # it starts from the shipped weights, as the continued default run does
    default = load_recipe(ROOT / "recipes" / "speech16k-stft-continue.toml")
    causal = load_recipe(ROOT / "recipes" / "speech16k-stft-causal.toml")
    assert causal.model.causal and causal.model.latency_samples <= 0.050 * causal.model.sample_rate
    same = dataclasses.replace(causal.model, causal=False, lookahead=0, encoder_lookahead=0,
                               name=default.model.name)
    assert same == default.model
    assert causal.replace(model=default.model) == default
