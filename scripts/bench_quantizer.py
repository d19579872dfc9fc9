"""Forward+backward time of our residual quantizers versus DAC's ResidualVectorQuantize (CPU).

Shapes (issue 2): batch 16, 1 s at 50 frames/s, 12 stages, 1024 codes, codebook_dim 8, latent 512
(DAC's default input_dim), plus our default layout (latent = codebook_dim = 16, no projection).

    .venv/bin/python scripts/bench_quantizer.py [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from codec.config import QuantizerConfig
from codec.models.builder import build_quantizer


def bench(module: torch.nn.Module, latent: torch.Tensor, repeats: int) -> float:
    module.train()
    for _ in range(3):  # warm-up (and data-driven codebook initialisation)
        out = module(latent)
        (out.quantized.pow(2).mean() + out.aux_loss).backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = module(latent)
        (out.quantized.pow(2).mean() + out.aux_loss).backward()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for dim, cdim in ((512, 8), (16, 16)):
        latent = torch.randn(16, dim, 50, requires_grad=True)
        results = {}
        for name, kw in (("ste (DAC)", dict(kind="ste")),
                         ("diveq per_stage", dict(kind="diveq")),
                         ("diveq on_sum", dict(kind="diveq", reparam="on_sum")),
                         ("sfdiveq per_stage", dict(kind="sfdiveq"))):
            cfg = QuantizerConfig(n_codebooks=12, codebook_size=1024, codebook_dim=cdim, dropout=0.5, **kw)
            results[name] = bench(build_quantizer(dim, cfg), latent, args.repeats)
        base = results["ste (DAC)"]
        for name, seconds in results.items():
            rows.append((f"D={dim} d={cdim}", name, seconds * 1000, seconds / base))
    print(f"threads={args.threads} repeats={args.repeats} (median forward+backward)")
    print(f"{'shape':<12} {'quantizer':<20} {'ms':>8} {'x DAC':>7}")
    for shape, name, ms, ratio in rows:
        print(f"{shape:<12} {name:<20} {ms:8.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
