"""The long run's validation quality against CPU hours, beside Opus, Codec2 and the shipped model.

    .venv/bin/python scripts/training_history.py ~/diveq-runs/speech16k-stft \
        --recipe recipes/speech16k-stft.toml --out docs/quality

A history of several runs, each continuing the one before (a continuation from the shipped weights,
a cool-down forked from one of its checkpoints), with the history so far as ``--prior``:

    .venv/bin/python scripts/training_history.py ~/diveq-runs/long ~/diveq-runs/cooldown3@19000 \
        --prior docs/quality/training.csv --recipe recipes/speech16k-stft.toml --out docs/quality

The first run continues from the prior history's last row; ``RUN@K`` continues from step K of the run
before it (that run's later validations are left out: the history follows the shipped model's line).
Steps and CPU hours add up along the chain.

Reads the run's validation records (``metrics.jsonl``; ``cpu_s`` = CPU seconds of its training steps),
scores the references on the *same* validation clips the run is scored on (Opus 6 kbps, Codec2 3.2 kbps
and a baseline model, by default the previous built-in one, at 1.5 / 3 / 6 kbps; cached in
``OUT/references.json``, ``--rescore`` to redo), and writes ``OUT/training.csv`` (the run's validations), ``OUT/training.png`` (PESQ-WB, STOI and
SI-SDR at 6 kbps against CPU hours) and prints a markdown table and the projection: a straight line
through PESQ-WB at 6 kbps against log(CPU hours) over the last half of the validations, extended to the
CPU hours where it would reach Opus 6 kbps. A projection from a short curve is a rough guide, not a
promise; it is printed with the points it was fitted on.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# scripts/ is on sys.path when a script runs; KBPS: validation stages -> kbps (10 bits x 50 frames/s)
from screen_report import KBPS, METRICS, read_records, read_validations  # noqa: E402


def score_references(recipe_path: Path, baseline: Path) -> dict[str, dict[str, float]]:
    """Mean scores of Opus 6 kbps, Codec2 3.2 kbps and the baseline model on the recipe's validation clips."""
    import numpy as np
    import torch

    from codec.api import load_model
    from codec.eval import metrics
    from codec.eval.anchors import Codec2Anchor, OpusAnchor
    from codec.train.batches import build_validation_clips
    from codec.train.recipe import load_recipe
    from codec.train.validation import validate

    torch.set_num_threads(1)
    recipe = load_recipe(recipe_path)
    clips = build_validation_clips(recipe)
    sr = recipe.model.sample_rate
    refs: dict[str, dict[str, float]] = {}
    for name, anchor in (("opus 6 kbps", OpusAnchor(6.0)), ("codec2 3.2 kbps", Codec2Anchor("3200"))):
        rows = []
        for clip in clips:
            audio = clip[0].numpy().astype(np.float32)
            rows.append(metrics.score(audio.astype(np.float64),
                                      anchor.run(audio, sr).audio.astype(np.float64), sr))
        refs[name] = {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}
    scores = validate(load_model(baseline, device="cpu", runtime="torch"), clips, recipe, torch.device("cpu"))
    for n, kbps in KBPS.items():
        refs[f"{baseline.stem} {kbps:g} kbps"] = {m: scores[f"{m}@{n}"] for m in METRICS}
    return refs


