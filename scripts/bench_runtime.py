"""Benchmark the two runtimes of the built-in model: the CLI on a short clip (wall time and peak RSS,
medians of several runs), coding speed on one thread, the runtimes' agreement (codes, decoded audio)
on a folder of speech, and optionally a long file through the CLI.

    .venv/bin/python scripts/bench_runtime.py [--light-cli /tmp/light/bin/diveq-codec] [--runs 7]
        [--eval data/eval_valid] [--long 3600] [--out results.json]

``--light-cli``: the ``diveq-codec`` of a light install (``scripts/check_light_install.sh KEEP_DIR``
leaves one), used for the onnx rows of the CLI measurements; default: this venv's with ``--runtime
onnx``. The torch rows always use this venv's (it needs torch). Peak RSS and wall time come from
``/usr/bin/time -v``. Numbers depend on the machine's load: run it on an idle machine, and quote the
command with the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SPEECH = sorted((ROOT / "tests" / "data" / "speech").glob("*.flac"))
RATE = 16000


def speech(seconds: float) -> np.ndarray:
    """The pinned TTS clips joined and repeated to ``seconds`` of 16 kHz mono [T] float32."""
    clips = [sf.read(p, dtype="float32")[0] for p in SPEECH]
    joined = np.concatenate(clips)
    reps = int(np.ceil(seconds * RATE / joined.size))
    return np.tile(joined, reps)[: int(seconds * RATE)]


def timed(command: list[str], folder: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds user + system) of ``command`` from /usr/bin/time -v;
    raises if it fails. On a shared machine the CPU time is the steadier of the two times."""
    log = folder / "time.txt"
    result = subprocess.run(["/usr/bin/time", "-v", "-o", str(log), *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    fields = dict(line.strip().split(": ", 1) for line in log.read_text().splitlines() if ": " in line)
    clock = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    wall = sum(float(part) * 60 ** i for i, part in enumerate(reversed(clock)))
    cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    return wall, int(fields["Maximum resident set size (kbytes)"]) / 1024, cpu


def cli_rows(cli: list[str], options: list[str], runtime: str, wav: Path, runs: int,
             folder: Path) -> dict[str, dict[str, float]]:
    """Median wall time and peak RSS of ``encode`` and ``decode`` of ``wav`` (``options`` after each
    command name) over ``runs`` runs."""
    rows: dict[str, dict[str, float]] = {}
    dvq, back = folder / f"{runtime}.dvq", folder / f"{runtime}.wav"
    for command, files in (("encode", [str(wav), str(dvq)]), ("decode", [str(dvq), str(back)])):
        samples = [timed([*cli, command, *files, *options, "--force"], folder) for _ in range(runs)]
        rows[f"{runtime} {command}"] = {"wall_s": statistics.median(s[0] for s in samples),
                                        "cpu_s": statistics.median(s[2] for s in samples),
                                        "peak_rss_mib": statistics.median(s[1] for s in samples), "runs": runs}
    return rows


def speed(seconds: float = 30.0, repeats: int = 3) -> dict[str, float]:
    """x real time of compress + decompress at 6 kbps on one thread, per runtime (median)."""
    import torch

    from codec import api

    torch.set_num_threads(1)
    x = speech(seconds)
    out = {}
    for runtime in ("onnx", "torch"):
        model = api.load_model(None, "cpu", runtime, threads=1)
        api.decompress(api.compress(model, x[:RATE], RATE, bitrate_kbps=6), model)  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            api.decompress(api.compress(model, x, RATE, bitrate_kbps=6), model)
            times.append(time.perf_counter() - start)
        out[runtime] = seconds / statistics.median(times)
    return out


def agreement(folder: Path) -> dict[str, float]:
    """Codes of the two runtimes at 6 kbps (share of equal frames, all stages) and the decoded
    difference of the same stream (dB relative to the torch runtime's decoding) over ``folder``."""
    from codec import api
    from codec.format.bitstream import decode_stream

    models = {r: api.load_model(None, "cpu", r) for r in ("onnx", "torch")}
    frames = same = 0
    diffs = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg")):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        streams = {r: api.compress(m, audio.T, rate, bitrate_kbps=6) for r, m in models.items()}
        a, b = (decode_stream(streams[r])[1] for r in ("onnx", "torch"))
        frames += a.shape[0] * a.shape[-1]
        same += int((a == b).all(axis=1).sum())
        ours, theirs = (api.decompress(streams["torch"], models[r])[0] for r in ("onnx", "torch"))
        diffs.append(10 * np.log10(np.sum((ours - theirs) ** 2.0) / np.sum(theirs.astype(np.float64) ** 2)))
    return {"files": len(diffs), "frames": frames, "equal_frames_pct": 100 * same / max(frames, 1),
            "decoded_diff_db_median": float(np.median(diffs)), "decoded_diff_db_worst": float(np.max(diffs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light-cli", type=Path, help="diveq-codec of a light install (onnx rows)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--clip", type=float, default=3.0, help="seconds of the short clip")
    parser.add_argument("--eval", type=Path, help="a folder of speech for the agreement rows")
    parser.add_argument("--long", type=float, default=0.0, help="seconds of a long file (0: skip)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "diveq-codec")
    runs = {"onnx": ([str(args.light_cli)], []) if args.light_cli else ([cli], ["--runtime", "onnx"]),
            "torch": ([cli], ["--runtime", "torch"])}
    results: dict[str, object] = {"clip_seconds": args.clip}

    def report(key: str, value: object) -> None:
        results[key] = value
        print(json.dumps({key: value}, indent=1), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wav = folder / "clip.wav"
        sf.write(wav, speech(args.clip), RATE, subtype="PCM_16")
        rows: dict[str, dict[str, float]] = {}
        for runtime, (command, options) in runs.items():
            rows.update(cli_rows(command, options, runtime, wav, args.runs, folder))
        report("cli", rows)
        report("x_real_time_one_thread", speed())
        if args.eval:
            report("agreement", agreement(args.eval))
        if args.long:
            long_wav = folder / "long.wav"
            rng = np.random.default_rng(0)
            with sf.SoundFile(long_wav, "w", RATE, 1, subtype="PCM_16") as f:
                for _ in range(int(args.long)):
                    f.write((0.1 * rng.standard_normal(RATE)).astype(np.float32))
            long_rows: dict[str, object] = {"seconds": args.long}
            for runtime, (command, options) in runs.items():
                long_rows.update(cli_rows(command, options, runtime, long_wav, 1, folder))
            report("long", long_rows)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
