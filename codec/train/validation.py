"""Validation during training: the held-out clips scored at every bitrate the recipe serves."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..models.model import Codec
from ..quantize.base import usage_from_codes
from . import checkpoint as ckpt
from . import distributed as ddp
from .recipe import Recipe
from .runlog import RunLog
from .state import TrainState, checkpoint_payload


@contextlib.contextmanager
def rng_isolated() -> Iterator[None]:
    """Run the block without disturbing any RNG state (python, numpy, torch, cuda)."""
    state = ckpt.capture_rng()
    try:
        yield
    finally:
        ckpt.restore_rng(state)


@torch.no_grad()
def code_clips(model: Codec, clips: Sequence[torch.Tensor], n_codebooks: int,
               device: torch.device) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Encode and decode each clip (``[1, T]`` or ``[T]``) with ``n_codebooks`` stages (the model
    in eval mode). Returns ([(reference, decoded) ``[1, 1, T]`` float32 per clip], every clip's codes
    ``[n_codebooks, F_total]`` on the CPU, concatenated over time)."""
    pairs, codes_all = [], []
    for clip in clips:
        x = clip.to(device).reshape(1, 1, -1)  # [1, 1, T]
        codes = model.encode(x, n_codebooks=n_codebooks)  # [1, n, F]
        y = model.decode(codes, length=x.shape[-1]).float()  # [1, 1, T]
        pairs.append((x, y))
        codes_all.append(codes[0].cpu())
    return pairs, torch.cat(codes_all, dim=-1)


@torch.no_grad()
def validate(model: Codec, clips: Sequence[torch.Tensor], recipe: Recipe,
             device: torch.device,
             gap_clips: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] = ((), ())) -> dict[str, float]:
    """Score the held-out clips at every ``validation.n_codebooks`` value.

    Returns ``{"mel_distance@N", "si_sdr@N", "pesq_wb@N", "stoi@N"}`` (means over clips) for each N,
    ``tone_db@N`` / ``pause_tone_db@N`` (the largest added stationary tone, :mod:`codec.eval.tones`,
    over all clips' frames together and over their pauses), ``dnsmos_ovrl@N`` etc. at the largest N
    when ``validation.dnsmos``, ``seen_pesq_wb@N`` / ``seen_stoi@N`` and ``unseen_pesq_wb@N`` /
    ``unseen_stoi@N`` on ``gap_clips`` (real speech of training / held-out speakers) at the largest
    N, plus ``usage@stage_k`` / ``perplexity@stage_k`` of the codes the clips got at the largest N.
    Leaves the model in training mode and the RNG states as they were.
    """
    from ..eval import metrics
    from ..eval.tones import added_tones

    sr = recipe.model.sample_rate
    mel = metrics.MelDistance(sr).to(device)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    with rng_isolated():
        n_max = max(recipe.validation.n_codebooks)
        for n in recipe.validation.n_codebooks:
            pairs, codes = code_clips(model, clips, n, device)
            scores: dict[str, list[float]] = {}
            for x, y in pairs:
                scores.setdefault("mel_distance", []).append(float(mel(y, x)))
                ref, deg = x[0, 0].cpu().double().numpy(), y[0, 0].cpu().double().numpy()
                ref_a, deg_a = metrics.align(ref, deg, max_shift=int(0.05 * sr))
                scores.setdefault("si_sdr", []).append(metrics.si_sdr(ref_a, deg_a))
                if recipe.validation.pesq:
                    scores.setdefault("pesq_wb", []).append(metrics.pesq_wb(ref_a, deg_a, sr))
                if recipe.validation.stoi:
                    scores.setdefault("stoi", []).append(metrics.stoi(ref_a, deg_a, sr))
            for key, values in scores.items():
                out[f"{key}@{n}"] = float(np.nanmean(values))
            if n == n_max and recipe.validation.dnsmos:
                from ..eval.dnsmos import dnsmos

                mos = [dnsmos(y[0, 0].cpu().numpy(), sr) for _, y in pairs]
                for key in mos[0]:
                    out[f"{key}@{n}"] = float(np.nanmean([m[key] for m in mos]))
            tones = added_tones(torch.cat([x.reshape(-1) for x, _ in pairs]).cpu().numpy(),
                                torch.cat([y.reshape(-1) for _, y in pairs]).cpu().numpy(), sr)
            out[f"tone_db@{n}"], out[f"pause_tone_db@{n}"] = tones.tone_db, tones.pause_tone_db
            for name, group in zip(("seen", "unseen"), gap_clips, strict=True):
                if n != n_max or not group:
                    continue
                pesq, stoi = [], []
                for x, y in code_clips(model, group, n, device)[0]:
                    ref, deg = x[0, 0].cpu().double().numpy(), y[0, 0].cpu().double().numpy()
                    ref_a, deg_a = metrics.align(ref, deg, max_shift=int(0.05 * sr))
                    pesq.append(metrics.pesq_wb(ref_a, deg_a, sr))
                    stoi.append(metrics.stoi(ref_a, deg_a, sr))
                out[f"{name}_pesq_wb@{n}"] = float(np.nanmean(pesq))
                out[f"{name}_stoi@{n}"] = float(np.nanmean(stoi))
            if n == n_max:
                for usage in usage_from_codes(codes, recipe.model.codebook_size):
                    out[f"usage@stage_{usage.stage}"] = usage.usage
                    out[f"perplexity@stage_{usage.stage}"] = usage.perplexity
    model.train(was_training)
    return out


