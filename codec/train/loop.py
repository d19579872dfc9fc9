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
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..api import resolve_device
from ..errors import TrainingError, UsageError
from . import checkpoint as ckpt
from . import distributed as ddp
from .batches import StepBatchSampler, build_train_data, build_validation_clips, worker_init
from .gan import build_discriminator, discriminator_loss, generator_losses, split_fmaps
from .phase import PhaseLoss
from .spectral import ComplexSTFTLoss
from .recipe import Recipe, load_recipe, recipe_to_json, recipe_from_json
from .runlog import RunLog, peak_memory_mb
from .validation import rng_isolated, validate

LOSS_KEYS = ("total", "mel", "waveform", "complex_stft", "phase", "adversarial", "feature_matching",
             "aux", "discriminator")
GAN_TERMS = ("adversarial", "feature_matching")


# ------------------------------------------------------------------------------------------- state


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
    may every other section: a long run can continue a short one with another schedule). max_steps: overrides ``schedule.max_steps``. max_minutes: stop cleanly
    (checkpoint at exit) after this much wall time. device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
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
    run_dir = Path(out)
    last_path = run_dir / ckpt.LAST
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} exists and is not a directory")
    if resume and init_from is not None:
        raise UsageError("--init-from starts a new run; it cannot be combined with --resume")
    if resume and not last_path.is_file():
        raise TrainingError(f"cannot resume: {last_path} not found")
    if not resume and last_path.is_file():
        raise UsageError(f"{run_dir} already holds a run; pass --resume or choose another --out")

    info = ddp.setup(resolve_device(device))
    clean = False
    try:
        result = _run(recipe, run_dir, info, resume=resume, max_minutes=max_minutes,
                      max_cpu_minutes=max_cpu_minutes,
                      progress=progress, t_start=t_start, init_from=init_from)
        clean = True
        return result
    finally:
        # _run's frame (DDP wrappers, the loader) is gone here, so no collective is still in flight
        # when the group is destroyed; after a clean run every rank waits for the others first.
        ddp.teardown(info, synchronize=clean)


