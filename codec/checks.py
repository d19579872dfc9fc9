"""Checking what callers pass in: audio arrays, sample rates, bitrates and stage counts.

Every bad argument raises the project's own error with a message naming it: UsageError for a value
of the wrong type or out of range (``sample_rate="16000"``, ``bitrate_kbps=1e308``), AudioError for
audio that cannot be coded (complex or boolean samples, NaN, more than 64 channels). Only numpy here
(torch tensors are converted without importing torch), so the light commands can use it too.

**Audio arrays** are ``[C, T]`` (C channels, T samples) or ``[T]`` for mono:

- float arrays (float16/32/64, torch float/bfloat16 tensors) are samples, nominally in [-1, 1]; any
  finite float32 amplitude is accepted (the encoder normalises loudness);
- integer arrays are PCM scaled as soundfile reads it: a signed dtype of b bits is divided by
  2^(b-1) (int16 / 32768, int32 / 2^31), uint8 is 8-bit WAV's offset binary, (x - 128) / 128;
- complex, boolean, other unsigned, object and string arrays are refused;
- a 2-D array is always read as ``[C, T]``; as at most 64 channels can be coded, an array whose first
  axis is longer than 64 is refused with a hint that it is probably ``[T, C]`` (soundfile's layout):
  pass ``audio.T``. A ``[T, C]`` array with T <= 64 samples cannot be told apart and is read as
  ``[C, T]``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .config import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from .errors import AudioError, UsageError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def check_integer(value: Any, name: str) -> int:
    """``value`` as an int: Python or numpy integers only (not bool, float or str); else UsageError."""
    if isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{name} must be an integer, got a boolean ({value})")
    try:
        return operator.index(value)
    except TypeError:
        raise UsageError(f"{name} must be an integer, got {_type_name(value)} {value!r}") from None


def check_real(value: Any, name: str) -> float:
    """``value`` as a finite float: Python or numpy reals only (not bool or str); else UsageError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"{name} must be a number, got {_type_name(value)} {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise UsageError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    return number


def check_sample_rate(value: Any, where: str = "audio") -> int:
    """A sample rate in Hz: an integer (UsageError otherwise) in 8000..96000 (AudioError otherwise)."""
    rate = check_integer(value, "sample_rate")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{where}: sample rate {rate} Hz is outside "
                         f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return rate


