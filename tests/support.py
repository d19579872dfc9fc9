"""Test support shared by tests and scripts: cheap speech-like signals, an STFT loss, and local
multi-process training runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec.config import ModelConfig, QuantizerConfig


def speechlike(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-speech-like signal: harmonics of a gliding pitch, two moving formant
    emphases and a syllabic envelope. [T] float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 110 + 60 * rng.random() + 30 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    formants = [500 + 300 * np.sin(2 * np.pi * 1.3 * t + rng.random() * 6),
                1500 + 600 * np.sin(2 * np.pi * 0.9 * t + rng.random() * 6)]
    x = np.zeros(n)
    for h in range(1, 30):
        freq = h * f0
        amp = sum(np.exp(-((freq - f) / 250.0) ** 2) for f in formants) / h ** 0.5
        amp = amp * (freq < sample_rate / 2)
        x += amp * np.sin(h * phase)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t)) ** 1.5
    x = x * envelope + 0.003 * rng.standard_normal(n)
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def tiny_causal_config(lookahead: int = 3, causal: bool = True, name: str = "tiny-causal",
                       encoder_lookahead: int = 0) -> ModelConfig:
    """A tiny STFT/Vocos model (hop 80: 200 frames/s at 16 kHz, head hop 40, STFT hop 40; 3 stages of
    16 codes), causal with ``lookahead`` and ``encoder_lookahead`` unless ``causal`` is False."""
    return ModelConfig(name=name, encoder="stft", decoder="vocos", stem_stride=40, encoder_rates=(2,),
                       encoder_dim=16, encoder_depth=2, latent_dim=8, decoder_dim=16, decoder_depth=2,
                       decoder_rates=(2,), spectrum="cartesian", causal=causal,
                       lookahead=lookahead if causal else 0,
                       encoder_lookahead=encoder_lookahead if causal else 0,
                       quantizer=QuantizerConfig(n_codebooks=3, codebook_size=16, codebook_dim=8))


def stft_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Log + linear magnitude L1 over two STFT sizes; [B, 1, T] inputs."""
    loss = a.new_zeros(())
    for n in (256, 1024):
        w = torch.hann_window(n)
        A = torch.stft(a[:, 0], n, n // 4, window=w, return_complex=True).abs()
        B = torch.stft(b[:, 0], n, n // 4, window=w, return_complex=True).abs()
        loss = loss + (torch.log(A + 1e-5) - torch.log(B + 1e-5)).abs().mean() + (A - B).abs().mean()
    return loss


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, kwargs: dict[str, Any]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from codec.train.loop import train

    train(**kwargs)


def launch_local(nprocs: int, recipe_path: Path, out: Path, **kwargs: Any) -> None:
    """Run :func:`codec.train.loop.train` in ``nprocs`` local CPU processes (gloo) and wait, the way
    torchrun would. Each process uses one thread. Raises if any process fails."""
    import torch.multiprocessing as mp

    args = {"recipe": Path(recipe_path), "out": Path(out), "device": "cpu", "progress": False,
            **kwargs}
    mp.spawn(_worker, args=(nprocs, _free_port(), args), nprocs=nprocs, join=True)


def tiny_config(name: str = "tiny") -> Any:
    """The tiny model the API, CLI and reliability tests code with (DAC-style layers, 3 stages of 16
    codes quantized in 4-d projections of an 8-d latent): a few thousand parameters."""
    from codec.config import ModelConfig, QuantizerConfig

    return ModelConfig(name=name, encoder_dim=4, decoder_dim=16, latent_dim=8,
                       quantizer=QuantizerConfig(n_codebooks=3, codebook_size=16, codebook_dim=4))


def save_tiny_model(path: Path, name: str = "tiny", seed: int = 0, graphs: bool = False) -> Path:
    """The tiny model (seeded) saved as ``path``, with its ONNX graphs next to it if ``graphs``."""
    from codec.models.builder import build_codec
    from codec.models.weights import save_model

    torch.manual_seed(seed)
    save_model(build_codec(tiny_config(name)), path)
    if graphs:
        from codec.runtime.onnx_export import export_graphs

        export_graphs(path)
    return path


def copy_model(source: Path, folder: Path) -> Path:
    """A model file copied into ``folder`` with its card and graphs (they name the file, not the
    folder); returns the copy's path."""
    import shutil

    for path in source.parent.glob(f"{source.stem}.*"):
        shutil.copy(path, folder / path.name)
    return folder / source.name
