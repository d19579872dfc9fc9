"""DNSMOS (Microsoft's no-reference MOS predictor, P.835 SIG / BAK / OVRL and P.808) on decoded speech.

PESQ and STOI compare against the reference and reward what a regression loss does well (the right
envelope); DNSMOS listens to the decoded signal alone, as a user does, and hears what they hear:
tones in pauses, haze, smeared harmonics. The models are the ONNX files the ``speechmos`` package
ships inside its wheel (nothing downloads); this module only runs them on one thread with the
sessions built once per process, and keeps the interface to plain numpy in, floats out.

DNSMOS scores 16 kHz audio in 9 s windows (shorter clips are repeated up to one window by speechmos).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
#: The scores :func:`dnsmos` returns, in table order.
KEYS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


@functools.cache
def _scorer() -> Any:
    """speechmos' DNSMOS with its two ONNX sessions on one thread (built once per process)."""
    import onnxruntime as ort
    from speechmos import dnsmos as sm

    folder = os.path.join(os.path.dirname(os.path.abspath(sm.__file__)), "dnsmos_models")
    primary, p808 = os.path.join(folder, "sig_bak_ovr.onnx"), os.path.join(folder, "model_v8.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    scorer = sm.DNSMOS.__new__(sm.DNSMOS)
    scorer.primary_model_path = primary
    scorer.onnx_sess = ort.InferenceSession(primary, options, providers=["CPUExecutionProvider"])
    scorer.p808_onnx_sess = ort.InferenceSession(p808, options, providers=["CPUExecutionProvider"])
    return scorer


def dnsmos(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS of mono ``audio [T]`` at ``sample_rate`` (resampled to 16 kHz; clipped to [-1, 1]).

    Returns :data:`KEYS` -> score (1..5); NaN for an empty or silent signal. Raises
    ModuleNotFoundError when ``speechmos`` / ``onnxruntime`` are missing (the ``[train]`` extra).
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if sample_rate != SAMPLE_RATE and x.size:
        import soxr

        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ")
    if x.size < SAMPLE_RATE // 10 or not np.any(x):
        return dict.fromkeys(KEYS, math.nan)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    result = _scorer()(x, SAMPLE_RATE, False)
    return {"dnsmos_ovrl": float(result["ovrl_mos"]), "dnsmos_sig": float(result["sig_mos"]),
            "dnsmos_bak": float(result["bak_mos"]), "dnsmos_p808": float(result["p808_mos"])}
