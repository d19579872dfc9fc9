"""Vector quantizers: DiVeQ and SF-DiVeQ stages, the residual quantizer, and the STE baseline.

They take plain arguments; ``codec.models.builder.build_quantizer`` maps a ``QuantizerConfig`` to one.
"""

from __future__ import annotations

from .base import Quantizer, QuantizerOutput, StageUsage
from .diveq import DiVeQStage
from .residual import ResidualQuantizer
from .sfdiveq import SFDiVeQStage
from .ste import STEResidualQuantizer

__all__ = ["Quantizer", "QuantizerOutput", "StageUsage", "DiVeQStage", "SFDiVeQStage", "ResidualQuantizer",
           "STEResidualQuantizer"]
