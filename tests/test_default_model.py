"""The built-in default model ships with the package and codes speech with no model argument."""

from __future__ import annotations

import numpy as np
import pytest

from codec import api
from support import speechlike


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_builtin_model_is_installed_and_serves_the_advertised_bitrates(runtime):
    model = api.load_model(None, device="cpu", runtime=runtime)
    from codec.models.model import Codec

    assert isinstance(model, Codec) == (runtime == "torch")
    cfg = model.config
    assert cfg.sample_rate == 16000 and cfg.frame_rate == 50.0
    assert [cfg.bitrate(n) for n in (3, 6, 12)] == [1500.0, 3000.0, 6000.0]
    assert model.weights_hash is not None


def test_builtin_model_round_trip_restores_rate_length_and_channels():
    model = api.load_model(None, device="cpu")
    audio = np.stack([speechlike(1.3, 22050, seed=3), speechlike(1.3, 22050, seed=4)])
    for kbps in (1.5, 6.0):
        data = api.compress(model, audio, 22050, bitrate_kbps=kbps)
        decoded, rate = api.decompress(data, model)
        assert rate == 22050 and decoded.shape == audio.shape
        assert np.isfinite(decoded).all() and np.abs(decoded).max() > 1e-3


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_builtin_model_scores_what_was_recorded_and_no_model_scored_worse_before_it(runtime):
    import json
    from pathlib import Path

    from codec.eval.pinned import PINNED_METRICS, RECORDED_METRICS, TOLERANCE, score_clips

    data = Path(__file__).parent / "data"
    history = json.loads((data / "model_quality.json").read_text())["models"]
    model = api.load_model(None, device="cpu", runtime=runtime)
    entries = [m for m in history if m["sha256"] == model.weights_hash]
    assert entries, "the built-in model has no pinned scores: run scripts/pin_quality.py"
    recorded = entries[0]["scores"]
    measured = score_clips(model, sorted((data / "speech").glob("*.flac")))
    for kbps, scores in recorded.items():
        for metric in PINNED_METRICS:
            assert measured[kbps][metric] >= scores[metric] - TOLERANCE[metric], (kbps, metric, measured)
        if "dnsmos_ovrl" in scores:
            assert measured[kbps]["dnsmos_ovrl"] >= scores["dnsmos_ovrl"] - TOLERANCE["dnsmos_ovrl"]
        if "tone_db" in scores:
            assert measured[kbps]["tone_db"] <= scores["tone_db"] + TOLERANCE["tone_db"]
    assert set(RECORDED_METRICS) <= set(measured["6"])
    # a new built-in model may not score worse than one it replaced (6 kbps)
    for i, later in enumerate(history):
        for earlier in history[:i]:
            for metric in PINNED_METRICS:
                assert later["scores"]["6"][metric] >= earlier["scores"]["6"][metric] - TOLERANCE[metric], \
                    (later["name"], earlier["name"], metric)


def test_builtin_model_every_stage_refines_and_bits_buy_quality():
    """Each of the 12 stages lowers the latent's residual on real (TTS) speech, and the recorded
    scores rise with the bitrate: the later stages carry information the decoder uses."""
    import json
    from pathlib import Path

    import soundfile as sf
    import torch

    data = Path(__file__).parent / "data"
    model = api.load_model(None, device="cpu", runtime="torch")
    n_stages = model.config.quantizer.n_codebooks
    for path in sorted((data / "speech").glob("*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        assert rate == model.config.sample_rate
        with torch.no_grad():
            latent = model.encode_latent(torch.from_numpy(audio)[None, None])
            codes = model.quantizer.encode(latent)
            errors = [(latent - model.quantizer.decode(codes[:, :n])).norm().item()
                      for n in range(1, n_stages + 1)]
        assert errors[0] < latent.norm().item(), path.name
        assert all(b < a for a, b in zip(errors, errors[1:])), (path.name, errors)
        assert errors[-1] < 0.5 * errors[0], (path.name, errors)
    recorded = next(m for m in json.loads((data / "model_quality.json").read_text())["models"]
                    if m["sha256"] == model.weights_hash)["scores"]
    for metric in ("pesq_wb", "stoi", "si_sdr"):
        assert recorded["1.5"][metric] < recorded["3"][metric] < recorded["6"][metric], metric
