"""Vector quantizers: DiVeQ and SF-DiVeQ stages, the residual quantizer, and the STE baseline."""

from __future__ import annotations

from torch import nn

from ..config import QuantizerConfig
from .base import QuantizerOutput, StageUsage
from .diveq import DiVeQStage
from .residual import ResidualQuantizer
from .sfdiveq import SFDiVeQStage
from .ste import STEResidualQuantizer


def build_quantizer(input_dim: int, config: QuantizerConfig) -> nn.Module:
    """The residual quantizer for ``config.kind`` over a latent of ``input_dim`` channels."""
    if config.kind == "ste":
        return STEResidualQuantizer(input_dim, config)
    return ResidualQuantizer(input_dim, config)


__all__ = ["QuantizerOutput", "StageUsage", "DiVeQStage", "SFDiVeQStage", "ResidualQuantizer",
           "STEResidualQuantizer", "build_quantizer"]
