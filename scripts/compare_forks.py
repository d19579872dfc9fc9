"""Compare two forks of one run at equal steps: the validations both logged after the fork point.

    .venv/bin/python scripts/compare_forks.py ~/diveq-runs/speech16k-stft ~/diveq-runs/fork-dropout25 \
        --from-step 20000

A fork is a copy of a run directory resumed with a recipe that changes training-only settings; both
continue from the same checkpoint with the same data order, so their validations at the same step
differ only by the change (and the trajectory it leads to). Prints, per common validation step, PESQ-WB
at 1.5 / 3 / 6 kbps, STOI and SI-SDR at 6 kbps of each run and B - A, then the mean difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screen_report import read_validations  # noqa: E402

COLUMNS = (("pesq_wb@3", "PESQ 1.5"), ("pesq_wb@6", "PESQ 3"), ("pesq_wb@12", "PESQ 6"),
           ("stoi@12", "STOI 6"), ("si_sdr@12", "SI-SDR 6"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--from-step", type=int, required=True, help="the fork point (excluded)")
    args = parser.parse_args(argv)
    a = {int(r["step"]): r for r in read_validations(args.run_a) if r["step"] > args.from_step}
    b = {int(r["step"]): r for r in read_validations(args.run_b) if r["step"] > args.from_step}
    steps = sorted(set(a) & set(b))
    if not steps:
        print("no common validation steps after the fork point yet", file=sys.stderr)
        return 1
    print(f"A = {args.run_a}\nB = {args.run_b}\n")
    print("| step | " + " | ".join(f"{name} A / B / B-A" for _, name in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    diffs: dict[str, list[float]] = {key: [] for key, _ in COLUMNS}
    for step in steps:
        cells = []
        for key, _ in COLUMNS:
            va, vb = float(a[step][key]), float(b[step][key])
            diffs[key].append(vb - va)
            cells.append(f"{va:.3f} / {vb:.3f} / {vb - va:+.3f}")
        print(f"| {step} | " + " | ".join(cells) + " |")
    print("\nmean B - A over " + f"{len(steps)} validations: "
          + ", ".join(f"{name} {sum(diffs[key]) / len(steps):+.3f}" for key, name in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