def projection(records: list[dict[str, float]], target: float) -> tuple[float, float, list[int]] | None:
    """Fit PESQ-WB@6 kbps = a + b * ln(CPU hours) on the last half of the validations.

    Returns ``(slope per e-fold of CPU time, CPU hours where the line reaches target, steps used)``,
    or None when there are fewer than 3 points or the slope is not positive.
    """
    tail = records[len(records) // 2:]
    if len(tail) < 3:
        return None
    xs = [math.log(r["cpu_s"] / 3600) for r in tail]
    ys = [r["pesq_wb@12"] for r in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope <= 0:
        return None
    intercept = my - slope * mx
    return slope, math.exp((target - intercept) / slope), [int(r["step"]) for r in tail]


def read_history(path: Path) -> list[dict[str, float]]:
    """The rows of a training.csv this script wrote, as validation records (``cpu_s`` in seconds)."""
    records = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            record: dict[str, float] = {"step": int(row["step"]), "cpu_s": float(row["cpu_hours"]) * 3600}
            for n, kbps in KBPS.items():
                for m in METRICS:
                    record[f"{m}@{n}"] = float(row[f"{m}@{kbps:g}kbps"])
            records.append(record)
    return records


def fork_cpu_s(run_dir: Path, step: int) -> float:
    """CPU seconds of ``run_dir``'s training steps up to ``step`` (its last record at or before it: a
    validation, or a training record when the fork is a checkpoint between validations)."""
    cpu = [float(r["cpu_s"]) for r in read_records(run_dir) if "cpu_s" in r and int(r["step"]) <= step]
    if not cpu:
        raise ValueError(f"{run_dir}: no record at or before step {step}")
    return cpu[-1]


def chain(runs: list[str], prior: Path | None) -> list[dict[str, float]]:
    """The validations of ``runs`` (``PATH`` or ``PATH@K``) after ``prior``'s, steps and CPU time
    offset so that each run starts where it continued from; a fork leaves out the validations of the
    run before it after step K (ValueError for a run without validations or records)."""
    history = read_history(prior) if prior is not None else []
    step0, cpu0 = (history[-1]["step"], history[-1]["cpu_s"]) if history else (0, 0.0)
    previous: Path | None = None  # the run before this one, which started at (step0, cpu0)
    for spec in runs:
        path, _, fork = spec.partition("@")
        run = Path(path).expanduser()
        if fork:
            if previous is None:
                raise ValueError(f"{spec}: a fork needs a run before it")
            step0, cpu0 = step0 + int(fork), cpu0 + fork_cpu_s(previous, int(fork))
            history = [r for r in history if r["step"] <= step0]
        records = read_validations(run)
        if not records:
            raise ValueError(f"no validation records in {run / 'metrics.jsonl'}")
        history += [{**r, "step": step0 + int(r["step"]), "cpu_s": cpu0 + float(r["cpu_s"])} for r in records]
        previous = run
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="+", help="run folders, in order; RUN@K forks from step K of the one before")
    parser.add_argument("--prior", type=Path, help="the history so far (a training.csv of this script)")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, default=_ROOT / "codec" / "pretrained" / "speech16k-v1.safetensors",
                        help="model scored beside the run (default: the previous built-in model)")
    parser.add_argument("--rescore", action="store_true", help="score the references again")
    args = parser.parse_args(argv)

    try:
        records = chain(args.run, args.prior)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "references.json"
    if args.rescore or not cache.is_file():
        cache.write_text(json.dumps(score_references(args.recipe, args.baseline), indent=1) + "\n", encoding="utf-8")
    refs = json.loads(cache.read_text(encoding="utf-8"))

    with open(args.out / "training.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "cpu_hours"] + [f"{m}@{k:g}kbps" for k in KBPS.values()
                                                 for m in METRICS])
        for r in records:
            writer.writerow([r["step"], round(r["cpu_s"] / 3600, 3)]
                            + [round(r.get(f"{m}@{n}", float("nan")), 4) for n in KBPS
                               for m in METRICS])
    _plot(records, refs, args.out / "training.png")

    print("| step | CPU hours | PESQ-WB 1.5 / 3 / 6 kbps | STOI 6 | SI-SDR 6 (dB) | mel 6 |")
    print("|---|---|---|---|---|---|")
    for r in records:
        pesq = " / ".join(f"{r[f'pesq_wb@{n}']:.2f}" for n in KBPS)
        print(f"| {r['step']} | {r['cpu_s'] / 3600:.2f} | {pesq} | {r['stoi@12']:.3f} | {r['si_sdr@12']:.1f} "
              f"| {r['mel_distance@12']:.2f} |")
    print("\nreferences on the same clips:")
    for name, values in refs.items():
        print(f"  {name}: " + ", ".join(f"{m} {values[m]:.3f}" for m in METRICS))
    target = refs["opus 6 kbps"]["pesq_wb"]
    above = [r for r in records if r["pesq_wb@12"] > target]
    if above:
        first = above[0]
        print(f"\ncrossed Opus 6 kbps ({target:.2f}) at step {first['step']} ({first['cpu_s'] / 3600:.2f} CPU hours; "
              f"PESQ-WB {first['pesq_wb@12']:.2f}); {len(above)} of the {len(records) - records.index(first)} "
              "validations since are above it")
    fit = projection(records, target)
    if fit is None:
        print("\nprojection: not enough rising points to fit")
    else:
        slope, hours, steps = fit
        print(f"\nprojection (fit on steps {steps[0]}..{steps[-1]}): +{slope:.3f} PESQ-WB per e-fold of CPU "
              f"time; the line is at Opus 6 kbps ({target:.2f}) at ~{hours:,.1f} CPU hours")
    return 0


def _plot(records: list[dict[str, float]], refs: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [r["cpu_s"] / 3600 for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, label in zip(axes, ("pesq_wb", "stoi", "si_sdr"),
                                 ("PESQ-WB", "STOI", "SI-SDR (dB)"), strict=True):
        for n, kbps in KBPS.items():
            ax.plot(hours, [r[f"{metric}@{n}"] for r in records], marker="o", ms=3, label=f"{kbps:g} kbps")
        for (name, values), style in zip(refs.items(), ("--", ":", "-.", "-.", "-."), strict=True):
            if name.split()[0] not in ("opus", "codec2") and not name.endswith(" 6 kbps"):
                continue
            ax.axhline(values[metric], color="grey", ls=style, lw=1, label=name)
        ax.set_xlabel("CPU hours of training (one thread)")
        ax.set_title(f"{label}, validation speakers")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
