"""Packet-loss concealment: PLCMOS and PESQ-WB of a causal diveq model and of Opus under random packet
loss, on an eval folder (issue 18; the table in docs/streaming.md).

    nice -n 10 .venv/bin/python scripts/plc_eval.py data/eval_valid --model default-causal \\
        --loss 0,5,10,20 --bitrate 6 --json plc.json

diveq: each clip (mono, 16 kHz, its loudness gain computed as the file path does) goes through a
:class:`codec.runtime.realtime.StreamEncoder` at ``--bitrate`` with one 20 ms frame per packet; each code
packet is lost with probability ``loss`` (numpy's generator, seeded per clip and rate; the end packet,
which carries the length, always arrives), and a :class:`~codec.runtime.realtime.StreamDecoder` conceals the
lost ones. Opus: ``opusenc --bitrate B --framesize 20`` (no in-band FEC: opusenc enables it only with
``--expect-loss``), ``opusdec --packet-loss P --rate 16000`` (opusdec's own random losses). PESQ-WB
(codec.eval.metrics) against the clip; PLCMOS v2 (Microsoft's ``speechmos`` package, ONNX, no
reference; seeded, one thread). ``--model default-causal`` is the built-in default model with the
causal timing (lookahead 3) and its weights as they are: untrained as a causal model, so its numbers
are a floor, not the causal model's quality. Everything runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.eval.metrics import pesq_wb  # noqa: E402
from codec.eval.report import find_audio_files, load_reference  # noqa: E402
from codec.models.model import Codec  # noqa: E402
from codec.runtime.realtime import StreamDecoder, StreamEncoder  # noqa: E402
from codec.runtime.streaming import Stats, loudness_gains  # noqa: E402

RATE = 16000


def load_causal(name: str) -> Codec:
    """``default-causal``: the built-in default with the causal timing; else a model file or name."""
    from codec.api import load_model
    from codec.models.weights import with_timing

    if name == "default-causal":
        return with_timing(load_model(None, "cpu", runtime="torch"), causal=True, lookahead=2, encoder_lookahead=1)
    return load_model(name, "cpu", runtime="torch")


class Plcmos:
    """PLCMOS v2 on one thread, seeded (its rater embeddings are random draws)."""

    def __init__(self) -> None:
        import onnxruntime as ort
        from speechmos.plcmos import PLCMOS

        self.model = PLCMOS()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.model.session = ort.InferenceSession(self.model.model_path, sess_options=opts,
                                                  providers=["CPUExecutionProvider"])

    def __call__(self, audio: np.ndarray) -> float:
        np.random.seed(0)
        return float(self.model(np.clip(audio, -1.0, 1.0).astype(np.float32))["plcmos"])


def diveq_runs(model: Codec, ref: np.ndarray, bitrate: float, losses: list[float], seed: int) -> dict[float, np.ndarray]:
    """The clip decoded at every loss rate (encoded once)."""
    stats = Stats(1)
    stats.add(ref[None])
    gain = loudness_gains(stats.sum_sq, stats.peak, stats.n_samples)[0]
    enc = StreamEncoder(model, bitrate_kbps=bitrate, gain=gain)
    packets = enc.feed(ref) + enc.flush()
    out = {}
    for loss in losses:
        rng = np.random.default_rng([seed, int(round(loss * 1000))])
        lost = rng.random(len(packets)) < loss
        lost[-1] = False
        dec = StreamDecoder(model, enc.session_header)
        out[loss] = dec.feed_all(None if drop else p for p, drop in zip(packets, lost, strict=True))
    return out


def opus_runs(ref: np.ndarray, bitrate: float, losses: list[float]) -> dict[float, np.ndarray]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="plc-opus-") as tmp:
        src, bits = Path(tmp, "in.wav"), Path(tmp, "coded.opus")
        sf.write(src, ref, RATE, subtype="PCM_16")
        subprocess.run(["opusenc", "--quiet", "--bitrate", f"{bitrate:g}", "--framesize", "20", str(src),
                        str(bits)], check=True)
        for loss in losses:
            dst = Path(tmp, f"out{loss}.wav")
            subprocess.run(["opusdec", "--quiet", "--rate", str(RATE), "--packet-loss", f"{loss * 100:g}",
                            str(bits), str(dst)], check=True)
            decoded, _ = sf.read(dst, dtype="float32")
            decoded = decoded[: ref.size]
            out[loss] = np.pad(decoded, (0, ref.size - decoded.size))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref_dir", type=Path)
    parser.add_argument("--model", default="default-causal", help="a causal model file or name, or default-causal")
    parser.add_argument("--bitrate", type=float, default=6.0)
    parser.add_argument("--loss", default="0,5,10,20", help="loss rates in percent")
    parser.add_argument("--against", default="opus", help="opus or none")
    parser.add_argument("--max-files", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the per-file scores here")
    parser.add_argument("--context", action="store_true",
                        help="also score the clips themselves (PLCMOS) and the built-in offline model (files, "
                             "no loss): the ceiling a trained causal model aims at")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    losses = [float(v) / 100 for v in args.loss.split(",")]
    files = find_audio_files(args.ref_dir)
    files = files[: args.max_files] if args.max_files else files
    model = load_causal(args.model)
    plcmos = Plcmos()
    systems = ["diveq"] + (["opus"] if args.against == "opus" else [])
    if args.context:
        from codec.api import compress, decompress, load_model

        offline = load_model(None, "cpu", runtime="torch")
        context = {"reference": [], "offline": []}
    scores: dict[str, dict[float, list[tuple[float, float]]]] = {s: {loss: [] for loss in losses} for s in systems}
    for index, path in enumerate(files):
        ref = load_reference(path, RATE)
        runs = {"diveq": diveq_runs(model, ref, args.bitrate, losses, args.seed + index)}
        if "opus" in systems:
            runs["opus"] = opus_runs(ref, args.bitrate, losses)
        for system, by_loss in runs.items():
            for loss, audio in by_loss.items():
                scores[system][loss].append((pesq_wb(ref, audio, RATE), plcmos(audio)))
        if args.context:
            context["reference"].append((float("nan"), plcmos(ref)))
            coded = decompress(compress(offline, ref, RATE, bitrate_kbps=args.bitrate), offline)[0][0]
            context["offline"].append((pesq_wb(ref, coded, RATE), plcmos(coded)))
        print(f"{index + 1}/{len(files)} {path.name}", file=sys.stderr, flush=True)
    label = "diveq (causal)" if args.model != "default-causal" else "diveq default, causal timing, untrained as causal"
    print(f"\n{len(files)} files of {args.ref_dir}, {args.bitrate:g} kbps, 20 ms packets\n")
    print("| system | loss | PESQ-WB | PLCMOS |")
    print("|---|---|---|---|")
    summary = {}
    for system in systems:
        for loss in losses:
            values = np.array(scores[system][loss], dtype=np.float64)
            pesq, plc = values[:, 0], values[:, 1]
            name = label if system == "diveq" else f"opus {args.bitrate:g} kbps"
            print(f"| {name} | {loss * 100:g} % | {np.nanmean(pesq):.2f} +- {np.nanstd(pesq):.2f} | "
                  f"{plc.mean():.2f} +- {plc.std():.2f} |")
            summary[f"{system}@{loss * 100:g}"] = {"pesq_wb": float(np.nanmean(pesq)), "plcmos": float(plc.mean())}
    if args.context:
        for key, name in (("reference", "the clips themselves"),
                          ("offline", f"diveq default (offline, files), {args.bitrate:g} kbps")):
            values = np.array(context[key], dtype=np.float64)
            pesq_text = "-" if key == "reference" else f"{np.nanmean(values[:, 0]):.2f} +- {np.nanstd(values[:, 0]):.2f}"
            print(f"| {name} | 0 % | {pesq_text} | {values[:, 1].mean():.2f} +- {values[:, 1].std():.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"files": [p.name for p in files], "model": args.model,
                                         "bitrate_kbps": args.bitrate, "summary": summary,
                                         "scores": {s: {f"{k * 100:g}": v for k, v in d.items()}
                                                    for s, d in scores.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
