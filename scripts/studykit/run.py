"""``study.py run``: train every (arm, seed), resumably (see scripts/study.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codec.errors import TrainingError, UsageError

from .common import FAILED, find_arms, read_records, run_dir_of, run_status, say, train_seconds, write_text_atomic


def _check_sources(recipe: Any) -> None:
    if recipe.data.synthetic:
        return
    for i, source in enumerate(recipe.data.sources):
        if not Path(source).exists():
            raise TrainingError(f"data.sources[{i}]: {source} not found (build the corpus first)")


def run_study(out: Path, recipes: Path, seeds: Sequence[int], arms: Sequence[str] | None = None, *,
              max_minutes_per_run: float | None = None, max_minutes: float | None = None,
              max_steps: int | None = None, threads: int | None = 1, device: str = "auto",
              retry_failed: bool = False, progress: bool = False) -> dict[str, str]:
    """Train every (arm, seed) into ``out/<arm>/seed<seed>``; returns ``{"arm/seedN": status}``.

    Resumable (module docstring). ``max_minutes`` bounds this whole call (each run gets the smaller
    of that remainder and ``max_minutes_per_run``; runs stop cleanly with a checkpoint).
    ``max_steps`` overrides every recipe's schedule.max_steps (smoke tests; a later call without it
    continues the runs to the recipe's length).
    """
    import gc

    import torch

    from codec.train.loop import train
    from codec.train.recipe import load_recipe

    for name, value in (("--max-minutes-per-run", max_minutes_per_run),
                        ("--max-minutes", max_minutes)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be > 0")
    if max_steps is not None and max_steps < 1:
        raise UsageError("--max-steps must be >= 1")
    chosen = find_arms(recipes, arms)
    loaded = {arm.name: load_recipe(arm.recipe_path) for arm in chosen}  # validate all first
    for recipe in loaded.values():
        _check_sources(recipe)

    t0 = time.monotonic()
    statuses: dict[str, str] = {}
    for seed in seeds:
        for arm in chosen:
            key = f"{arm.name}/seed{seed}"
            recipe = loaded[arm.name].replace(seed=seed)
            target = max_steps if max_steps is not None else recipe.schedule.max_steps
            run_dir = run_dir_of(out, arm.name, seed)
            status = run_status(run_dir, target)
            if status == "failed" and retry_failed:
                (run_dir / FAILED).unlink()
                status = run_status(run_dir, target)
            if status in ("finished", "failed"):
                statuses[key] = status
                say(f"{key}: {status}, skipped")
                continue
            budget = max_minutes_per_run
            if max_minutes is not None:
                left = max_minutes - (time.monotonic() - t0) / 60.0
                if left <= 0.05:
                    statuses[key] = status
                    say(f"{key}: {status}, not started (--max-minutes {max_minutes:g} spent)")
                    continue
                budget = left if budget is None else min(budget, left)
            resume = status == "partial"
            if not resume and (run_dir / "metrics.jsonl").is_file():
                (run_dir / "metrics.jsonl").unlink()  # an attempt killed before its first checkpoint
            say(f"{key}: {'resuming' if resume else 'training'} to step {target}"
                 + (f" (at most {budget:.1f} min)" if budget is not None else ""))
            try:
                result = train(recipe, run_dir, resume=resume, max_steps=max_steps,
                               max_minutes=budget, device=device, threads=threads, progress=progress)
            except TrainingError as exc:
                write_text_atomic(run_dir / FAILED, json.dumps(
                    {"error": str(exc), "time": time.time()}, indent=2) + "\n")
                statuses[key] = "failed"
                say(f"{key}: FAILED: {exc}")
                continue
            finally:
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            statuses[key] = "finished" if result.finished else "partial"
            say(f"{key}: {statuses[key]} at step {result.step} "
                 f"({train_seconds(read_records(run_dir)) / 60:.1f} min of training so far)")
    return statuses
