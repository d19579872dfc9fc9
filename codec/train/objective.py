"""What a training step minimises: the loss terms, their weights (``recipe.loss``, data) and the
weighted total. A new loss term is one ``LossConfig`` field, one entry in :data:`LOSS_KEYS` and, for a
reconstruction term, one line in :func:`reconstruction_terms`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .periodic import PeriodicBiasLoss, PeriodicLoss
from .phase import PhaseLoss
from .recipe import Recipe
from .spectral import ComplexSTFTLoss

#: Every loss a step reports, in the order logs and the cross-rank mean use.
LOSS_KEYS = ("total", "mel", "waveform", "complex_stft", "phase", "periodic", "adversarial",
             "feature_matching", "aux", "discriminator")
#: Terms that exist only from ``schedule.gan_start_step`` on.
GAN_TERMS = ("adversarial", "feature_matching")


class WaveformL1(nn.Module):
    """L1 distance of samples: (estimate, reference) ``[B, 1, T]`` -> scalar."""

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (estimate - reference).abs().mean()


def reconstruction_terms(recipe: Recipe) -> dict[str, nn.Module]:
    """The reconstruction losses with a positive weight, by ``LossConfig`` name: each maps
    (estimate, reference) ``[B, 1, T]`` to a scalar."""
    from ..eval.metrics import MelDistance

    weights = recipe.loss
    terms: dict[str, nn.Module] = {}
    if weights.mel > 0:
        terms["mel"] = MelDistance(recipe.model.sample_rate)
    if weights.waveform > 0:
        terms["waveform"] = WaveformL1()
    if weights.complex_stft > 0:
        terms["complex_stft"] = ComplexSTFTLoss(weights.complex_windows)
    if weights.phase > 0:
        terms["phase"] = PhaseLoss()
    if weights.periodic > 0:
        terms["periodic"] = (PeriodicBiasLoss(weights.periodic_period, weights.periodic_ema)
                             if weights.periodic_ema > 0 else PeriodicLoss(weights.periodic_period))
    return terms


class Objective:
    """The loss terms of a run on ``device`` and how a step combines them.

    terms: the reconstruction losses by name (:func:`reconstruction_terms`). The weights are
    ``recipe.loss.weights()`` without the zero ones; ``amp`` the autocast settings of the forward
    passes (bfloat16 on CUDA, off elsewhere).
    """

    def __init__(self, recipe: Recipe, device: torch.device) -> None:
        self.recipe = recipe
        self.device = device
        self.terms = {name: term.to(device) for name, term in reconstruction_terms(recipe).items()}
        self.weights = {k: w for k, w in recipe.loss.weights().items() if w > 0}
        self.amp: dict[str, Any] = dict(device_type=device.type, dtype=torch.bfloat16,
                                        enabled=device.type == "cuda")

    def uses_gan(self, step: int) -> bool:
        """Whether the step after ``step`` completed steps trains adversarially."""
        return self.recipe.uses_gan and step >= self.recipe.schedule.gan_start_step

    def zeros(self) -> dict[str, torch.Tensor]:
        """Every loss of :data:`LOSS_KEYS` at 0 (the ones a step does not compute stay so)."""
        return dict.fromkeys(LOSS_KEYS, torch.zeros((), device=self.device))

    def reconstruction(self, estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each reconstruction term of (estimate, reference) ``[B, 1, T]``."""
        return {name: term(estimate, reference) for name, term in self.terms.items()}

    def total(self, losses: dict[str, torch.Tensor], use_gan: bool) -> torch.Tensor:
        """The weighted sum of the terms (the GAN ones only when ``use_gan``)."""
        active = [k for k in self.weights if use_gan or k not in GAN_TERMS]
        return sum((self.weights[k] * losses[k] for k in active), torch.zeros((), device=self.device))
