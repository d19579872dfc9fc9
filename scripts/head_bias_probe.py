"""Probe: how much of the stationary tone is a constant offset of the iSTFT head's output.

The head predicts the power-compressed complex spectrum C per frame and bin. Real speech has ~zero mean
C over many frames (its phase turns from frame to frame), so a mean that the decoder's output keeps
over many clips is an offset the decoder adds to every frame: identical frames overlap-add into a
signal periodic in the hop, a comb of fixed tones. This script measures that mean over clips of the
*training* split (never the eval set), reports how alike it is across clips, and writes a copy of the
model whose head bias has the mean taken out (``--out``), to be scored with ``diveq-codec eval``:

    .venv/bin/python scripts/head_bias_probe.py codec/pretrained/default.safetensors --out /tmp/calib.safetensors
    .venv/bin/diveq-codec eval data/eval_valid --bitrate 6 --against none --model /tmp/calib.safetensors \
        --out /tmp/eval-calib --listen 0 --force
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from codec.data.corpus import read_manifest
from codec.models.weights import load_model_file, save_model


def head_outputs(model: torch.nn.Module, audio: torch.Tensor, n_codebooks: int) -> torch.Tensor:
    """The head projection's output [n_fft + 2, frames] for one clip [1, 1, T] at ``n_codebooks``."""
    captured: list[torch.Tensor] = []
    proj = model.decoder.head.proj
    handle = proj.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.inference_mode():
            model(audio, n_codebooks=n_codebooks)
    finally:
        handle.remove()
    return captured[0][0].float()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--clips", type=int, default=200, help="training clips to average over")
    parser.add_argument("--codebooks", type=int, default=12)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the mean to remove")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    torch.set_num_threads(1)
    model = load_model_file(args.model).eval()
    rows = [r for r in read_manifest(args.corpus / "manifest.csv")
            if r["split"] == "train" and float(r["duration"]) >= 2.0]
    random.Random(0).shuffle(rows)
    per_clip, weights = [], []
    for row in rows[: args.clips]:
        x, sr = sf.read(args.corpus / row["file"], dtype="float32", always_2d=True)
        if sr != model.sample_rate:
            continue
        audio = torch.from_numpy(x.mean(axis=1))[None, None, : 4 * sr]
        out = head_outputs(model, audio, args.codebooks)
        per_clip.append(out.mean(dim=1))
        weights.append(out.shape[1])
    means = torch.stack(per_clip)  # [clips, n_fft + 2]
    w = torch.tensor(weights, dtype=torch.float32)[:, None]
    mean = (means * w).sum(0) / w.sum()
    half = mean.shape[0] // 2
    re, im = mean[:half], mean[half:]
    clip_re, clip_im = means[:, :half], means[:, half:]
    # how alike the clips' offsets are: cosine of each clip's complex mean vector with the global one
    dot = (clip_re * re + clip_im * im).sum(1)
    magnitude = torch.hypot(re, im)  # |mean C| per bin
    norms = torch.sqrt((clip_re**2 + clip_im**2).sum(1) * magnitude.square().sum())
    cos = (dot / norms).numpy()
    print(f"{len(per_clip)} training clips; offset |mean C| per bin: median {magnitude.median():.3f}, "
          f"max {magnitude.max():.3f}; cosine of clip offsets with the mean: "
          f"median {np.median(cos):.3f}, 10th percentile {np.percentile(cos, 10):.3f}")
    top = torch.argsort(magnitude, descending=True)[:10]
    hz = model.sample_rate / model.decoder.head.n_fft
    print("largest offsets (bin, Hz, |mean C|):",
          ", ".join(f"{int(k)} {float(k) * hz:.0f} {float(magnitude[k]):.3f}" for k in top))
    if args.out is not None:
        with torch.no_grad():
            model.decoder.head.proj.bias -= args.scale * mean
        digest = save_model(model, args.out, dtype=torch.float16)
        print(f"wrote {args.out} (weights {digest[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
