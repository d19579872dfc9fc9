"""The built-in model's quality, pinned on the short speech clips the repository ships.

``tests/data/speech/*.flac`` (made by ``scripts/make_test_speech.py``) are coded and decoded through
the public API at 1.5, 3 and 6 kbps and scored (PESQ-WB, STOI, SI-SDR). ``tests/data/model_quality.json``
records the scores of every model that was the built-in default, in order; ``scripts/pin_quality.py``
appends the new one when a model is exported, and ``tests/test_default_model.py`` checks that the
shipped model still scores what was recorded and that no model scored worse than an earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..api import Model

PINNED_KBPS = (1.5, 3.0, 6.0)
PINNED_METRICS = ("pesq_wb", "stoi", "si_sdr")
#: How far a re-measurement may fall below the recorded value (float rounding across machines).
TOLERANCE = {"pesq_wb": 0.05, "stoi": 0.01, "si_sdr": 0.5}


def score_clips(model: Model, paths: Sequence[Path], kbps: Sequence[float] = PINNED_KBPS
                ) -> dict[str, dict[str, float]]:
    """Mean scores over ``paths`` at each bitrate: ``{"6": {"pesq_wb": ..., "stoi": ..., "si_sdr": ...}}``.

    Each clip goes through ``codec.api.compress`` / ``decompress`` (what a user runs) at the model's
    sample rate and is scored with ``codec.eval.metrics.score``.
    """
    import soundfile as sf

    from .. import api
    from . import metrics

    out: dict[str, dict[str, float]] = {}
    for rate in kbps:
        values: dict[str, list[float]] = {m: [] for m in PINNED_METRICS}
        for path in paths:
            audio, sr = sf.read(path, dtype="float32", always_2d=True)
            data = api.compress(model, audio.T, sr, bitrate_kbps=rate)
            decoded, _ = api.decompress(data, model)
            scores = metrics.score(audio[:, 0].astype(np.float64), decoded[0].astype(np.float64), sr)
            for m in PINNED_METRICS:
                values[m].append(scores[m])
        out[f"{rate:g}"] = {m: round(float(np.mean(v)), 4) for m, v in values.items()}
    return out
