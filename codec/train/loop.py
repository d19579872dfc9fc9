"""The training loop: one function, :func:`train`, readable top to bottom.

One step (DAC's recipe): the codec reconstructs a batch; from ``schedule.gan_start_step`` on, the
discriminator first takes a least-squares GAN step on (real, detached fake), then the codec takes a
step on the weighted sum of the loss terms ``recipe.loss`` weights (mel, waveform L1, compressed
complex STFT, phase, adversarial, feature matching, the quantizer's aux loss); terms with weight 0 are
not computed. Before ``gan_start_step`` the discriminator is not run at all.

Run directory (``--out``): ``recipe.json`` (resolved recipe), ``metrics.jsonl`` (one JSON object per
log line / validation), ``last.pt`` / ``best.pt`` (:mod:`codec.train.checkpoint`), ``tb/`` (TensorBoard,
when it imports). Under torchrun only rank 0 logs, validates and writes files.

Exact continuation: a batch is a pure function of (seed, rank, step) (:class:`StepBatchSampler`), the
learning rate a pure function of step, and checkpoints hold every RNG state, so a resumed run
reproduces the uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import TrainingError, UsageError
from ..runtime.device import resolve_device
from . import checkpoint as ckpt
from . import distributed as ddp
from .batches import StepBatchSampler, build_train_data, build_validation_clips, worker_init
from .gan import discriminator_loss, discriminator_view, generator_losses, split_fmaps
from .objective import LOSS_KEYS, Objective
from .recipe import Recipe, load_recipe
from .runlog import RunLog, peak_memory_mb
from .state import (
    TrainState,
    build_state,
    forget_after,
    load_initial_weights,
    rank_hashes,
    restore_state,
    save_last,
    seed_everything,
)
from .stopping import Limits, StopRequest
from .validation import rng_isolated, validate_and_keep_best

__all__ = ["LOSS_KEYS", "TrainState", "TrainResult", "train", "train_step"]

@dataclasses.dataclass(frozen=True)
class TrainResult:
    """How a call to :func:`train` ended."""

    run_dir: Path
    step: int
    best_score: float  # lower is better: see ValidationConfig.score
    finished: bool  # False when --max-minutes stopped it early


# ------------------------------------------------------------------------------------------- train


def train(recipe: Recipe | Path, out: Path, *, resume: bool = False, max_steps: int | None = None,
          max_minutes: float | None = None, device: str = "auto", threads: int | None = None,
          progress: bool = True, init_from: Path | None = None,
          max_cpu_minutes: float | None = None) -> TrainResult:
    """Train (or continue training) a codec; see the module docstring for what ``out`` receives.

    recipe: a Recipe or a TOML path. resume: continue from ``out/last.pt``; the recipe's [model] must
    have the checkpoint's architecture (its name and training-only quantizer settings may differ, as
    may every other section: a long run can continue a short one with another schedule). max_steps:
    overrides ``schedule.max_steps``. max_minutes: stop cleanly (checkpoint at exit) after this much
    wall time. device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
    threads: ``torch.set_num_threads`` for this process (None leaves torch's default). On a shared,
    loaded CPU one thread per process is often several times faster than two.
    SIGTERM (and a first Ctrl-C) stop cleanly after the current step, with a checkpoint, like
    max_minutes; resume with ``resume=True``. max_cpu_minutes: stop the same way once the run (all
    its sessions) has used this much CPU time in the training process: a budget that stays fair
    when other work shares the machine (design screening).
    init_from: a model file (``.safetensors`` from ``export``) whose weights, codebooks and
    quantizer counters start a NEW run (step 0 of this recipe, fresh optimisers); its architecture
    must match the recipe's [model] (training-only quantizer settings may differ). Used to fine-tune
    a shipped model, e.g. into a GAN phase.
    Raises TrainingError on a non-finite loss (the last good checkpoint stays on disk).
    """
    t_start = time.monotonic()
    recipe = _checked_recipe(recipe, max_steps, max_minutes, max_cpu_minutes, threads)
    run_dir = Path(out)
    _check_run_dir(run_dir, resume, init_from)
    info = ddp.setup(resolve_device(device))
    limits = Limits(t_start, max_minutes, max_cpu_minutes)
    clean = False
    try:
        result = _run(recipe, run_dir, info, resume=resume, limits=limits, progress=progress,
                      init_from=init_from)
        clean = True
        return result
    finally:
        # _run's frame (DDP wrappers, the loader) is gone here, so no collective is still in flight
        # when the group is destroyed; after a clean run every rank waits for the others first.
        ddp.teardown(info, synchronize=clean)


def _checked_recipe(recipe: Recipe | Path, max_steps: int | None, max_minutes: float | None,
                    max_cpu_minutes: float | None, threads: int | None) -> Recipe:
    """The recipe with ``max_steps`` applied, after checking the limits (and setting ``threads``)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if max_steps is not None:
        if max_steps < 1:
            raise UsageError("--max-steps must be >= 1")
        recipe = recipe.replace(schedule=dataclasses.replace(recipe.schedule, max_steps=max_steps))
    if max_minutes is not None and max_minutes <= 0:
        raise UsageError("--max-minutes must be > 0")
    if max_cpu_minutes is not None and max_cpu_minutes <= 0:
        raise UsageError("--max-cpu-minutes must be > 0")
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be >= 1")
        torch.set_num_threads(threads)
    return recipe


def _check_run_dir(run_dir: Path, resume: bool, init_from: Path | None) -> None:
    last_path = run_dir / ckpt.LAST
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} exists and is not a directory")
    if resume and init_from is not None:
        raise UsageError("--init-from starts a new run; it cannot be combined with --resume")
    if resume and not last_path.is_file():
        raise TrainingError(f"cannot resume: {last_path} not found")
    if not resume and last_path.is_file():
        raise UsageError(f"{run_dir} already holds a run; pass --resume or choose another --out")


