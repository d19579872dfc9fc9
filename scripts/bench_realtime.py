"""Real-time coding: CPU per 20 ms frame, memory over a long stream, and the latency measured with an
impulse (issue 18; numbers in docs/streaming.md).

    .venv/bin/python scripts/bench_realtime.py cpu --seconds 60
    .venv/bin/python scripts/bench_realtime.py rss --minutes 60
    .venv/bin/python scripts/bench_realtime.py latency --rate 16000

``cpu``: speech-like audio fed to a StreamEncoder in 20 ms chunks at the model's rate, every packet
straight into a StreamDecoder, one thread; the CPU time (``time.process_time``) of each chunk's
encode + decode, after one second of warm-up: median, 90th and 99th percentiles.
``rss``: the same loop for ``--minutes`` of audio (the same 10 s of speech over and over), the
process's resident memory (``/proc/self/statm``) every simulated minute, and the growth after the
first minute.
``latency``: an impulse fed one sample at a time at ``--rate``; for each output sample the input
samples fed when it came out, the largest lead over its own index (the playout delay a player needs)
against the reported latency, and where the impulse comes out in a stream played at that delay.
``--runtime onnx`` runs a model with frame graphs (the built-in ``speech16k-stft-causal``, or a model
file after ``diveq-codec export-onnx``) on onnxruntime, as the light install streams; ``torch`` (default)
on torch.
``--model``: a causal model file or name; ``default-causal`` (default) is the built-in default model
with the causal timing, untrained as causal (the speed and memory are those of a trained one);
``narrow-causal`` has the same layers and frame rate at 1/12 of the width (random weights): the same
code path, so the same memory behaviour, at a fraction of the CPU (for ``rss`` over an hour).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import speechlike  # noqa: E402

from codec.models.model import Codec  # noqa: E402
from codec.runtime.realtime import StreamDecoder, StreamEncoder  # noqa: E402


def load_causal(name: str, runtime: str = "torch", threads: int = 1) -> Codec:
    import dataclasses

    from codec.api import load_model
    from codec.config import QuantizerConfig
    from codec.models.builder import build_codec
    from codec.models.weights import with_timing

    if name == "default-causal":
        return with_timing(load_model(None, "cpu", runtime="torch"), causal=True, lookahead=2, encoder_lookahead=1)
    if name == "narrow-causal":  # the default's layers and frames at 1/12 of the width, random weights
        config = dataclasses.replace(load_model(None, "cpu", runtime="torch").config, causal=True, lookahead=2,
                                     encoder_lookahead=1, encoder_dim=16,
                                     decoder_dim=16, latent_dim=8,
                                     quantizer=QuantizerConfig(n_codebooks=12, codebook_size=16, codebook_dim=8))
        model = build_codec(config).eval()
        model.weights_hash = "0" * 64
        return model
    return load_model(name, "cpu", runtime=runtime, threads=threads, streaming=True)


def rss_mib() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu(model: Codec, seconds: float, bitrate: float) -> None:
    rate = model.config.sample_rate
    chunk = rate // 50
    x = speechlike(seconds + 1.0, rate, seed=0)
    enc = StreamEncoder(model, bitrate_kbps=bitrate)
    dec = StreamDecoder(model, enc.session_header)
    times = []
    for start in range(0, x.size - chunk + 1, chunk):
        t = time.process_time()
        for packet in enc.feed(x[start:start + chunk]):
            dec.feed(packet)
        times.append(time.process_time() - t)
    ms = np.array(times[50:]) * 1e3
    runtime = getattr(model, "runtime", "torch")
    print(f"{ms.size} chunks of 20 ms, encode + decode, {runtime}, {torch.get_num_threads()} thread(s): CPU per chunk "
          f"median {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms "
          f"({20 / np.median(ms):.1f}x real time)")


def rss(model: Codec, minutes: float, bitrate: float) -> None:
    rate = model.config.sample_rate
    chunk = rate // 50
    x = speechlike(10.0, rate, seed=1)
    enc = StreamEncoder(model, bitrate_kbps=bitrate)
    dec = StreamDecoder(model, enc.session_header)
    samples, minute, marks = 0, 0, []
    t0 = time.process_time()
    while samples < minutes * 60 * rate:
        piece = x[samples % x.size:][:chunk]
        for packet in enc.feed(piece):
            dec.feed(packet)
        samples += piece.size
        if samples >= (minute + 1) * 60 * rate:
            minute += 1
            marks.append(rss_mib())
            print(f"minute {minute}: RSS {marks[-1]:.1f} MiB, CPU {time.process_time() - t0:.0f} s", flush=True)
    print(f"RSS after minute 1: {marks[0]:.1f} MiB, after minute {minute}: {marks[-1]:.1f} MiB "
          f"(growth {marks[-1] - marks[0]:+.1f} MiB; max {max(marks):.1f})")


def _played(model: Codec, x: np.ndarray, rate: int) -> tuple[np.ndarray, list[int], StreamEncoder]:
    """Output of ``x`` fed one sample at a time, and for each output sample the input samples fed when
    it came out."""
    enc = StreamEncoder(model, sample_rate=rate)
    dec = StreamDecoder(model, enc.session_header)
    fed_when: list[int] = []
    out = []
    for i in range(x.size):
        for packet in enc.feed(x[i:i + 1]):
            y = dec.feed(packet)
            out.append(y)
            fed_when += [i + 1] * y.size
    return np.concatenate(out), fed_when, enc


def latency(model: Codec, rate: int) -> None:
    n = rate // 2
    at = n // 2
    x = 0.05 * speechlike(n / rate, rate, seed=3)  # quiet speech, and an impulse on it
    silent, _, _ = _played(model, x, rate)
    x[at] += 0.5
    played, fed_when, enc = _played(model, x, rate)
    lead = np.array(fed_when) - np.arange(len(fed_when))
    measured = int(lead[rate // 50:].max())
    effect = np.abs(played - silent)  # what the impulse changed
    first = int(np.flatnonzero(effect > 1e-6)[0])
    peak = int(np.argmax(effect))
    print(f"{rate} Hz: reported latency {enc.latency_samples} samples ({enc.latency_seconds * 1000:.2f} ms); "
          f"measured playout delay {measured} samples ({measured / rate * 1000:.2f} ms). The impulse at "
          f"input sample {at}: its effect on the output peaks at output sample {peak} ({peak - at:+d}), "
          f"first heard at output sample {first}, which came out when input sample {fed_when[first] - 1} "
          f"went in")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("cpu", "rss", "latency"))
    parser.add_argument("--model", default="default-causal")
    parser.add_argument("--bitrate", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_causal(args.model, args.runtime, args.threads)
    if args.what == "cpu":
        cpu(model, args.seconds, args.bitrate)
    elif args.what == "rss":
        rss(model, args.minutes, args.bitrate)
    else:
        latency(model, args.rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
