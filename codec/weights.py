"""Saving and loading models: safetensors weights with the JSON config in the file's metadata,
a JSON sidecar for people, and a sha256 content hash checked on every load. Loading is strict and
never unpickles anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .audio import atomic_output
from .config import ModelConfig, from_dict, to_dict
from .errors import ConfigError, ModelError
from .model import Codec
from .builder import build_codec

FORMAT = "diveq-codec-model"
FORMAT_VERSION = 1


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 hex over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _state(model: Codec) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def model_card(model: Codec, digest: str) -> dict[str, Any]:
    """The human-readable description written next to the weights."""
    cfg = model.config
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": cfg.name,
        "weights_sha256": digest, "sample_rate": cfg.sample_rate, "frame_rate": cfg.frame_rate,
        "bitrates_kbps": [round(cfg.bitrate(n) / 1000, 3) for n in range(1, cfg.n_codebooks + 1)],
        "parameters": sum(p.numel() for p in model.parameters()), "config": to_dict(cfg),
    }


def save_model(model: Codec, path: str | Path) -> str:
    """Write ``path`` (.safetensors) and ``path`` with suffix .json atomically; returns the hash.

    Sets ``model.weights_hash``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = _state(model)
    digest = weights_hash(state)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "config": json.dumps(to_dict(model.config)), "weights_sha256": digest}
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, writer in ((path, lambda p: save_file(state, str(p), metadata=meta)),
                           (path.with_suffix(".json"),
                            lambda p: Path(p).write_text(json.dumps(model_card(model, digest), indent=2)))):
        with atomic_output(target, force=True) as tmp:
            writer(tmp)
    model.weights_hash = digest
    return digest


def read_config(path: str | Path) -> tuple[ModelConfig, str]:
    """(config, recorded hash) from a model file's metadata, without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a bad header
        raise ModelError(f"{path} is not a diveq-codec model (unreadable safetensors: {exc})") from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not a diveq-codec model (no '{FORMAT}' metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise ModelError(f"{path}: bad format_version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer diveq-codec (model format {version}, "
                         f"this version reads {FORMAT_VERSION}); upgrade diveq-codec")
    try:
        config = from_dict(ModelConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: missing or unreadable config ({exc})") from None
    except ConfigError as exc:
        raise ModelError(f"{path}: this version cannot build the model's config: {exc}") from None
    return config, meta.get("weights_sha256", "")


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
    digest = weights_hash(state)
    if recorded and digest != recorded:
        raise ModelError(f"{path}: corrupted weights (sha256 {digest[:12]}... does not match the "
                         f"recorded {recorded[:12]}...)")
    model = build_codec(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit the config ({first})") from None
    model.weights_hash = digest
    return model.to(device).eval()
