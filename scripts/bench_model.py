"""Training steps/s and inference speed (x real time) of the model configurations the recipes offer.

Random weights (speed does not depend on them); a training step is forward + mel loss + backward +
AdamW on batch 8 x 0.8 s (the CPU recipe's shape); inference is encode + decode of 10 s at all stages.

    .venv/bin/python scripts/bench_model.py [--threads 2] [recipes/dac-layout/speech16k-cpu.toml ...]
"""

from __future__ import annotations

import argparse
import time

import torch

from codec.eval.metrics import MelDistance
from codec.models.builder import build_codec
from codec.train.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipes", nargs="*", default=["recipes/dac-layout/speech16k-cpu.toml",
                                                      "recipes/dac-layout/speech16k-6kbps.toml"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads}")
    print(f"{'recipe':<40} {'params':>8} {'train steps/s':>14} {'enc+dec x RT':>13}")
    for path in args.recipes:
        cfg = load_recipe(path).model
        torch.manual_seed(0)
        model = build_codec(cfg)
        loss_fn = MelDistance(cfg.sample_rate)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        x = torch.randn(8, 1, int(0.8 * cfg.sample_rate)) * 0.1
        model.train()
        times = []
        for _ in range(args.steps + 2):
            start = time.perf_counter()
            out = model(x)
            loss = loss_fn(out.audio, x) + out.aux_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        step = sorted(times[2:])[len(times[2:]) // 2]
        model.eval()
        audio = torch.randn(1, 1, 10 * cfg.sample_rate) * 0.1
        with torch.inference_mode():
            model.decode(model.encode(audio[..., : cfg.sample_rate]))  # warm-up
            start = time.perf_counter()
            model.decode(model.encode(audio), audio.shape[-1])
            infer = time.perf_counter() - start
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{path:<40} {params:7.2f}M {1 / step:14.2f} {10 / infer:13.1f}")


if __name__ == "__main__":
    main()
