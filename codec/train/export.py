"""Export a release model from a training run: the codec's weights and config only, and optionally
its ONNX graphs (:mod:`codec.runtime.onnx_export`) for the light runtime.

No optimiser, discriminator or RNG state leaves the run: :func:`export_model` rebuilds the codec
from the checkpoint's stored recipe, loads its weights strictly and writes them with
:func:`codec.models.weights.save_model` (``OUT.safetensors`` + ``OUT.json``). The source may also be a model
file, which is copied (or converted to ``dtype``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import TrainingError, UsageError
from ..io.fileio import atomic_output
from ..runtime.base import DECODER, ENCODER, graph_path
from . import checkpoint as ckpt
from .recipe import recipe_from_json

DTYPES = ("float32", "float16")


def _copy_model(source: Path, out: Path, dtype: str | None) -> None:
    """``source`` (a model file) as ``out``: its bytes (and card) as they are, or converted to ``dtype``."""
    from ..models.weights import load_model_file, save_model

    if dtype is not None:
        import torch

        save_model(load_model_file(source), out, getattr(torch, dtype))
        return
    load_model_file(source)  # a model file: refuse anything else before copying it
    for src, dst in ((source, out), (source.with_suffix(".json"), out.with_suffix(".json"))):
        if src.is_file():
            with atomic_output(dst, force=True) as tmp:
                shutil.copyfile(src, tmp)


def export_model(source: str | Path, out: str | Path, force: bool = False,
                 dtype: str | None = None, onnx: bool = False) -> Path:
    """Write the codec held by ``source`` to ``out`` (a ``.safetensors`` path); returns ``out``.

    source: a checkpoint file, a run directory (its ``best.pt``, else ``last.pt``), or a model file
    (``.safetensors``; ``out`` may be the same file, then only the graphs are written).
    dtype: ``float32`` or ``float16`` (half the file; weights are cast back to float32 on load); None:
    float32 from a run, as stored from a model file.
    onnx: also write ``OUT.encoder.onnx`` and ``OUT.decoder.onnx`` (needs ``onnx`` and ``onnxscript``).
    Raises UsageError when an output exists and ``force`` is False, and TrainingError for a missing or
    unusable checkpoint.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UsageError(f"export output must end in .safetensors, got {out}")
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"--dtype must be float32 or float16, got {dtype!r}")
    src = Path(source)
    same = src.suffix == ".safetensors" and out.exists() and src.is_file() and src.samefile(out)
    if same and dtype is not None:
        raise UsageError(f"cannot convert {src} in place: export it to another file")
    targets = [] if same else [out, out.with_suffix(".json")]
    targets += [graph_path(out, role) for role in (ENCODER, DECODER)] if onnx else []
    if not force:
        for target in targets:
            if target.exists():
                raise UsageError(f"{target} exists (use --force to overwrite)")
    if onnx:
        from ..extras import require_export_extras

        require_export_extras("ONNX export")
    if src.suffix == ".safetensors":
        if not same:
            _copy_model(src, out, dtype)
    else:
        _export_run(src, out, dtype or "float32")
    if onnx:
        from ..runtime.onnx_export import export_graphs

        export_graphs(out, force=True)
    return out


def _export_run(source: Path, out: Path, dtype: str) -> None:
    """The codec of a run directory or checkpoint ``source`` as the model file ``out``."""
    from ..models.builder import build_codec
    from ..models.weights import save_model

    path = ckpt.resolve_checkpoint(source)
    payload = ckpt.load_checkpoint(path)
    recipe = recipe_from_json(payload["recipe"])
    model = build_codec(recipe.model)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"checkpoint {path} does not match its recipe's model: {exc}") from None
    model.eval()
    import torch

    save_model(model, out, getattr(torch, dtype))
