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
