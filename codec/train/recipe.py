"""Training recipes: frozen dataclasses are the schema, TOML files are plain data validated against it.

A recipe file has one table per section (``[model]``, ``[model.quantizer]``, ``[data]``, ``[optim]``,
``[loss]``, ``[discriminator]``, ``[schedule]``, ``[validation]``) plus top-level ``seed``; missing keys
take the defaults below, unknown keys and wrong types raise :class:`ConfigError` naming the dotted key.
Every checkpoint stores the resolved recipe (:func:`recipe_to_json`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import tomllib

from ..config import ModelConfig, from_dict, require, to_dict
from ..data.augment import Augmentation
from ..errors import ConfigError

SYNTHETIC = "synthetic"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training and validation audio.

    sources: corpus manifests / folders handed to ``AudioDataset`` (relative paths are relative to the
        working directory), or ``["synthetic"]`` for generated speech-like audio (debug and tests).
    segment_seconds: length of one training crop. batch_size: crops per step and per process.
    num_workers: DataLoader worker processes (0 loads in the training process).
    validation_items / validation_seconds: held-out clips scored at every validation.
    synthetic_clips / synthetic_seconds: size of the generated pool when ``sources = ["synthetic"]``.
    augment: ``[data.augment]``, how real training crops are changed (``codec.data.augment``; off by
        default; validation clips are never changed).
    """

    sources: tuple[str, ...] = (SYNTHETIC,)
    segment_seconds: float = 0.8
    batch_size: int = 8
    num_workers: int = 2
    validation_items: int = 16
    validation_seconds: float = 4.0
    synthetic_clips: int = 32
    synthetic_seconds: float = 4.0
    augment: Augmentation = dataclasses.field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        require(len(self.sources) >= 1, "data.sources", "needs at least one source")
        require(self.segment_seconds > 0, "data.segment_seconds", "must be > 0")
        require(self.batch_size >= 1, "data.batch_size", "must be >= 1")
        require(self.num_workers >= 0, "data.num_workers", "must be >= 0")
        require(self.validation_items >= 1, "data.validation_items", "must be >= 1")
        require(self.validation_seconds > 0, "data.validation_seconds", "must be > 0")
        require(self.synthetic_clips >= 1, "data.synthetic_clips", "must be >= 1")
        require(self.synthetic_seconds >= self.segment_seconds, "data.synthetic_seconds",
               "must be >= data.segment_seconds")

    @property
    def synthetic(self) -> bool:
        return tuple(self.sources) == (SYNTHETIC,)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW for the generator (codec) and the discriminator, with warm-up then exponential decay.

    The learning rate at step s (0-based) is ``lr * min(1, (s + 1) / warmup_steps) * lr_decay ** s``
    (DAC uses ``lr_decay = 0.999996`` per step). ``grad_clip`` is the max global gradient norm
    (0 disables) for both networks.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    lr_decay: float = 0.999996
    warmup_steps: int = 0
    grad_clip: float = 1000.0
    disc_lr: float = 1e-4
    disc_grad_clip: float = 10.0

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", "must be > 0")
        require(self.disc_lr > 0, "optim.disc_lr", "must be > 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas",
               "must be two numbers in [0, 1)")
        require(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        require(0 < self.lr_decay <= 1, "optim.lr_decay", "must be in (0, 1]")
        require(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        require(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        require(self.disc_grad_clip >= 0, "optim.disc_grad_clip", "must be >= 0")

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rate at (0-based) ``step``."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.lr_decay ** step


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Generator loss weights (DAC: mel 15, adversarial 1, feature matching 2).

    mel: multi-scale log-mel L1 (``codec.eval.metrics.MelDistance``). waveform: L1 on samples (0 = off).
    complex_stft: ``codec.train.spectral.ComplexSTFTLoss`` (power-compressed complex STFT + compressed
    magnitude MSE at ``complex_windows``; magnitude and phase; 0 = off).
    phase: ``codec.train.phase.PhaseLoss`` (group delay and instantaneous frequency distances to the
    reference, an anti-wrapping phase term; 0 = off).
    periodic: ``codec.train.periodic.PeriodicLoss`` at ``periodic_period`` samples (the output's
    hop-periodic part, the comb of fixed tones a frame-wise decoder adds, against the reference's;
    0 = off); with ``periodic_ema`` > 0 it is ``PeriodicBiasLoss`` instead: the systematic periodic
    part, a moving average over steps at that rate.
    adversarial / feature_matching: least-squares GAN and discriminator feature L1, from
    ``schedule.gan_start_step`` on. aux: multiplier of the model's own ``aux_loss`` (STE commitment +
    codebook losses, already weighted inside the model; 0 for DiVeQ).
    """

    mel: float = 15.0
    waveform: float = 0.0
    complex_stft: float = 0.0
    phase: float = 0.0
    periodic: float = 0.0
    adversarial: float = 1.0
    feature_matching: float = 2.0
    aux: float = 1.0
    complex_windows: tuple[int, ...] = (256, 512, 1024)
    periodic_period: int = 320
    periodic_ema: float = 0.0

    def __post_init__(self) -> None:
        for key in self.weights():
            require(getattr(self, key) >= 0, f"loss.{key}", "must be >= 0")
        require(bool(self.complex_windows) and all(w >= 8 and w % 4 == 0 for w in self.complex_windows),
               "loss.complex_windows", "must be multiples of 4 and >= 8")
        require(self.periodic_period >= 2, "loss.periodic_period", "must be >= 2")
        require(0.0 <= self.periodic_ema <= 1.0, "loss.periodic_ema", "must be in [0, 1]")

    def weights(self) -> dict[str, float]:
        """Loss term name -> weight, for every weighted term (the total is their weighted sum)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("complex_windows", "periodic_period", "periodic_ema")}


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """The discriminator of the GAN phase and what it sees.

    kind ``dac``: DAC's ``dac.model.discriminator.Discriminator`` with MPD ``periods``, MSD ``rates``
    and MRD ``fft_sizes``. DAC's full one is periods [2, 3, 5, 7, 11] + fft_sizes [2048, 1024, 512];
    every MPD has ~4.2M parameters at DAC's fixed widths, so a CPU recipe keeps the lists short.
    kind ``stft``: ``codec.train.discriminator.STFTDiscriminator``, compressed complex STFT
    sub-discriminators at ``fft_sizes`` with ``channels`` channels (made for CPU budgets;
    ``periods`` and ``rates`` must be empty).
    items / crop_seconds: the discriminator sees the first ``items`` crops of each batch (0: all),
    each cut to a random ``crop_seconds`` excerpt (0: the whole crop; real and decoded cut alike).
    """

    kind: Literal["dac", "stft"] = "dac"
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    rates: tuple[int, ...] = ()
    fft_sizes: tuple[int, ...] = (2048, 1024, 512)
    channels: int = 16
    items: int = 0
    crop_seconds: float = 0.0

    def __post_init__(self) -> None:
        require(all(p >= 1 for p in self.periods), "discriminator.periods", "must be >= 1")
        require(all(r >= 1 for r in self.rates), "discriminator.rates", "must be >= 1")
        require(all(f >= 16 and f % 4 == 0 for f in self.fft_sizes), "discriminator.fft_sizes",
               "must be multiples of 4 and >= 16")
        require(bool(self.periods or self.rates or self.fft_sizes), "discriminator",
               "needs at least one of periods, rates, fft_sizes")
        require(self.kind == "dac" or not (self.periods or self.rates), "discriminator.periods",
               "the stft discriminator has no periods or rates (set them to [])")
        require(self.kind == "dac" or bool(self.fft_sizes), "discriminator.fft_sizes",
               "the stft discriminator needs at least one")
        require(self.channels >= 1, "discriminator.channels", "must be >= 1")
        require(self.items >= 0, "discriminator.items", "must be >= 0")
        require(self.crop_seconds >= 0, "discriminator.crop_seconds", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """Step counts. Steps are optimiser steps; ``gan_start_step`` = first step with the GAN losses
    (a value >= ``max_steps`` means mel-only training and no discriminator at all)."""

    max_steps: int = 100_000
    gan_start_step: int = 0
    log_interval: int = 10
    validation_interval: int = 1000
    checkpoint_interval: int = 500

    def __post_init__(self) -> None:
        require(self.max_steps >= 1, "schedule.max_steps", "must be >= 1")
        require(self.gan_start_step >= 0, "schedule.gan_start_step", "must be >= 0")
        for key in ("log_interval", "validation_interval", "checkpoint_interval"):
            require(getattr(self, key) >= 1, f"schedule.{key}", "must be >= 1")


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """What a validation scores: the held-out set decoded at each ``n_codebooks`` value (each bitrate
    the model serves); PESQ-WB / STOI are optional because they cost CPU time, DNSMOS (``dnsmos``:
    ``codec.eval.dnsmos``, ~0.3-1 CPU-s per clip) is scored at the largest ``n_codebooks`` only, as are
    ``seen_items`` clips of training speakers and as many of held-out speakers, both from the corpus
    sources ``seen_sources`` (real speech; PESQ-WB / STOI: ``seen_*`` minus ``unseen_*`` is the
    gap that measures over-fitting to the corpus's voices). ``best_by`` picks the
    metric (at the most stages) that decides ``best.pt``: mel_distance, pesq_wb, stoi or si_sdr."""

    n_codebooks: tuple[int, ...] = (3, 6, 12)
    pesq: bool = True
    stoi: bool = True
    dnsmos: bool = False
    seen_items: int = 0
    seen_sources: tuple[str, ...] = ("asterisk", "fillets", "tuxpaint")
    audio_samples: int = 2
    best_by: str = "mel_distance"

    def __post_init__(self) -> None:
        require(len(self.n_codebooks) >= 1 and all(n >= 1 for n in self.n_codebooks),
               "validation.n_codebooks", "needs at least one value >= 1")
        require(self.audio_samples >= 0, "validation.audio_samples", "must be >= 0")
        require(self.seen_items >= 0, "validation.seen_items", "must be >= 0")
        require(self.best_by in _BEST_BY, "validation.best_by",
               f"must be one of {', '.join(sorted(_BEST_BY))}")
        require(self.best_by != "pesq_wb" or self.pesq, "validation.best_by",
               "pesq_wb needs validation.pesq = true")
        require(self.best_by != "stoi" or self.stoi, "validation.best_by",
               "stoi needs validation.stoi = true")

    def score(self, scores: dict[str, float]) -> float:
        """The number best.pt minimises: ``best_by`` at the largest ``n_codebooks``, negated for
        metrics where higher is better (PESQ-WB, STOI, SI-SDR)."""
        value = scores[f"{self.best_by}@{max(self.n_codebooks)}"]
        return _BEST_BY[self.best_by] * value


# validation metric -> sign that turns it into lower-is-better
_BEST_BY = {"mel_distance": 1.0, "pesq_wb": -1.0, "stoi": -1.0, "si_sdr": -1.0}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a training run needs; a run is reproducible from its recipe and seed."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    discriminator: DiscriminatorConfig = dataclasses.field(default_factory=DiscriminatorConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        too_many = [n for n in self.validation.n_codebooks if n > self.model.n_codebooks]
        require(not too_many, "validation.n_codebooks",
               f"{too_many[0] if too_many else 0} exceeds model.quantizer.n_codebooks "
               f"{self.model.n_codebooks}")
        require(self.data.segment_seconds * self.model.sample_rate >= self.model.hop_length,
               "data.segment_seconds", "shorter than one frame")

    @property
    def uses_gan(self) -> bool:
        """Whether any step of this run trains with the discriminator."""
        adv = self.loss.adversarial > 0 or self.loss.feature_matching > 0
        return adv and self.schedule.gan_start_step < self.schedule.max_steps

    @property
    def segment_samples(self) -> int:
        """Training crop length in samples, rounded to whole frames."""
        hop = self.model.hop_length
        return max(1, round(self.data.segment_seconds * self.model.sample_rate / hop)) * hop

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self, **sections: Any) -> Recipe:
        """A copy with some fields replaced, e.g. ``recipe.replace(schedule=...)``."""
        return dataclasses.replace(self, **sections)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Validate plain data (a parsed TOML file or a stored JSON recipe) into a :class:`Recipe`."""
    return from_dict(Recipe, data)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a TOML recipe. Raises ConfigError (missing file, bad TOML, bad key).

    A recipe may start with ``extends = "other.toml"`` (relative to its own folder): it is then that
    recipe with this file's keys laid over it (tables merge key by key, other values replace), so a
    variant states only what differs.
    """
    return recipe_from_dict(_read_toml(Path(path), ()))


def _read_toml(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"extends: expected a file name, got {base!r}")
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise ConfigError(f"extends: {path} extends itself through {base}")
    return _merge(_read_toml(base_path, chain + (path.resolve(),)), data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def recipe_to_json(recipe: Recipe) -> str:
    """The resolved recipe as a JSON string (stored in every checkpoint)."""
    return json.dumps(recipe.to_dict(), sort_keys=True)


def recipe_from_json(text: str) -> Recipe:
    """Inverse of :func:`recipe_to_json`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"stored recipe is not valid JSON: {exc}") from None
    return recipe_from_dict(data)
