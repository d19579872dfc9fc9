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
#: Also recorded (since issue 20; entries before it lack them) and re-checked for the shipped model:
#: DNSMOS OVRL (no reference) and the largest added stationary tone (dB, over all clips together).
RECORDED_METRICS = ("dnsmos_ovrl", "tone_db")
#: How far a re-measurement may fall below the recorded value (float rounding across machines); for
#: tone_db, how far it may rise above it.
TOLERANCE = {"pesq_wb": 0.05, "stoi": 0.01, "si_sdr": 0.5, "dnsmos_ovrl": 0.05, "tone_db": 1.0}


def score_clips(model: Model, paths: Sequence[Path], kbps: Sequence[float] = PINNED_KBPS
                ) -> dict[str, dict[str, float]]:
    """Mean scores over ``paths`` at each bitrate: ``{"6": {"pesq_wb": ..., "stoi": ..., "si_sdr": ...,
    "dnsmos_ovrl": ..., "tone_db": ...}}`` (tone_db: of all clips together, aligned).

    Each clip goes through ``codec.api.compress`` / ``decompress`` (what a user runs) at the model's
    sample rate and is scored with ``codec.eval.metrics.score`` and ``codec.eval.dnsmos``.
    """
    import soundfile as sf

    from .. import api
    from . import metrics
    from .dnsmos import dnsmos
    from .tones import added_tones

    out: dict[str, dict[str, float]] = {}
    for rate in kbps:
        values: dict[str, list[float]] = {m: [] for m in PINNED_METRICS + ("dnsmos_ovrl",)}
        refs, degs = [], []
        for path in paths:
            audio, sr = sf.read(path, dtype="float32", always_2d=True)
            data = api.compress(model, audio.T, sr, bitrate_kbps=rate)
            decoded, _ = api.decompress(data, model)
            ref, deg = audio[:, 0].astype(np.float64), decoded[0].astype(np.float64)
            scores = metrics.score(ref, deg, sr)
            for m in PINNED_METRICS:
                values[m].append(scores[m])
            values["dnsmos_ovrl"].append(dnsmos(deg, sr)["dnsmos_ovrl"])
            ref_a, deg_a = metrics.align(ref, deg, max_shift=int(0.05 * sr))
            refs.append(ref_a)
            degs.append(deg_a)
        out[f"{rate:g}"] = {m: round(float(np.mean(v)), 4) for m, v in values.items()}
        out[f"{rate:g}"]["tone_db"] = round(added_tones(np.concatenate(refs), np.concatenate(degs), sr).tone_db, 2)
    return out
