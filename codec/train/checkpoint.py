"""Training checkpoints: everything needed to continue a run exactly, stored without pickled objects.

A checkpoint is a ``torch.save`` file of plain containers, tensors, numbers and strings, loaded back
with ``torch.load(weights_only=True)``. It holds:

- ``format``: :data:`FORMAT` (a version string)
- ``recipe``: the resolved recipe as a JSON string
- ``step``: optimiser steps completed; ``best_score``: best validation score so far (lower is better,
  ``ValidationConfig.score``)
- ``model``: the codec's state_dict (quantizer buffers included: usage counters, codebook init flags)
- ``optimizer``: the generator's AdamW state_dict
- ``discriminator`` / ``optimizer_d``: the same for the discriminator (empty dicts when it has none)
- ``rng``: one entry per process (rank order): python, numpy, torch and cuda generator states as tensors

The learning-rate schedules are pure functions of ``step`` (``OptimConfig.lr_factor``), so the step
is their whole state. Files are written atomically: temp file in the same folder, fsync, rename.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import TrainingError
from ..io.fileio import atomic_output

FORMAT = "diveq-codec-checkpoint/1"
LAST = "last.pt"
BEST = "best.pt"


def capture_rng() -> dict[str, Any]:
    """This process's random generator states (python, numpy, torch, cuda) as tensors and numbers."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python_version": int(version),
        "python_state": torch.tensor(mt_state, dtype=torch.int64),
        "python_gauss": float("nan") if gauss is None else float(gauss),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached": float(cached),
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }
    assert kind == "MT19937"
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    gauss = state["python_gauss"]
    random.setstate((state["python_version"], tuple(int(v) for v in state["python_state"].tolist()),
                     None if gauss != gauss else gauss))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see the module docstring) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, force=True) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``). Raises TrainingError on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's problem
        raise TrainingError(f"checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a diveq-codec training checkpoint")
    for key in ("recipe", "step", "model", "optimizer", "rng"):
        if key not in payload:
            raise TrainingError(f"checkpoint {path} lacks '{key}'")
    return payload


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run directory's ``best.pt`` (else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise TrainingError(f"run directory {path} holds no checkpoint ({BEST} or {LAST})")
    if not path.is_file():
        raise TrainingError(f"{path} is neither a checkpoint nor a run directory")
    return path