@dataclasses.dataclass
class _Run:
    """One session of a run: what the steps and what follows them share."""

    recipe: Recipe
    run_dir: Path
    info: ddp.DistInfo
    state: TrainState
    objective: Objective
    log: RunLog
    val_clips: list[torch.Tensor]
    gap_clips: tuple[list[torch.Tensor], list[torch.Tensor]]  # (seen, unseen) real-speech clips
    meter: _LossMeter
    saved_at: int  # step of the last checkpoint written (-1: none this session)


def _run(recipe: Recipe, run_dir: Path, info: ddp.DistInfo, *, resume: bool, limits: Limits,
         progress: bool, init_from: Path | None) -> TrainResult:
    """The training run itself, inside an already joined process group (see :func:`train`)."""
    log: RunLog | None = None
    stop = StopRequest().__enter__()
    try:
        state = _start_state(recipe, run_dir, info, resume, init_from)
        with rng_isolated():  # data built with the RNG states set aside: resuming must not shift them
            train_set = build_train_data(recipe, info.rank)
            val_clips = build_validation_clips(recipe) if info.is_main else []
            n_seen, real = recipe.validation.seen_items, recipe.validation.seen_sources
            gap_clips = ((build_validation_clips(recipe, "train", n_seen, real),
                          build_validation_clips(recipe, "valid", n_seen, real))
                         if info.is_main and n_seen and not recipe.data.synthetic else ([], []))
        loader = _loader(train_set, recipe, info, state.step)
        log = _open_log(recipe, run_dir, info, state, resume, progress, init_from)
        run = _Run(recipe, run_dir, info, state, Objective(recipe, info.device), log, val_clips,
                   gap_clips, _LossMeter(state.step), state.step if resume else -1)
        finished = True
        state.model.train()
        for batch in loader:
            cpu_mark = time.process_time()
            losses = train_step(state, batch, run.objective)
            state.cpu_seconds += time.process_time() - cpu_mark
            _after_step(run, losses)
            over = limits.reached(state)
            if ddp.broadcast_flag(over or stop.requested, info) and state.step < recipe.schedule.max_steps:
                finished = False
                break
        return _finish(run, finished)
    finally:
        stop.__exit__(None, None, None)
        if log is not None:
            log.close()


