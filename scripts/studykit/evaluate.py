"""``study.py report``, first half: find the runs and score each finished run's final model on the
held-out clips (through ``codec.train.validation.code_clips``, the loop validation uses)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from codec.errors import UsageError

from .common import read_records, run_status, train_seconds


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A run directory found under ``--runs``."""

    method: str
    seed: int
    run_dir: Path
    status: str
    kind: str
    reparam: str
    max_steps: int


def find_runs(runs: Path) -> list[RunInfo]:
    """Every ``<method>/seed<N>/`` under ``runs`` that holds a recipe.json."""
    from codec.train.recipe import recipe_from_json

    if not runs.is_dir():
        raise UsageError(f"--runs {runs} is not a folder")
    found = []
    for recipe_path in sorted(runs.glob("*/seed*/recipe.json")):
        run_dir = recipe_path.parent
        try:
            seed = int(run_dir.name.removeprefix("seed"))
        except ValueError:
            continue
        recipe = recipe_from_json(recipe_path.read_text(encoding="utf-8"))
        q = recipe.model.quantizer
        found.append(RunInfo(run_dir.parent.name, seed, run_dir,
                             run_status(run_dir, recipe.schedule.max_steps), q.kind, q.reparam,
                             recipe.schedule.max_steps))
    if not found:
        raise UsageError(f"no runs under {runs} (expected <method>/seed<N>/recipe.json)")
    return found


def evaluate_run(info: RunInfo, device: str, clip_cache: dict[Any, list[Any]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score ``info``'s final model (last.pt) at every validation.n_codebooks value.

    Returns (rows with :data:`COLUMNS`, per-stage usage rows at the largest n_codebooks).
    """
    import numpy as np
    import torch

    from codec.eval import metrics
    from codec.models.builder import build_codec
    from codec.quantize.base import usage_from_codes
    from codec.runtime.device import resolve_device
    from codec.train import checkpoint as ckpt
    from codec.train.batches import build_validation_clips
    from codec.train.recipe import recipe_from_json
    from codec.train.validation import code_clips

    payload = ckpt.load_checkpoint(info.run_dir / ckpt.LAST)
    recipe = recipe_from_json(payload["recipe"])
    dev = resolve_device(device)
    model = build_codec(recipe.model)
    model.load_state_dict(payload["model"], strict=True)
    model.to(dev).eval()
    data = recipe.data
    key = (data.sources, data.validation_items, data.validation_seconds, recipe.model.sample_rate,
           recipe.seed if data.synthetic else None)
    if key not in clip_cache:
        clip_cache[key] = build_validation_clips(recipe)
    clips = clip_cache[key]
    sr = recipe.model.sample_rate
    steps = int(payload["step"])
    seconds = train_seconds(read_records(info.run_dir))
    rows, stage_rows = [], []
    n_max = max(recipe.validation.n_codebooks)
    torch.manual_seed(0)
    for n in sorted(recipe.validation.n_codebooks):
        pairs, codes = code_clips(model, clips, n, dev)
        scores: dict[str, list[float]] = {}
        for x, y in pairs:
            result = metrics.score(x[0, 0].cpu().double().numpy(), y[0, 0].cpu().double().numpy(), sr)
            for name, value in result.items():
                scores.setdefault(name, []).append(value)
        usage = usage_from_codes(codes, recipe.model.codebook_size)
        if n == n_max:
            stage_rows += [{"method": info.method, "seed": info.seed, "stage": u.stage,
                            "usage": u.usage, "perplexity": u.perplexity} for u in usage]
        with np.errstate(all="ignore"):
            means = {name: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
                     for name, v in ((k, np.asarray(v, dtype=float)) for k, v in scores.items())}
        rows.append({"method": info.method, "seed": info.seed, "n_codebooks": n,
                     "kbps": recipe.model.bitrate(n) / 1000.0, **means,
                     "codebook_usage": float(np.mean([u.usage for u in usage])),
                     "perplexity": float(np.mean([u.perplexity for u in usage])), "steps": steps,
                     "train_seconds": seconds})
    return rows, stage_rows
