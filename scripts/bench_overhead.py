"""Container overhead of .dvq files: bytes on top of the packed codes, format version 1 against 2.

Usage: python scripts/bench_overhead.py [--model M.safetensors] [--seconds 1 60] [--rate 16000]

Encodes a synthetic voiced signal (mono, ``--rate`` Hz) of each length with the model (built-in
default: 16 kHz, 50 frames/s, 10-bit codes, 0.5 kbps per stage) at 1.5 / 3 / 6 kbps, and writes the
same header and codes in format version 1 (DEFLATE'd JSON header, 12-byte chunk heads) for
comparison. Prints a Markdown table: codes bytes, file bytes and overhead per version.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from codec.api import compress, load_model
from codec.format.bitstream import decode_stream, encode_header, encode_stream


def voiced(seconds: float, rate: int) -> np.ndarray:
    """A deterministic speech-like mono signal [1, T]: a gliding pitch with harmonics, syllables."""
    t = np.arange(round(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(h * phase) / h for h in range(1, 20) if h * 300 < rate / 2)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t))
    return (0.2 * x * envelope / np.abs(x).max())[None, :].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file (default: the built-in model)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 60.0])
    parser.add_argument("--rate", type=int, default=16000, help="input sample rate (Hz)")
    parser.add_argument("--kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    args = parser.parse_args()

    model = load_model(args.model, "cpu")
    print(f"model {model.config.name}, mono {args.rate} Hz input\n")
    print("| clip | kbps | codes | v1 file | v1 overhead | v2 file | v2 overhead | v2 header |")
    print("|---|---|---|---|---|---|---|---|")
    for seconds in args.seconds:
        audio = voiced(seconds, args.rate)
        for kbps in args.kbps:
            v2 = compress(model, audio, args.rate, bitrate_kbps=kbps)
            header, codes = decode_stream(v2)
            v1_header = dataclasses.replace(header, model_name=model.config.name,
                                            model_hash=model.weights_hash, format_version=1)
            v1 = encode_stream(v1_header, codes)
            payload = sum(header.chunk_bytes(header.chunk_length(i)) for i in range(header.n_chunks))
            cells = [f"{seconds:g} s", f"{kbps:g}", f"{payload} B"]
            for data in (v1, v2):
                extra = len(data) - payload
                cells += [f"{len(data)} B", f"{extra} B (+{100 * extra / payload:.1f} %)"]
            cells.append(f"{len(encode_header(header))} B")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
