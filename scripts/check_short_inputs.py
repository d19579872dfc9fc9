"""Every short input, with every built-in model: 0..400 samples and the lengths around one and two
frames (20 / 40 ms) at every rate of the issue-19 report, 1, 2 and 6 channels, through compress /
decompress. Each must give the original rate, channel count and exact length, finite samples, and
no exception. The test suite runs a strided subset of this (tests/test_short_audio.py).

    .venv/bin/python scripts/check_short_inputs.py [--models default,speech16k-v1]

Prints one line per model and rate (round trips, failures) and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

import codec
from codec import api
from codec.format.bitstream import read_header
from codec.models.model import Codec

RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
CHANNELS = (1, 2, 6)


def lengths(rate: int) -> list[int]:
    frame = rate // 50
    edges = {n for f in (frame, 2 * frame) for n in range(f - 2, f + 3)}
    return sorted(set(range(401)) | edges)


def check(model: Codec, n: int, channels: int, rate: int) -> str | None:
    """None if the round trip of ``n`` samples is right, else what went wrong."""
    x = (0.1 * np.random.default_rng(n).standard_normal((channels, n))).astype(np.float32)
    try:
        data = api.compress(model, x, rate, bitrate_kbps=3)
        header = read_header(io.BytesIO(data))
        y, out_rate = api.decompress(data, model)
    except Exception:  # noqa: BLE001 - reported, not raised: the point is to find them all
        return traceback.format_exc(limit=3).strip().splitlines()[-1]
    if (header.n_samples, header.channels, header.sample_rate) != (n, channels, rate):
        return f"header says {header.n_samples} samples, {header.channels} channels, {header.sample_rate} Hz"
    if out_rate != rate or y.shape != x.shape or not np.isfinite(y).all():
        return f"decoded {y.shape} at {out_rate} Hz (finite: {bool(np.isfinite(y).all())})"
    return None


def main() -> int:
    builtin = sorted(p.stem for p in (Path(codec.__file__).parent / "pretrained").glob("*.safetensors"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(builtin), help="comma-separated built-in names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    failures = 0
    for name in args.models.split(","):
        model = api.load_model(name, "cpu")
        for rate in RATES:
            start, bad = time.monotonic(), []
            todo = lengths(rate)
            for i, n in enumerate(todo):
                problem = check(model, n, CHANNELS[i % len(CHANNELS)], rate)
                if problem is not None:
                    bad.append(f"{n} samples: {problem}")
            failures += len(bad)
            print(f"{name} {rate} Hz: {len(todo)} round trips ({todo[0]}..{todo[-1]} samples), "
                  f"{len(bad)} failed, {time.monotonic() - start:.0f} s", flush=True)
            for line in bad[:5]:
                print(f"  {line}", flush=True)
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
