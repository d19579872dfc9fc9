"""CPU seconds per training step of a recipe at several numeric precisions (issue 20, "faster steps").

    .venv/bin/python scripts/bench_precision.py [RECIPE] [--steps 12] [--threads 1]

Builds the recipe's model (random weights) and objective, and runs full training steps (forward,
every loss term, backward, AdamW) on batches of noise of the recipe's shape, timing each with
``time.process_time`` (CPU seconds: fair on a shared machine). Modes:

- ``fp32``: what training does today;
- ``bf16-autocast``: the codec's forward under ``torch.autocast("cpu", bfloat16)`` (the STFT / iSTFT
  and the losses stay float32: the model casts its spectra, the objective runs outside autocast);
- ``bf16-mkldnn``: fp32 tensors, but oneDNN allowed to compute convolutions and matmuls in bf16
  (``torch.backends.mkldnn`` matmul / conv fp32 precision "bf16");

and, with ``--threads 2``, the same with two threads. Reports the median over ``--steps`` after two
warm-up steps, and the loss after the steps (the modes start from the same weights and batches, so a
mode whose loss drifts far from fp32's is not a like-for-like speed-up).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from codec.models.builder import build_codec  # noqa: E402
from codec.train.objective import Objective  # noqa: E402
from codec.train.recipe import load_recipe  # noqa: E402


@contextlib.contextmanager
def precision(mode: str) -> Iterator[dict]:
    """The autocast settings of ``mode``, with oneDNN's math mode set for its duration."""
    backends = torch.backends.mkldnn
    before = (getattr(backends.matmul, "fp32_precision", None), getattr(backends.conv, "fp32_precision", None)) \
        if hasattr(backends, "matmul") else (None, None)
    if mode == "bf16-mkldnn":
        backends.matmul.fp32_precision = "bf16"
        backends.conv.fp32_precision = "bf16"
    try:
        yield dict(device_type="cpu", dtype=torch.bfloat16, enabled=mode == "bf16-autocast")
    finally:
        if before[0] is not None:
            backends.matmul.fp32_precision = before[0]
            backends.conv.fp32_precision = before[1]


def run(recipe_path: Path, mode: str, steps: int, threads: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    recipe = load_recipe(recipe_path)
    model = build_codec(recipe.model).train()
    objective = Objective(recipe, torch.device("cpu"))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = recipe.segment_samples
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(recipe.data.batch_size, 1, n, generator=gen) * 0.1 for _ in range(steps + 2)]
    times, loss = [], float("nan")
    with precision(mode) as amp:
        for i, x in enumerate(batches):
            start = time.process_time()
            with torch.autocast(**amp):
                out = model(x)
            losses = objective.reconstruction(out.audio.float(), x)
            total = objective.total({**objective.zeros(), **losses}, use_gan=False)
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            if i >= 2:
                times.append(time.process_time() - start)
            loss = float(total)
    return statistics.median(times), loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default=str(_ROOT / "recipes" / "speech16k-stft.toml"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"{'mode':16s} {'threads':>7s} {'CPU-s/step':>10s} {'loss after':>10s}")
    for mode in ("fp32", "bf16-autocast", "bf16-mkldnn"):
        seconds, loss = run(Path(args.recipe), mode, args.steps, args.threads)
        print(f"{mode:16s} {args.threads:7d} {seconds:10.3f} {loss:10.4f}", flush=True)


if __name__ == "__main__":
    main()
