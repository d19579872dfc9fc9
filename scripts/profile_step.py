"""Where a training step spends its CPU time: encoder, quantizer, decoder and each loss, forward + backward.

    .venv/bin/python scripts/profile_step.py recipes/screen/a-today.toml recipes/screen/e-stft.toml

For each recipe, builds its model (random weights), a batch of the recipe's shape (batch_size x
segment_seconds of noise) and times each part on one thread with ``time.process_time`` (CPU seconds,
mean of ``--repeats`` after one warm-up call). The parts overlap a real step only approximately (a
real step runs them once, chained, plus the optimiser), so the sum is a guide, not the step's cost;
the step's own cost is ``cpu_s`` / steps in a run's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from codec.eval.metrics import MelDistance
from codec.models.builder import build_codec
from codec.train.recipe import load_recipe
from codec.train.spectral import ComplexSTFTLoss


def cpu_seconds(fn: Callable[[], None], repeats: int) -> float:
    """Mean CPU seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def profile(recipe_path: Path, repeats: int) -> dict[str, float]:
    """CPU seconds of each part of one training step of the recipe's model."""
    recipe = load_recipe(recipe_path)
    model = build_codec(recipe.model).train()
    n = round(recipe.data.segment_seconds * recipe.model.sample_rate)
    audio = torch.randn(recipe.data.batch_size, 1, n) * 0.1
    latent = model.encode_latent(audio).detach()
    decoded = model(audio).audio.detach()
    mel = MelDistance(recipe.model.sample_rate)
    complex_stft = ComplexSTFTLoss(tuple(recipe.loss.complex_windows))

    def encoder() -> None:
        model.encode_latent(audio).square().mean().backward()

    def quantizer() -> None:
        model.quantizer(latent.clone().requires_grad_(True)).quantized.square().mean().backward()

    def decoder() -> None:
        model.decoder(latent.clone().requires_grad_(True)).square().mean().backward()

    def mel_loss() -> None:
        mel(decoded.clone().requires_grad_(True), audio).backward()

    def complex_loss() -> None:
        complex_stft(decoded.clone().requires_grad_(True), audio).backward()

    parts = {"encoder": encoder, "quantizer": quantizer, "decoder": decoder, "mel loss": mel_loss}
    if recipe.loss.complex_stft > 0:
        parts["complex STFT loss"] = complex_loss
    return {name: cpu_seconds(fn, repeats) for name, fn in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for path in args.recipes:
        times = profile(path, args.repeats)
        total = sum(times.values())
        print(f"{path} (sum {total:.3f} CPU-s)")
        for name, seconds in times.items():
            print(f"  {name:<18} {seconds:6.3f} CPU-s  {100 * seconds / total:4.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