def _run(recipe: Recipe, run_dir: Path, info: ddp.DistInfo, *, resume: bool,
         max_minutes: float | None, max_cpu_minutes: float | None, progress: bool, t_start: float,
         init_from: Path | None) -> TrainResult:
    """The training run itself, inside an already joined process group (see :func:`train`)."""
    from ..builder import build_codec

    last_path, best_path = run_dir / ckpt.LAST, run_dir / ckpt.BEST
    dev = info.device
    log: RunLog | None = None
    stop = _StopRequest().__enter__()
    try:
        # --- models and optimisers (identical initial weights on every rank) -----------------------
        torch.manual_seed(recipe.seed)
        model = build_codec(recipe.model).to(dev)
        disc = build_discriminator(recipe).to(dev) if recipe.uses_gan else None
        opt = recipe.optim
        optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=opt.betas,
                                      weight_decay=opt.weight_decay)
        optimizer_d = (torch.optim.AdamW(disc.parameters(), lr=opt.disc_lr, betas=opt.betas,
                                         weight_decay=opt.weight_decay) if disc is not None else None)
        state = TrainState(model, optimizer, disc, optimizer_d)

        if resume:
            payload = ckpt.load_checkpoint(last_path)  # on CPU: RNG states must stay there
            stored = recipe_from_json(payload["recipe"])
            ours, theirs = _architecture(recipe.model), _architecture(stored.model)
            if ours != theirs:
                keys = [k for k in ours if ours[k] != theirs.get(k)]
                raise TrainingError(f"cannot resume {run_dir}: the recipe's [model] differs from the "
                                    f"checkpoint's in {', '.join(keys)}")
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            if disc is not None and payload.get("discriminator"):
                disc.load_state_dict(payload["discriminator"])
                assert optimizer_d is not None
                optimizer_d.load_state_dict(payload["optimizer_d"])
            state.step, state.best_score = int(payload["step"]), float(payload["best_score"])
            state.cpu_seconds = float(payload.get("cpu_seconds", 0.0))
            rngs = payload["rng"]
            if len(rngs) == info.world_size:
                ckpt.restore_rng(rngs[info.rank])
            else:  # resumed with another world size: fresh, rank-distinct streams
                _seed_everything(recipe.seed + 7919 * state.step + info.rank)
        else:
            if init_from is not None:
                _load_initial_weights(model, Path(init_from), recipe)
            _seed_everything(recipe.seed + info.rank)

        state.model = ddp.wrap(model, info)
        if disc is not None:
            state.discriminator = ddp.wrap(disc, info)

        # --- data (built with the RNG states set aside: resuming must not shift them) -------------
        with rng_isolated():
            train_set = build_train_data(recipe, info.rank)
            val_clips = build_validation_clips(recipe) if info.is_main else []
        sampler = StepBatchSampler(len(train_set), recipe.data.batch_size, recipe.seed, info.rank,
                                   state.step, recipe.schedule.max_steps)
        workers = recipe.data.num_workers
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=workers,
                            worker_init_fn=worker_init if workers else None,
                            persistent_workers=False, pin_memory=dev.type == "cuda",
                            generator=torch.Generator().manual_seed(recipe.seed))

        # --- logging -------------------------------------------------------------------------------
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
            if resume:
                _forget_after(run_dir, state.step)
        log = RunLog(run_dir, info.is_main, progress, state.step, recipe.schedule.max_steps)
        if info.is_main:
            log.write({"kind": "start", "step": state.step, "time": time.time(), "resume": resume,
                       "world_size": info.world_size, "device": str(dev),
                       "init_from": str(init_from) if init_from is not None else None,
                       "model_parameters": sum(p.numel() for p in model.parameters()),
                       "discriminator_parameters": sum(p.numel() for p in disc.parameters())
                       if disc is not None else 0})

        reconstruction = {name: term.to(dev) for name, term in _reconstruction_terms(recipe).items()}
        weighting = {k: w for k, w in recipe.loss.weights().items() if w > 0}
        sched = recipe.schedule
        amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
        sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)
        n_summed, t_log, step_log = 0, time.monotonic(), state.step
        finished = True
        saved_at = state.step if resume else -1

        # --- the loop ------------------------------------------------------------------------------
        state.model.train()
        for batch in loader:
            cpu_mark = time.process_time()
            x = batch.to(dev, non_blocking=True)  # [B, 1, T]
            use_gan = recipe.uses_gan and state.step >= sched.gan_start_step
            for group in optimizer.param_groups:
                group["lr"] = opt.lr * opt.lr_factor(state.step)

            with torch.autocast(**amp):
                output = state.model(x)
            y = output.audio.float()  # [B, 1, T]

            losses = dict.fromkeys(LOSS_KEYS, torch.zeros((), device=dev))
            if use_gan:
                assert state.discriminator is not None and optimizer_d is not None
                for group in optimizer_d.param_groups:
                    group["lr"] = opt.disc_lr * opt.lr_factor(state.step)
                with torch.autocast(**amp):
                    fmaps = state.discriminator(torch.cat([y.detach(), x]))
                d_fake, d_real = split_fmaps(fmaps, x.shape[0])
                losses["discriminator"] = discriminator_loss(d_fake, d_real)
                optimizer_d.zero_grad(set_to_none=True)
                losses["discriminator"].backward()
                if opt.disc_grad_clip > 0:
                    nn.utils.clip_grad_norm_(state.discriminator.parameters(), opt.disc_grad_clip)
                optimizer_d.step()

                plain_d = ddp.unwrap(state.discriminator)
                plain_d.requires_grad_(False)  # the codec step needs input gradients only
                with torch.autocast(**amp):
                    fmaps = plain_d(torch.cat([y, x]))
                plain_d.requires_grad_(True)
                g_fake, g_real = split_fmaps(fmaps, x.shape[0])
                losses["adversarial"], losses["feature_matching"] = generator_losses(g_fake, g_real)

            for name, term in reconstruction.items():
                losses[name] = term(y, x)
            losses["aux"] = output.aux_loss.float()
            active = [k for k in weighting if use_gan or k not in GAN_TERMS]
            losses["total"] = sum((weighting[k] * losses[k] for k in active),
                                  torch.zeros((), device=dev))

            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            if opt.grad_clip > 0:
                nn.utils.clip_grad_norm_(state.model.parameters(), opt.grad_clip)
            optimizer.step()
            state.step += 1
            state.cpu_seconds += time.process_time() - cpu_mark

            # losses averaged over ranks: one collective that also makes the stop decisions agree
            values = torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
            values = ddp.all_reduce_mean(values, info).cpu().double()
            if not torch.isfinite(values).all():
                bad = [k for k, v in zip(LOSS_KEYS, values.tolist()) if not math.isfinite(v)]
                raise TrainingError(f"non-finite loss ({', '.join(bad)}) at step {state.step}; "
                                    f"the last good checkpoint is {last_path}")
            sums += values
            n_summed += 1

            if state.step % sched.log_interval == 0 or state.step == sched.max_steps:
                now = time.monotonic()
                rate = (state.step - step_log) / max(now - t_log, 1e-9)
                means = (sums / n_summed).tolist()
                record = {"kind": "train", "step": state.step, "time": time.time(),
                          "lr": opt.lr * opt.lr_factor(state.step - 1), "gan": use_gan,
                          "steps_per_s": rate, "cpu_s": state.cpu_seconds,
                          "peak_memory_mb": peak_memory_mb(dev),
                          **dict(zip(LOSS_KEYS, means))}
                log.write(record)
                log.advance(state.step, f"{rate:.2f} steps/s  mel {record['mel']:.3f}  "
                                        f"total {record['total']:.3f}")
                sums.zero_()
                n_summed, t_log, step_log = 0, now, state.step
            else:
                log.advance(state.step, "")

            if state.step % sched.validation_interval == 0 or state.step == sched.max_steps:
                _validate_and_keep_best(state, val_clips, recipe, info, log, best_path)
            if state.step % sched.checkpoint_interval == 0 or state.step == sched.max_steps:
                _save(state, recipe, info, last_path)
                saved_at = state.step

            over_time = (max_minutes is not None and time.monotonic() - t_start > 60 * max_minutes
                         or max_cpu_minutes is not None and state.cpu_seconds > 60 * max_cpu_minutes)
            if ddp.broadcast_flag(over_time or stop.requested, info) and state.step < sched.max_steps:
                finished = False
                break

        if saved_at != state.step:
            _save(state, recipe, info, last_path)
        hashes = _rank_hashes(state, info)
        if info.is_main:
            log.write({"kind": "stop", "step": state.step, "time": time.time(), "finished": finished,
                       "peak_memory_mb": peak_memory_mb(dev), "rank_weight_hashes": hashes})
        if len(set(hashes)) > 1:
            raise TrainingError(f"processes diverged: weights differ across ranks at step {state.step}")
        return TrainResult(run_dir=run_dir, step=state.step, best_score=state.best_score,
                           finished=finished)
    finally:
        stop.__exit__(None, None, None)
        if log is not None:
            log.close()


