"""Export a release model from a training run: the codec's weights and config only.

No optimiser, discriminator or RNG state leaves the run: :func:`export_model` rebuilds the codec
from the checkpoint's stored recipe, loads its weights strictly and writes them with
:func:`codec.weights.save_model` (``OUT.safetensors`` + ``OUT.json``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TrainingError, UsageError
from . import checkpoint as ckpt
from .recipe import recipe_from_json


def export_model(source: str | Path, out: str | Path, force: bool = False,
                 dtype: str = "float32") -> Path:
    """Write the codec held by ``source`` to ``out`` (a ``.safetensors`` path); returns ``out``.

    dtype: ``float32`` or ``float16`` (half the file; weights are cast back to float32 on load).
    source: a checkpoint file, or a run directory (its ``best.pt``, else ``last.pt``).
    Raises UsageError when ``out`` (or its ``.json`` card) exists and ``force`` is False, and
    TrainingError for a missing or unusable checkpoint.
    """
    from ..builder import build_codec
    from ..weights import save_model

    out = Path(out)
    if out.suffix != ".safetensors":
        raise UsageError(f"export output must end in .safetensors, got {out}")
    if not force:
        for target in (out, out.with_suffix(".json")):
            if target.exists():
                raise UsageError(f"{target} exists (use --force to overwrite)")
    path = ckpt.resolve_checkpoint(Path(source))
    payload = ckpt.load_checkpoint(path)
    recipe = recipe_from_json(payload["recipe"])
    model = build_codec(recipe.model)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"checkpoint {path} does not match its recipe's model: {exc}") from None
    model.eval()
    if dtype not in ("float32", "float16"):
        raise UsageError(f"--dtype must be float32 or float16, got {dtype!r}")
    import torch

    save_model(model, out, getattr(torch, dtype))
    return out
