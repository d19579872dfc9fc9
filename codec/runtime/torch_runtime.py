"""The torch runtime: a :class:`codec.models.model.Codec` (or anything with its ``encode`` / ``decode``)
behind the window interface of :mod:`codec.runtime.base`, on the model's device.

Each call runs in eval mode under ``torch.inference_mode`` and restores the model's train/eval flag
afterwards, so coding is deterministic even for a model that was left in training mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run in eval mode (deterministic coding), restoring the model's train/eval flag afterwards."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class TorchRuntime:
    """Windows coded by a torch model (``model.encode(audio [C, 1, T], n_codebooks)`` -> codes, and
    ``model.decode(codes)`` -> audio ``[C, 1, F * hop_length]``)."""

    runtime = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config: ModelConfig = model.config
        self.weights_hash: str | None = getattr(model, "weights_hash", None)
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        self.device = params[0].device if params else torch.device("cpu")

    def encode_window(self, audio: np.ndarray, n_codebooks: int) -> np.ndarray:
        """audio ``[C, T]`` float32 -> codes ``[C, n_codebooks, ceil(T / hop_length)]`` int64."""
        with eval_mode(self.model), torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)[:, None, :]
            codes = self.model.encode(x, n_codebooks=n_codebooks)
        return codes.to("cpu", torch.int64).numpy()

    def decode_window(self, codes: np.ndarray) -> np.ndarray:
        """codes ``[C, n, F]`` int64 -> audio ``[C, F * hop_length]`` float32."""
        with eval_mode(self.model), torch.inference_mode():
            audio = self.model.decode(torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64)).to(self.device))
        return audio[:, 0].float().cpu().numpy()