def check_channels(channels: int, where: str = "audio") -> int:
    """1..64 channels (what a stream can hold); AudioError otherwise."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{where} has {channels} channels; 1..{MAX_CHANNELS} channels can be coded")
    return channels


def choose_stages(bitrate_kbps: Any, n_codebooks: Any, stage_kbps: float, max_stages: int,
                  what: str = "the model") -> int:
    """Stages to keep: ``n_codebooks``, or the most whose bitrate (``stage_kbps`` each, per channel)
    fits ``bitrate_kbps``, or ``max_stages`` when both are None.

    UsageError for both given, a non-integer ``n_codebooks`` or one outside 1..max_stages, a bitrate
    that is not a positive finite number, below one stage, or above ``max_stages`` stages (refused
    rather than silently clamped: the caller asked for more than ``what`` can give).
    """
    if bitrate_kbps is not None and n_codebooks is not None:
        raise UsageError("give either a bitrate or a number of codebooks, not both")
    if n_codebooks is not None:
        n = check_integer(n_codebooks, "n_codebooks")
        if not 1 <= n <= max_stages:
            raise UsageError(f"n_codebooks must be in 1..{max_stages} for {what}, got {n}")
        return n
    if bitrate_kbps is None:
        return max_stages
    kbps = check_real(bitrate_kbps, "bitrate")
    if kbps <= 0:
        raise UsageError(f"bitrate must be a positive number of kbps, got {bitrate_kbps!r}")
    most = max_stages * stage_kbps
    if kbps > most * (1 + 1e-9):
        raise UsageError(f"bitrate {kbps:g} kbps is above the {most:g} kbps maximum of {what} "
                         f"({max_stages} stages of {stage_kbps:g} kbps per channel): ask for "
                         f"{most:g} or less")
    n = int(math.floor(kbps / stage_kbps + 1e-9))
    if n < 1:
        raise UsageError(f"bitrate {kbps:g} kbps is below one stage ({stage_kbps:g} kbps)")
    return n


def _from_tensor(audio: Any) -> np.ndarray:
    """A torch tensor -> numpy without importing torch: floating tensors (bfloat16 and float16
    included) become float32; others keep their dtype."""
    tensor = audio.detach()
    if getattr(tensor, "is_complex", lambda: False)():
        raise AudioError(f"audio must be real-valued, got a complex tensor ({tensor.dtype})")
    device = getattr(getattr(tensor, "device", None), "type", None)
    if device == "meta":
        raise UsageError("audio is a tensor on the meta device, which holds no samples: pass a tensor "
                         "with data (on the CPU or a GPU)")
    try:
        if tensor.is_floating_point():
            tensor = tensor.float()
        return tensor.cpu().numpy()
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
        raise UsageError(f"audio is a tensor that cannot be read as samples ({device} device, "
                         f"{tensor.dtype}): {' '.join(str(exc).split())}") from None


def _pcm_to_float(x: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1), scaled as soundfile does."""
    bits = x.dtype.itemsize * 8
    if x.dtype.kind == "u":
        if bits != 8:
            raise AudioError(f"audio of dtype {x.dtype} is not a PCM format: use signed integers, "
                             "uint8 (8-bit WAV) or floats")
        return ((x.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    return (x.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32)


def as_audio(audio: Any) -> np.ndarray:
    """The caller's audio as float32 ``[C, T]`` (rules in the module docstring). AudioError for
    samples that cannot be coded, UsageError for something that is not an array at all."""
    if hasattr(audio, "detach") and hasattr(audio, "is_floating_point"):
        audio = _from_tensor(audio)
    if audio is None or isinstance(audio, (str, bytes, dict)):
        raise UsageError(f"audio must be an array [C, T] or [T], got {_type_name(audio)}")
    try:
        x = np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"audio must be an array [C, T] or [T]: {exc}") from None
    kind = x.dtype.kind
    if kind == "c":
        raise AudioError(f"audio must be real-valued, got complex samples ({x.dtype})")
    if kind == "b":
        raise AudioError("audio must hold samples (float, or integer PCM), got booleans")
    if kind in "iu":
        x = _pcm_to_float(x)
    elif kind == "f":
        if x.dtype.itemsize > 4 and x.size:
            big = np.abs(x[np.isfinite(x)]).max(initial=0.0)
            if big > _FLOAT32_MAX:
                raise AudioError(f"audio holds a sample of magnitude {big:.3g}, beyond float32's "
                                 f"{_FLOAT32_MAX:.3g}")
        x = x.astype(np.float32, copy=False)
    else:
        raise UsageError(f"audio must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise AudioError(f"audio must be [C, T] (or [T] for mono), got shape {tuple(x.shape)}")
    if x.shape[0] > MAX_CHANNELS:
        hint = (f"; it looks like [T, C]: pass audio.T ([C, T] = {tuple(x.shape[::-1])})"
                if x.shape[1] <= MAX_CHANNELS else "")
        raise AudioError(f"audio of shape {tuple(x.shape)} has {x.shape[0]} channels as [C, T]; "
                         f"1..{MAX_CHANNELS} can be coded{hint}")
    check_channels(x.shape[0])
    if not np.isfinite(x).all():
        raise AudioError("audio holds non-finite samples (NaN or Inf)")
    return np.ascontiguousarray(x)


__all__ = ["MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "check_integer", "check_real", "check_sample_rate",
           "check_channels", "choose_stages", "as_audio"]