def validate_and_keep_best(state: TrainState, clips: Sequence[torch.Tensor], recipe: Recipe,
                            info: ddp.DistInfo, log: RunLog, best_path: Path,
                            gap_clips: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] = ((), ())) -> None:
    """Rank 0 scores the held-out clips (and ``gap_clips``), logs codebook usage, and writes
    best.pt on a new best."""
    if info.is_main:
        model = state.codec
        scores = validate(model, clips, recipe, info.device, gap_clips)
        for usage in model.quantizer.usage_stats():
            scores[f"train_usage@stage_{usage.stage}"] = float(usage.usage)
            scores[f"train_perplexity@stage_{usage.stage}"] = float(usage.perplexity)
        model.quantizer.reset_usage()
        score = recipe.validation.score(scores)
        is_best = score < state.best_score
        if is_best:
            state.best_score = score
        log.write({"kind": "validation", "step": state.step, "time": time.time(), "best": is_best,
                   "cpu_s": state.cpu_seconds, **scores})
        if log.tb is not None and recipe.validation.audio_samples:
            _log_audio(state, clips, recipe, info, log)
        if is_best:
            ckpt.save_checkpoint(best_path, checkpoint_payload(state, recipe, [ckpt.capture_rng()]))
    ddp.barrier(info)
    if info.enabled:  # every rank keeps the same best_score
        t = torch.tensor([state.best_score], dtype=torch.float64, device=info.device)
        torch.distributed.broadcast(t, src=0)
        state.best_score = float(t.item())


def _log_audio(state: TrainState, clips: Sequence[torch.Tensor], recipe: Recipe,
               info: ddp.DistInfo, log: RunLog) -> None:
    """TensorBoard: the first validation clips decoded at the most stages (the references once)."""
    model = state.codec
    n_max = max(recipe.validation.n_codebooks)
    with torch.no_grad(), rng_isolated():
        model.eval()
        for i, clip in enumerate(clips[: recipe.validation.audio_samples]):
            x = clip.to(info.device).unsqueeze(0)
            y = model.decode(model.encode(x, n_codebooks=n_max), length=x.shape[-1])
            log.audio(f"decoded/{i}", y, state.step, recipe.model.sample_rate)
            if state.step <= recipe.schedule.validation_interval:
                log.audio(f"reference/{i}", x, state.step, recipe.model.sample_rate)
        model.train()
