"""Screening report (issue 14): each arm's validation scores against the CPU minutes its training used.

    .venv/bin/python scripts/screen_report.py --runs ~/diveq-runs/screen --budget 30 --out docs/quality

Reads ``RUNS/<arm>/metrics.jsonl`` (validation records carry ``cpu_s``, the CPU seconds of the
training steps so far) and writes ``OUT/screening.csv`` (every validation of every arm),
``OUT/screening.png`` (PESQ-WB, SI-SDR and mel distance at the most stages against CPU minutes) and
prints a markdown table of each arm's scores at its last validation within ``--budget`` CPU minutes,
ranked by PESQ-WB at the most stages.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

KBPS = {3: 1.5, 6: 3.0, 12: 6.0}  # stages -> kbps of the screening models (10 bits x 50 frames/s)
METRICS = ("pesq_wb", "stoi", "si_sdr", "mel_distance")


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of one run's ``metrics.jsonl``, in file order (none if it has no such file; a line
    cut short by a kill is skipped)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_validations(run_dir: Path) -> list[dict[str, float]]:
    """The validation records of one run, in step order (later records replace earlier ones of the
    same step, as a resumed run logs them again)."""
    by_step: dict[int, dict[str, float]] = {}
    for record in read_records(run_dir):
        if record.get("kind") == "validation" and "cpu_s" in record:
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def at_budget(records: list[dict[str, float]], minutes: float) -> dict[str, float] | None:
    """The last validation whose CPU time is within ``minutes`` (None if there is none)."""
    inside = [r for r in records if r["cpu_s"] <= 60 * minutes * 1.02]
    return inside[-1] if inside else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=30.0, help="CPU minutes to compare at")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--arms", default="", help="comma-separated arm names (default: all runs)")
    args = parser.parse_args(argv)

    arms = [a for a in args.arms.split(",") if a] or sorted(p.name for p in args.runs.iterdir()
                                                         if (p / "metrics.jsonl").is_file())
    runs = {arm: read_validations(args.runs / arm) for arm in arms}
    args.out.mkdir(parents=True, exist_ok=True)
    stages = sorted(KBPS)
    with open(args.out / "screening.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "step", "cpu_minutes"] + [f"{m}@{KBPS[n]:g}kbps" for n in stages
                                                          for m in METRICS])
        for arm, records in runs.items():
            for r in records:
                writer.writerow([arm, r["step"], round(r["cpu_s"] / 60, 2)]
                                + [round(r.get(f"{m}@{n}", float("nan")), 4) for n in stages
                                   for m in METRICS])
    _plot(runs, args.out / "screening.png", args.budget)

    rows = []
    for arm, records in runs.items():
        r = at_budget(records, args.budget)
        if r is not None:
            rows.append((arm, r))
    rows.sort(key=lambda item: -item[1]["pesq_wb@12"])
    print("| arm | steps | CPU min | PESQ-WB 1.5 / 3 / 6 kbps | STOI 6 | SI-SDR 1.5 / 3 / 6 kbps (dB) "
          "| mel 6 |")
    print("|---|---|---|---|---|---|---|")
    for arm, r in rows:
        pesq = " / ".join(f"{r[f'pesq_wb@{n}']:.2f}" for n in stages)
        sisdr = " / ".join(f"{r[f'si_sdr@{n}']:.1f}" for n in stages)
        print(f"| {arm} | {r['step']} | {r['cpu_s'] / 60:.1f} | {pesq} | {r['stoi@12']:.3f} | {sisdr} "
              f"| {r['mel_distance@12']:.2f} |")
    return 0


def _plot(runs: dict[str, list[dict[str, float]]], path: Path, budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, label) in zip(axes, (("pesq_wb", "PESQ-WB @ 6 kbps"), ("si_sdr", "SI-SDR @ 6 kbps (dB)"),
                                          ("mel_distance", "mel distance @ 6 kbps"))):
        for arm, records in runs.items():
            if records:
                ax.plot([r["cpu_s"] / 60 for r in records], [r[f"{metric}@12"] for r in records],
                        marker="o", ms=3, label=arm)
        ax.axvline(budget, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("CPU minutes of training (one thread)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
