"""Short training runs that show whether a quantizer layout collapses (the TRAINING-NOTES.md trap).

A small codec trains for STEPS steps on cheap speech-like signals with an STFT loss; it prints
codebook usage per stage every 50 steps, then, in eval mode, the norm of each stage's projection of
the latent (0 = the encoder escaped every stage's subspace), the residual norm after each stage, and
the STFT loss with 1..4 stages.

    .venv/bin/python scripts/experiment_collapse.py --kind diveq --latent-dim 32 --codebook-dim 4
    .venv/bin/python scripts/experiment_collapse.py --kind diveq --latent-dim 8 --codebook-dim 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import speechlike, stft_loss  # noqa: E402

from codec.config import ModelConfig, QuantizerConfig  # noqa: E402
from codec.models.builder import build_codec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="diveq", choices=["diveq", "sfdiveq", "ste"])
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--codebook-dim", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(args.threads)
    n_stages = 4
    cfg = ModelConfig(encoder_dim=8, decoder_dim=64, latent_dim=args.latent_dim,
                      quantizer=QuantizerConfig(kind=args.kind, n_codebooks=n_stages, codebook_size=64,
                                                codebook_dim=args.codebook_dim, replace_interval=20))
    model = build_codec(cfg)
    signal = np.concatenate([speechlike(2.0, seed=s) for s in range(8)])

    def batch(size: int = 8, length: int = 6400) -> torch.Tensor:
        starts = np.random.randint(0, len(signal) - length, size)
        return torch.from_numpy(np.stack([signal[s:s + length] for s in starts]))[:, None]

    opt = torch.optim.AdamW(model.parameters(), args.lr, betas=(0.8, 0.99))
    val = batch()
    t0 = time.time()
    for step in range(args.steps):
        x = batch()
        model.train()
        out = model(x)
        loss = stft_loss(out.audio, x) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            usage = [round(s.usage, 2) for s in model.quantizer.usage_stats()]
            print(f"step {step} loss {loss.item():.3f} usage {usage} ({time.time() - t0:.0f}s)", flush=True)
            model.quantizer.reset_usage()
    model.eval()
    with torch.no_grad():
        latent = model.encode_latent(val)
        if args.kind != "ste":
            x = latent.transpose(1, 2).reshape(-1, latent.shape[1])
            P = model.quantizer.projections()
            if P is not None:
                print("projection norms", [round((x @ P[k].t()).norm(dim=-1).mean().item(), 3)
                                           for k in range(n_stages)])
            codes = model.quantizer.encode(latent)
            norms = [latent.norm().item()] + [(latent - model.quantizer.decode(codes[:, :n])).norm().item()
                                               for n in range(1, n_stages + 1)]
            print("residual norm after 0..4 stages", [round(v, 3) for v in norms])
        print("loss with 1..4 stages", [round(stft_loss(model(val, n).audio, val).item(), 3)
                                        for n in range(1, n_stages + 1)])


if __name__ == "__main__":
    main()
