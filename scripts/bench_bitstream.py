"""Throughput of the .dvq code packing, in MB/s of packed output (1 MB = 10**6 bytes).

Usage: python scripts/bench_bitstream.py [--codes 8000000] [--repeats 5] [--bits 10 ...]

For each bits value: pack_codes and unpack_codes on random codes (best of --repeats runs, one thread,
validation included), and whole-stream encode_stream / decode_stream (header, chunking, CRC32) for
a mono 3-stage stream holding the same number of codes. The target is >= 50 MB/s for 10-bit codes.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from codec.format.bitstream import StreamHeader, decode_stream, encode_stream, pack_codes, unpack_codes


def best_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def stream_header(bits: int, n_frames: int) -> StreamHeader:
    """A mono, 3-stage format-version-2 header at 16 kHz / hop 320 (50 frames/s), 10 s chunks."""
    return StreamHeader(
        model_name=None, model_hash=hashlib.sha256(b"bench").hexdigest()[:16], sample_rate=16000,
        model_sample_rate=16000, channels=1, n_samples=n_frames * 320, n_frames=n_frames,
        n_codebooks=3, codebook_size=1 << bits, hop_length=320, chunk_frames=500, gains=(1.0,),
        quantizer_kind="diveq", sf_inference=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=8_000_000, help="codes per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (best is kept)")
    parser.add_argument("--bits", type=int, nargs="+", default=[10, 8, 9, 11, 12, 16])
    args = parser.parse_args()

    print(f"numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.codes} codes, best of {args.repeats}")
    print(f"{'bits':>4} {'MB':>7} {'pack MB/s':>10} {'unpack MB/s':>12} {'encode MB/s':>12} "
          f"{'decode MB/s':>12}")
    rng = np.random.default_rng(0)
    for bits in args.bits:
        codes = rng.integers(0, 1 << bits, args.codes, dtype=np.int64)
        packed = pack_codes(codes, bits)
        assert np.array_equal(unpack_codes(packed, bits, codes.size), codes)
        megabytes = len(packed) / 1e6
        pack = best_seconds(functools.partial(pack_codes, codes, bits), args.repeats)
        unpack = best_seconds(functools.partial(unpack_codes, packed, bits, codes.size), args.repeats)

        header = stream_header(bits, args.codes // 3)
        frames = codes[:3 * header.n_frames].reshape(1, 3, header.n_frames)
        stream = encode_stream(header, frames)
        encode = best_seconds(functools.partial(encode_stream, header, frames), args.repeats)
        decode = best_seconds(functools.partial(decode_stream, stream), args.repeats)
        print(f"{bits:>4} {megabytes:>7.2f} {megabytes / pack:>10.0f} {megabytes / unpack:>12.0f} "
              f"{megabytes / encode:>12.0f} {megabytes / decode:>12.0f}")


if __name__ == "__main__":
    main()
