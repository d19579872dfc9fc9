"""Training curves of one run: training mel loss, validation mel distance and PESQ-WB per bitrate.

    .venv/bin/python scripts/plot_run.py runs/speech16k-cpu docs/default_model_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "validation"]
    stages = sorted({int(k.split("@")[1]) for r in valid for k in r if k.startswith("mel_distance@")})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([r["step"] for r in train], [r["mel"] for r in train], lw=0.8)
    axes[0].set(title="training mel loss", xlabel="step")
    for n in stages:
        steps = [r["step"] for r in valid if f"mel_distance@{n}" in r]
        axes[1].plot(steps, [r[f"mel_distance@{n}"] for r in valid if f"mel_distance@{n}" in r],
                     marker=".", label=f"{n} stages")
        axes[2].plot(steps, [r[f"pesq_wb@{n}"] for r in valid if f"pesq_wb@{n}" in r],
                     marker=".", label=f"{n} stages")
    axes[1].set(title="validation mel distance (held-out speakers)", xlabel="step")
    axes[2].set(title="validation PESQ-WB", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[2].legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