def _load_initial_weights(model: nn.Module, path: Path, recipe: Recipe) -> None:
    """Copy an exported model's full state (weights, codebooks, quantizer counters) into ``model``."""
    from ..errors import ModelError
    from ..weights import load_model_file

    try:
        source = load_model_file(path)
    except ModelError as exc:
        raise TrainingError(f"--init-from: {exc}") from None
    ours, theirs = _architecture(recipe.model), _architecture(source.config)
    if ours != theirs:
        keys = [k for k in ours if ours[k] != theirs.get(k)]
        raise TrainingError(f"--init-from {path}: its model differs from the recipe's [model] in "
                            f"{', '.join(keys)}")
    model.load_state_dict(source.state_dict(), strict=True)


# quantizer settings that only shape training: a fine-tuning recipe may change them
_TRAINING_ONLY = ("noise_std", "reparam", "dropout", "replace_interval", "dead_min_count",
                  "replace_source", "warmup_steps", "commitment_weight", "codebook_weight",
                  "ste_restarts")


def _architecture(config: Any) -> dict[str, Any]:
    """A ModelConfig as a flat dict without its name and training-only quantizer settings."""
    flat = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("name", "quantizer")}
    flat.update({f"quantizer.{k}": v for k, v in dataclasses.asdict(config.quantizer).items()
                 if k not in _TRAINING_ONLY})
    return flat