def _start_state(recipe: Recipe, run_dir: Path, info: ddp.DistInfo, resume: bool,
                 init_from: Path | None) -> TrainState:
    """Models and optimisers: fresh, resumed from ``last.pt`` or started from ``init_from``;
    DDP-wrapped last."""
    state = build_state(recipe, info.device)
    if resume:
        restore_state(state, recipe, run_dir, info)
    else:
        if init_from is not None:
            load_initial_weights(state.model, Path(init_from), recipe)
        seed_everything(recipe.seed + info.rank)
    state.model = ddp.wrap(state.model, info)
    if state.discriminator is not None:
        state.discriminator = ddp.wrap(state.discriminator, info)
    return state


def _loader(train_set: Any, recipe: Recipe, info: ddp.DistInfo, step: int) -> DataLoader:
    """Batches from ``step`` on (a pure function of seed, rank and step)."""
    sampler = StepBatchSampler(len(train_set), recipe.data.batch_size, recipe.seed, info.rank,
                               step, recipe.schedule.max_steps)
    workers = recipe.data.num_workers
    return DataLoader(train_set, batch_sampler=sampler, num_workers=workers,
                      worker_init_fn=worker_init if workers else None,
                      persistent_workers=False, pin_memory=info.device.type == "cuda",
                      generator=torch.Generator().manual_seed(recipe.seed))


def _open_log(recipe: Recipe, run_dir: Path, info: ddp.DistInfo, state: TrainState, resume: bool,
              progress: bool, init_from: Path | None) -> RunLog:
    """The run directory's recipe.json and metrics log, with the session's ``start`` record."""
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
        if resume:
            forget_after(run_dir, state.step)
    log = RunLog(run_dir, info.is_main, progress, state.step, recipe.schedule.max_steps)
    if info.is_main:
        disc = state.discriminator
        log.write({"kind": "start", "step": state.step, "time": time.time(), "resume": resume,
                   "world_size": info.world_size, "device": str(info.device),
                   "init_from": str(init_from) if init_from is not None else None,
                   "model_parameters": sum(p.numel() for p in state.model.parameters()),
                   "discriminator_parameters": sum(p.numel() for p in disc.parameters())
                   if disc is not None else 0})
    return log


# -------------------------------------------------------------------------------------------- step


def train_step(state: TrainState, batch: torch.Tensor, objective: Objective) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch`` [B, 1, T]: the discriminator's (from the GAN start on), then
    the codec's on the weighted total. Returns every loss of :data:`LOSS_KEYS` (0 where not computed)."""
    opt, dev = objective.recipe.optim, objective.device
    x = batch.to(dev, non_blocking=True)  # [B, 1, T]
    use_gan = objective.uses_gan(state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = opt.lr * opt.lr_factor(state.step)
    with torch.autocast(**objective.amp):
        output = state.model(x)
    y = output.audio.float()  # [B, 1, T]

    losses = objective.zeros()
    if use_gan:
        losses.update(_adversarial_losses(state, x, y, objective))
    losses.update(objective.reconstruction(y, x))
    losses["aux"] = output.aux_loss.float()
    losses["total"] = objective.total(losses, use_gan)

    state.optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    if opt.grad_clip > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), opt.grad_clip)
    state.optimizer.step()
    state.step += 1
    return losses


def _adversarial_losses(state: TrainState, x: torch.Tensor, y: torch.Tensor,
                        objective: Objective) -> dict[str, torch.Tensor]:
    """The discriminator's step on (real ``x``, detached fake ``y``), then the codec's adversarial
    and feature-matching losses (with the graph to ``y``)."""
    opt = objective.recipe.optim
    disc, optimizer_d = state.discriminator, state.optimizer_d
    assert disc is not None and optimizer_d is not None
    x, y = discriminator_view(objective.recipe, x, y)
    for group in optimizer_d.param_groups:
        group["lr"] = opt.disc_lr * opt.lr_factor(state.step)
    with torch.autocast(**objective.amp):
        fmaps = disc(torch.cat([y.detach(), x]))
    d_fake, d_real = split_fmaps(fmaps, x.shape[0])
    d_loss = discriminator_loss(d_fake, d_real)
    optimizer_d.zero_grad(set_to_none=True)
    d_loss.backward()
    if opt.disc_grad_clip > 0:
        nn.utils.clip_grad_norm_(disc.parameters(), opt.disc_grad_clip)
    optimizer_d.step()

    plain_d = ddp.unwrap(disc)
    plain_d.requires_grad_(False)  # the codec step needs input gradients only
    with torch.autocast(**objective.amp):
        with torch.no_grad():  # the real maps are targets: no graph through them
            g_real = plain_d(x)
        g_fake = plain_d(y)
    plain_d.requires_grad_(True)
    adversarial, feature_matching = generator_losses(g_fake, g_real)
    return {"discriminator": d_loss, "adversarial": adversarial, "feature_matching": feature_matching}


