"""Saving and loading models: safetensors weights with the JSON config in the file's metadata,
a JSON sidecar for people, and a sha256 content hash checked on every load. Loading is strict and
never unpickles anything.

A model file holds what inference needs: training-only state (each codebook stage's pool of recent
inputs, :data:`TRAINING_ONLY_SUFFIXES`) is left out, and may be absent on load. Floating-point weights
can be stored as float16 (``dtype``), which halves the file; they are cast back to float32 on load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig, to_dict
from ..errors import ModelError
from ..io.fileio import atomic_output
from .builder import build_codec
from .model import Codec
from .modelfile import FORMAT, FORMAT_VERSION, model_config, read_model_file, timing_suffix

#: State-dict keys ending like this are training-only buffers (a stage's pool of recent inputs).
TRAINING_ONLY_SUFFIXES = (".frames", ".frames_filled")
_FLOAT16_MAX = 65504.0


def weights_hash(state: dict[str, torch.Tensor], config: ModelConfig | None = None) -> str:
    """sha256 hex over every tensor's name, dtype, shape and bytes, in name order; for a causal
    ``config`` also over its timing (``causal``, ``lookahead``, ``encoder_lookahead``), so that a causal model made from an
    offline model's weights is not taken for it (streams name their model by this hash)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(timing_suffix(config))
    return h.hexdigest()


def _state(model: Codec, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The state to store: training-only buffers left out, floating tensors in ``dtype`` if given."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(TRAINING_ONLY_SUFFIXES):
            continue
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            if dtype == torch.float16 and value.numel() and float(value.abs().max()) > _FLOAT16_MAX:
                raise ModelError(f"{key} holds values beyond float16's range; save it as float32")
            value = value.to(dtype)
        state[key] = value.contiguous()
    return state


def model_card(model: Codec, digest: str) -> dict[str, Any]:
    """The human-readable description written next to the weights."""
    cfg = model.config
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": cfg.name,
        "weights_sha256": digest, "sample_rate": cfg.sample_rate, "frame_rate": cfg.frame_rate,
        "bitrates_kbps": [round(cfg.bitrate(n) / 1000, 3) for n in range(1, cfg.n_codebooks + 1)],
        "parameters": sum(p.numel() for p in model.parameters()), "config": to_dict(cfg),
    }


def save_model(model: Codec, path: str | Path, dtype: torch.dtype | None = None) -> str:
    """Write ``path`` (.safetensors) and ``path`` with suffix .json atomically; returns the hash.

    dtype: store floating-point tensors in this dtype (e.g. ``torch.float16``); None keeps them.
    Sets ``model.weights_hash`` (the hash of the stored tensors).
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = _state(model, dtype)
    digest = weights_hash(state, model.config)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "config": json.dumps(_stored_config(model.config)), "weights_sha256": digest}
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, writer in ((path, lambda p: save_file(state, str(p), metadata=meta)),
                           (path.with_suffix(".json"),
                            lambda p: Path(p).write_text(json.dumps(model_card(model, digest), indent=2)))):
        with atomic_output(target, force=True) as tmp:
            writer(tmp)
    model.weights_hash = digest
    return digest


def read_config(path: str | Path) -> tuple[ModelConfig, str]:
    """(config, recorded hash) from a model file's metadata, without loading the weights
    (:mod:`codec.models.modelfile`, which reads it without torch)."""
    return model_config(read_model_file(path))


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> Codec:
    """Load a model saved by :func:`save_model` (strict); returns it in eval mode on ``device``.

    Raises ModelError for a missing file, a file that is not a model, corrupted weights (hash
    mismatch), or a config this version cannot build.
    """
    from safetensors.torch import load_file

    path = Path(path)
    config, recorded = read_config(path)
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: corrupted weights ({exc})") from None
    digest = weights_hash(state, config)
    if recorded and digest != recorded:
        raise ModelError(f"{path}: corrupted weights (sha256 {digest[:12]}... does not match the "
                         f"recorded {recorded[:12]}...)")
    model = build_codec(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(TRAINING_ONLY_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelError(f"{path}: weights do not fit the config ({what})")
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = value.to(expected[key].dtype)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit the config ({first})") from None
    model.weights_hash = digest
    return model.to(device).eval()


def _stored_config(config: ModelConfig) -> dict:
    """The config a model file records: an offline model's leaves out the timing fields (``causal``,
    ``lookahead``, ``encoder_lookahead``: their defaults), so versions from before the causal kind
    still load it; a causal model's leaves out an ``encoder_lookahead`` of 0 (the same for versions
    from before it)."""
    data = to_dict(config)
    if not config.causal:
        data.pop("causal", None)
        data.pop("lookahead", None)
    if not config.encoder_lookahead:
        data.pop("encoder_lookahead", None)
    return data


def with_timing(model: Codec, causal: bool = True, lookahead: int = 0, encoder_lookahead: int = 0) -> Codec:
    """A copy of ``model`` with the same weights and another timing: the causal kind (``causal``,
    ``lookahead``, ``encoder_lookahead``; ``codec.config.ModelConfig``) of an offline model, or back. Parameter names and shapes
    do not depend on the timing, so the weights load strictly; the copy is in eval mode on the
    model's device, and its ``weights_hash`` is that of its weights as :func:`save_model` would store
    them (timing included). An untrained causal copy of an offline model codes poorly until trained.
    """
    import dataclasses

    config = dataclasses.replace(model.config, causal=causal, lookahead=lookahead,
                                 encoder_lookahead=encoder_lookahead)
    copy = build_codec(config)
    copy.load_state_dict(model.state_dict(), strict=True)
    device = next(model.parameters()).device
    copy = copy.to(device).eval()
    copy.weights_hash = weights_hash(_state(copy), config)
    return copy