class _StopRequest:
    """Turns SIGTERM / the first SIGINT into a request to stop after the current step (main thread
    only; the previous handlers are restored on exit). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _forget_after(run_dir: Path, step: int) -> None:
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


class _WaveformL1(nn.Module):
    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (estimate - reference).abs().mean()


def _reconstruction_terms(recipe: Recipe) -> dict[str, nn.Module]:
    """The reconstruction losses with a positive weight, by ``LossConfig`` name: each maps
    (estimate, reference) ``[B, 1, T]`` to a scalar."""
    from ..eval.metrics import MelDistance

    weights = recipe.loss
    terms: dict[str, nn.Module] = {}
    if weights.mel > 0:
        terms["mel"] = MelDistance(recipe.model.sample_rate)
    if weights.waveform > 0:
        terms["waveform"] = _WaveformL1()
    if weights.complex_stft > 0:
        terms["complex_stft"] = ComplexSTFTLoss(weights.complex_windows)
    if weights.phase > 0:
        terms["phase"] = PhaseLoss()
    return terms


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _validate_and_keep_best(state: TrainState, clips: Sequence[torch.Tensor], recipe: Recipe,
                            info: ddp.DistInfo, log: RunLog, best_path: Path) -> None:
    """Rank 0 scores the held-out clips, logs codebook usage, and writes best.pt on a new best."""
    if info.is_main:
        model = ddp.unwrap(state.model)
        scores = validate(model, clips, recipe, info.device)
        quantizer = getattr(model, "quantizer", None)
        if quantizer is not None and hasattr(quantizer, "usage_stats"):
            for usage in quantizer.usage_stats():
                scores[f"train_usage@stage_{usage.stage}"] = float(usage.usage)
                scores[f"train_perplexity@stage_{usage.stage}"] = float(usage.perplexity)
            quantizer.reset_usage()
        n_max = max(recipe.validation.n_codebooks)
        score = recipe.validation.score(scores)
        is_best = score < state.best_score
        if is_best:
            state.best_score = score
        log.write({"kind": "validation", "step": state.step, "time": time.time(), "best": is_best,
                   "cpu_s": state.cpu_seconds,
                   **scores})
        if log.tb is not None and recipe.validation.audio_samples:
            with torch.no_grad(), rng_isolated():
                model.eval()
                for i, clip in enumerate(clips[: recipe.validation.audio_samples]):
                    x = clip.to(info.device).unsqueeze(0)
                    y = model.decode(model.encode(x, n_codebooks=n_max), length=x.shape[-1])
                    log.audio(f"decoded/{i}", y, state.step, recipe.model.sample_rate)
                    if state.step <= recipe.schedule.validation_interval:
                        log.audio(f"reference/{i}", x, state.step, recipe.model.sample_rate)
                model.train()
        if is_best:
            ckpt.save_checkpoint(best_path, _payload(state, recipe, [ckpt.capture_rng()]))
    ddp.barrier(info)
    if info.enabled:  # every rank keeps the same best_score
        t = torch.tensor([state.best_score], dtype=torch.float64, device=info.device)
        torch.distributed.broadcast(t, src=0)
        state.best_score = float(t.item())


def _rank_hashes(state: TrainState, info: ddp.DistInfo) -> list[str]:
    """sha256 of the codec's parameters (weights and codebooks) on every rank.

    Buffers are left out: statistics such as a stage's pool of recent frames are per rank by design
    (DDP copies rank 0's buffers to every rank at the start of each forward pass).
    """
    from ..weights import weights_hash

    params = {name: p.detach() for name, p in ddp.unwrap(state.model).named_parameters()}
    return ddp.gather_objects(weights_hash(params), info)


def _payload(state: TrainState, recipe: Recipe, rngs: list[dict[str, Any]]) -> dict[str, Any]:
    disc = ddp.unwrap(state.discriminator) if state.discriminator is not None else None
    return {
        "recipe": recipe_to_json(recipe),
        "step": state.step,
        "best_score": state.best_score,
        "cpu_seconds": state.cpu_seconds,
        "model": ddp.unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "discriminator": disc.state_dict() if disc is not None else {},
        "optimizer_d": state.optimizer_d.state_dict() if state.optimizer_d is not None else {},
        "rng": rngs,
    }


def _save(state: TrainState, recipe: Recipe, info: ddp.DistInfo, path: Path) -> None:
    """Write ``last.pt`` from rank 0 with every rank's RNG states."""
    rngs = ddp.gather_objects(ckpt.capture_rng(), info)
    if info.is_main:
        ckpt.save_checkpoint(path, _payload(state, recipe, rngs))
    ddp.barrier(info)