# ---------------------------------------------------------------------------- what follows a step


class _LossMeter:
    """Running sums of the step losses between two log lines, and the rate since the last one."""

    def __init__(self, step: int) -> None:
        self.sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)
        self.count, self.t_log, self.step_log = 0, time.monotonic(), step

    def add(self, values: torch.Tensor) -> None:
        self.sums += values
        self.count += 1

    def take(self, step: int) -> tuple[dict[str, float], float]:
        """(mean of each loss, steps per second) since the last call; starts a new interval."""
        now = time.monotonic()
        rate = (step - self.step_log) / max(now - self.t_log, 1e-9)
        means = dict(zip(LOSS_KEYS, (self.sums / self.count).tolist(), strict=True))
        self.sums.zero_()
        self.count, self.t_log, self.step_log = 0, now, step
        return means, rate


def _after_step(run: _Run, losses: dict[str, torch.Tensor]) -> None:
    """Average the losses over ranks (and stop on a non-finite one), then log, validate and write
    the checkpoint at their intervals."""
    state, sched = run.state, run.recipe.schedule
    # losses averaged over ranks: one collective that also makes the stop decisions agree
    values = torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
    values = ddp.all_reduce_mean(values, run.info).cpu().double()
    if not torch.isfinite(values).all():
        bad = [k for k, v in zip(LOSS_KEYS, values.tolist(), strict=True) if not math.isfinite(v)]
        raise TrainingError(f"non-finite loss ({', '.join(bad)}) at step {state.step}; "
                            f"the last good checkpoint is {run.run_dir / ckpt.LAST}")
    run.meter.add(values)
    last = state.step == sched.max_steps
    if state.step % sched.log_interval == 0 or last:
        _log_losses(run)
    else:
        run.log.advance(state.step, "")
    if state.step % sched.validation_interval == 0 or last:
        validate_and_keep_best(run.state, run.val_clips, run.recipe, run.info, run.log,
                                run.run_dir / ckpt.BEST, run.gap_clips)
    if state.step % sched.checkpoint_interval == 0 or last:
        save_last(state, run.recipe, run.info, run.run_dir / ckpt.LAST)
        run.saved_at = state.step


def _log_losses(run: _Run) -> None:
    state, opt = run.state, run.recipe.optim
    means, rate = run.meter.take(state.step)
    record = {"kind": "train", "step": state.step, "time": time.time(),
              "lr": opt.lr * opt.lr_factor(state.step - 1),
              "gan": run.objective.uses_gan(state.step - 1),
              "steps_per_s": rate, "cpu_s": state.cpu_seconds,
              "peak_memory_mb": peak_memory_mb(run.info.device), **means}
    run.log.write(record)
    run.log.advance(state.step, f"{rate:.2f} steps/s  mel {record['mel']:.3f}  "
                                f"total {record['total']:.3f}")


def _finish(run: _Run, finished: bool) -> TrainResult:
    """The closing checkpoint (unless the last step wrote one), the ranks' agreement, ``stop``."""
    state, info = run.state, run.info
    if run.saved_at != state.step:
        save_last(state, run.recipe, info, run.run_dir / ckpt.LAST)
    hashes = rank_hashes(state, info)
    if info.is_main:
        run.log.write({"kind": "stop", "step": state.step, "time": time.time(), "finished": finished,
                       "peak_memory_mb": peak_memory_mb(info.device), "rank_weight_hashes": hashes})
    if len(set(hashes)) > 1:
        raise TrainingError(f"processes diverged: weights differ across ranks at step {state.step}")
    return TrainResult(run_dir=run.run_dir, step=state.step, best_score=state.best_score,
                       finished=finished)
