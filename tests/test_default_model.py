"""The built-in default model ships with the package and codes speech with no model argument."""

from __future__ import annotations

import numpy as np

from codec import api
from support import speechlike


def test_builtin_model_is_installed_and_serves_the_advertised_bitrates():
    model = api.load_model(None, device="cpu")
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


def test_builtin_model_scores_what_was_recorded_and_no_model_scored_worse_before_it():
    import json
    from pathlib import Path

    from codec.eval.pinned import PINNED_METRICS, TOLERANCE, score_clips

    data = Path(__file__).parent / "data"
    history = json.loads((data / "model_quality.json").read_text())["models"]
    model = api.load_model(None, device="cpu")
    entries = [m for m in history if m["sha256"] == model.weights_hash]
    assert entries, "the built-in model has no pinned scores: run scripts/pin_quality.py"
    recorded = entries[0]["scores"]
    measured = score_clips(model, sorted((data / "speech").glob("*.flac")))
    for kbps, scores in recorded.items():
        for metric in PINNED_METRICS:
            assert measured[kbps][metric] >= scores[metric] - TOLERANCE[metric], (kbps, metric, measured)
    # a new built-in model may not score worse than one it replaced (6 kbps)
    for i, later in enumerate(history):
        for earlier in history[:i]:
            for metric in PINNED_METRICS:
                assert later["scores"]["6"][metric] >= earlier["scores"]["6"][metric] - TOLERANCE[metric], \
                    (later["name"], earlier["name"], metric)
