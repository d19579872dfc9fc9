"""Building and restoring a run: the :class:`TrainState` (models, optimisers, counters), a fresh one
for a recipe, resumed from ``last.pt`` or started from an exported model, and what a checkpoint of it
holds (:mod:`codec.train.checkpoint` writes it)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError, TrainingError
from ..models.builder import build_codec
from ..models.model import Codec
from . import checkpoint as ckpt
from . import distributed as ddp
from .gan import build_discriminator
from .recipe import Recipe, recipe_from_json, recipe_to_json


@dataclasses.dataclass
class TrainState:
    """What changes during training (and what a checkpoint restores).

    model: the codec (DDP-wrapped under torchrun). discriminator / optimizer_d: None for runs that
    never use the GAN losses. step: optimiser steps completed. best_score: the best validation score
    so far in lower-is-better form (``ValidationConfig.score``).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    discriminator: nn.Module | None
    optimizer_d: torch.optim.Optimizer | None
    step: int = 0
    best_score: float = math.inf
    cpu_seconds: float = 0.0  # CPU time of the training steps (not validation), every session

    @property
    def codec(self) -> Codec:
        """The plain codec inside the (possibly DDP-wrapped) model."""
        model = ddp.unwrap(self.model)
        assert isinstance(model, Codec)
        return model


def build_state(recipe: Recipe, device: torch.device) -> TrainState:
    """Fresh models and optimisers for ``recipe`` (identical initial weights on every rank)."""
    torch.manual_seed(recipe.seed)
    model = build_codec(recipe.model).to(device)
    disc = build_discriminator(recipe).to(device) if recipe.uses_gan else None
    opt = recipe.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=opt.betas,
                                  weight_decay=opt.weight_decay)
    optimizer_d = (torch.optim.AdamW(disc.parameters(), lr=opt.disc_lr, betas=opt.betas,
                                     weight_decay=opt.weight_decay) if disc is not None else None)
    return TrainState(model, optimizer, disc, optimizer_d)


def restore_state(state: TrainState, recipe: Recipe, run_dir: Path, info: ddp.DistInfo) -> None:
    """Continue ``run_dir/last.pt``: weights, optimisers, counters and (same world size) RNG states."""
    payload = ckpt.load_checkpoint(run_dir / ckpt.LAST)  # on CPU: RNG states must stay there
    stored = recipe_from_json(payload["recipe"])
    differ = _architecture_differences(recipe.model, stored.model)
    if differ:
        raise TrainingError(f"cannot resume {run_dir}: the recipe's [model] differs from the "
                            f"checkpoint's in {', '.join(differ)}")
    retimed = _timing_differences(recipe.model, stored.model)
    if retimed and info.is_main:
        print(f"resuming {run_dir} with another timing ({', '.join(retimed)}): same weights, "
              "new padding (a fork)", flush=True)
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.discriminator is not None and payload.get("discriminator"):
        state.discriminator.load_state_dict(payload["discriminator"])
        assert state.optimizer_d is not None
        state.optimizer_d.load_state_dict(payload["optimizer_d"])
    state.step, state.best_score = int(payload["step"]), float(payload["best_score"])
    state.cpu_seconds = float(payload.get("cpu_seconds", 0.0))
    rngs = payload["rng"]
    if len(rngs) == info.world_size:
        ckpt.restore_rng(rngs[info.rank])
    else:  # resumed with another world size: fresh, rank-distinct streams
        seed_everything(recipe.seed + 7919 * state.step + info.rank)


def load_initial_weights(model: nn.Module, path: Path, recipe: Recipe) -> None:
    """Copy an exported model's full state (weights, codebooks, quantizer counters) into ``model``."""
    from ..models.weights import load_model_file

    try:
        source = load_model_file(path)
    except ModelError as exc:
        raise TrainingError(f"--init-from: {exc}") from None
    differ = _architecture_differences(recipe.model, source.config)
    if differ:
        raise TrainingError(f"--init-from {path}: its model differs from the recipe's [model] in "
                            f"{', '.join(differ)}")
    if recipe.model.causal and not source.config.causal:
        # offline weights into the causal kind: kernels kept in time (codec.train.causal_init)
        from .causal_init import causal_weights

        model.load_state_dict(causal_weights(source, ddp.unwrap(model), recipe.model.lookahead), strict=True)
        return
    model.load_state_dict(source.state_dict(), strict=True)


