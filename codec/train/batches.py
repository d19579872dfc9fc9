"""Training data for the loop: the step-indexed batch sampler, the datasets a recipe names, and the
held-out validation clips.

A batch is a pure function of (seed, rank, step) (:class:`StepBatchSampler`), which is what lets a
resumed run reproduce the uninterrupted one.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import TrainingError
from .recipe import Recipe


class SyntheticSpeech(Dataset):
    """A pool of generated speech-like clips (``codec.data.dataset.synth_speechlike``), cropped.

    Item ``index`` is a deterministic crop ``[1, segment_samples]`` float32 (clip and offset derived
    from the index), so any index range can serve as an endless stream of distinct crops.
    """

    def __init__(self, n_clips: int, clip_seconds: float, sample_rate: int, segment_samples: int,
                 seed: int) -> None:
        from ..data.dataset import synth_speechlike

        self.clips = [np.asarray(synth_speechlike(clip_seconds, sample_rate, seed=seed + i),
                                 dtype=np.float32).reshape(-1) for i in range(n_clips)]
        self.segment_samples = segment_samples

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng(index)
        clip = self.clips[index % len(self.clips)]
        start = int(rng.integers(0, max(1, clip.size - self.segment_samples + 1)))
        crop = clip[start:start + self.segment_samples]
        crop = np.pad(crop, (0, self.segment_samples - crop.size))
        return torch.from_numpy(crop.copy()).unsqueeze(0)


class StepBatchSampler:
    """Endless batches of dataset indices; the batch of ``step`` depends only on (seed, rank, step)."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int, start_step: int,
                 end_step: int) -> None:
        self.n_items, self.batch_size = n_items, batch_size
        self.seed, self.rank = seed, rank
        self.start_step, self.end_step = start_step, end_step

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            words = np.random.SeedSequence([self.seed, self.rank, step]).generate_state(2)
            rng = np.random.default_rng(words)
            yield rng.integers(0, self.n_items, size=self.batch_size).tolist()


def worker_init(_: int) -> None:
    """DataLoader worker setup: one torch thread, and signals left to the main process."""
    torch.set_num_threads(1)
    # Ctrl-C / SIGTERM sent to the whole process group must reach only the main process, which stops
    # cleanly with a checkpoint and then shuts its workers down (they also exit if it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_train_data(recipe: Recipe, rank: int) -> Dataset:
    """The training dataset (real corpus via ``AudioDataset``, or the synthetic pool)."""
    sr, seg = recipe.model.sample_rate, recipe.segment_samples
    if recipe.data.synthetic:
        return SyntheticSpeech(recipe.data.synthetic_clips, recipe.data.synthetic_seconds, sr, seg,
                               seed=recipe.seed)
    from ..data.dataset import AudioDataset

    # a large epoch: item i is a pure function of (seed, i), and StepBatchSampler draws the indices
    return AudioDataset(_sources(recipe), sample_rate=sr, segment_samples=seg, split="train",
                        seed=recipe.seed, epoch_size=1 << 30, augment=recipe.data.augment)


def build_validation_clips(recipe: Recipe, split: str = "valid", items: int | None = None,
                           corpus_sources: tuple[str, ...] | None = None) -> list[torch.Tensor]:
    """Held-out clips, each ``[1, T_i]`` float32 (at most ``data.validation_seconds``; the corpus's
    ``valid`` split, or generated clips for a synthetic recipe). ``split="train"`` gives clips of
    training speakers instead (the seen side of the seen / held-out gap); ``items`` overrides
    ``data.validation_items``; ``corpus_sources`` keeps manifest rows of those sources only."""
    n_items = recipe.data.validation_items if items is None else items
    sr = recipe.model.sample_rate
    hop = recipe.model.hop_length
    n_samples = max(1, round(recipe.data.validation_seconds * sr / hop)) * hop
    if recipe.data.synthetic:
        from ..data.dataset import synth_speechlike

        return [torch.from_numpy(np.asarray(
            synth_speechlike(n_samples / sr, sr, seed=recipe.seed + (1_000_000 if split == "valid" else 0) + i),
            dtype=np.float32).reshape(1, -1)[:, :n_samples].copy())
            for i in range(n_items)]
    from ..data.dataset import ValidationSet

    clips = ValidationSet(_sources(recipe), sample_rate=sr, seconds=recipe.data.validation_seconds,
                          max_files=n_items, split=split, corpus_sources=corpus_sources)
    # the mel distance's longest window needs more than 1024 samples
    return [c.float().reshape(1, -1) for c in (clips[i] for i in range(len(clips)))
            if c.shape[-1] > 1024]


def _sources(recipe: Recipe) -> list[Path]:
    paths = [Path(s) for s in recipe.data.sources]
    for i, p in enumerate(paths):
        if not p.exists():
            raise TrainingError(f"data.sources[{i}]: {p} not found (build the corpus first)")
    return paths
