"""Shared test setup: every test starts from the same random state (no downloads, CPU only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_model_with_graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model of support.tiny_config (seed 0) with its ONNX graphs, exported once per session
    (copy it with support.copy_model to use it elsewhere)."""
    from support import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-graphs") / "tiny.safetensors", graphs=True)