# the model's timing (causal or offline, look-ahead): parameter names and shapes do not depend on it,
# so a run may continue, or a new run start, from weights of another timing (codec.config.ModelConfig)
_TIMING = ("causal", "lookahead", "encoder_lookahead")
# quantizer settings that only shape training: a fine-tuning recipe may change them
_TRAINING_ONLY = ("noise_std", "reparam", "dropout", "replace_interval", "dead_min_count",
                  "replace_source", "warmup_steps", "commitment_weight", "codebook_weight",
                  "ste_restarts")


def _architecture(config: Any) -> dict[str, Any]:
    """A ModelConfig as a flat dict without its name, its timing and training-only quantizer
    settings."""
    flat = {k: v for k, v in dataclasses.asdict(config).items()
            if k not in ("name", "quantizer", *_TIMING)}
    flat.update({f"quantizer.{k}": v for k, v in dataclasses.asdict(config.quantizer).items()
                 if k not in _TRAINING_ONLY})
    return flat


def _timing_differences(ours: Any, theirs: Any) -> list[str]:
    """The timing keys in which two ModelConfigs differ, as ``key old -> new``."""
    return [f"{key} {getattr(theirs, key, None)} -> {getattr(ours, key)}" for key in _TIMING
            if getattr(ours, key) != getattr(theirs, key, None)]


def _architecture_differences(ours: Any, theirs: Any) -> list[str]:
    """Keys in which two ModelConfigs differ as architectures (empty: the same architecture)."""
    a, b = _architecture(ours), _architecture(theirs)
    return [] if a == b else [k for k in a if a[k] != b.get(k)]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def forget_after(run_dir: Path, step: int) -> None:
    """On resume: drop metrics logged after the checkpoint's ``step`` (a killed run logs a few steps
    past its last checkpoint; they are about to be trained again) and stale checkpoint temp files."""
    for tmp in run_dir.glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if int(record.get("step", 0)) <= step:
            kept.append(line)
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def checkpoint_payload(state: TrainState, recipe: Recipe, rngs: list[dict[str, Any]]) -> dict[str, Any]:
    """What a checkpoint holds (the list is :mod:`codec.train.checkpoint`'s docstring)."""
    disc = ddp.unwrap(state.discriminator) if state.discriminator is not None else None
    return {
        "recipe": recipe_to_json(recipe),
        "step": state.step,
        "best_score": state.best_score,
        "cpu_seconds": state.cpu_seconds,
        "model": state.codec.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "discriminator": disc.state_dict() if disc is not None else {},
        "optimizer_d": state.optimizer_d.state_dict() if state.optimizer_d is not None else {},
        "rng": rngs,
    }


def save_last(state: TrainState, recipe: Recipe, info: ddp.DistInfo, path: Path) -> None:
    """Write ``last.pt`` from rank 0 with every rank's RNG states."""
    rngs = ddp.gather_objects(ckpt.capture_rng(), info)
    if info.is_main:
        ckpt.save_checkpoint(path, checkpoint_payload(state, recipe, rngs))
    ddp.barrier(info)


def rank_hashes(state: TrainState, info: ddp.DistInfo) -> list[str]:
    """sha256 of the codec's parameters (weights and codebooks) on every rank.

    Buffers are left out: statistics such as a stage's pool of recent frames are per rank by design
    (DDP copies rank 0's buffers to every rank at the start of each forward pass).
    """
    from ..models.weights import weights_hash

    params = {name: p.detach() for name, p in state.codec.named_parameters()}
    return ddp.gather_objects(weights_hash(params), info)
