"""Every validation of one or more runs in one Markdown table, with the columns issue 20 watches:
PESQ-WB at 1.5 / 3 / 6 kbps, STOI, DNSMOS OVRL, the stationary-tone figures, PESQ-WB on real-speech
clips of training (seen) and held-out (unseen) speakers, and the run's CPU-minutes of training steps
at that validation (to compare arms at equal CPU time, not only at equal steps).

    .venv/bin/python scripts/fork_table.py ~/diveq-runs/long ~/diveq-runs/gan [--every 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screen_report import read_validations  # noqa: E402

COLUMNS = (("pesq_wb@3", "PESQ 1.5", 3), ("pesq_wb@6", "PESQ 3", 3), ("pesq_wb@12", "PESQ 6", 3),
           ("stoi@12", "STOI 6", 3), ("dnsmos_ovrl@12", "DNSMOS", 2), ("tone_db@12", "tone dB", 1),
           ("pause_tone_db@12", "pause tone dB", 1), ("seen_pesq_wb@12", "seen", 2),
           ("unseen_pesq_wb@12", "unseen", 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--every", type=int, default=1, help="only steps that are multiples of this")
    args = parser.parse_args(argv)
    print("| run | step | CPU-min | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---" * (3 + len(COLUMNS)) + "|")
    for run in args.runs:
        for r in read_validations(run):
            if r["step"] % args.every:
                continue
            cells = [f"{r[key]:.{digits}f}" if key in r else "" for key, _, digits in COLUMNS]
            print(f"| {run.name} | {int(r['step'])} | {r['cpu_s'] / 60:.0f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
