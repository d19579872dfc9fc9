"""Issue 6: does DiVeQ beat straight-through RVQ in our codec? Train every (arm, seed), then report.

    .venv/bin/python scripts/study.py run --out runs/study [--recipes recipes/study] [--seeds 0,1,2]
        [--arms ste,diveq,...] [--max-minutes-per-run M] [--max-minutes TOTAL] [--max-steps N]
        [--threads 1] [--device auto] [--retry-failed]
    .venv/bin/python scripts/study.py report --runs runs/study --out docs/study [--md docs/study.md]
        [--baseline ste] [--target-kbps 6] [--threads 1] [--device auto] [--force]

Arms: every ``*.toml`` in ``--recipes`` except ``base.toml``; the method name is the file stem. Each
(arm, seed) trains with ``codec.train.loop.train`` into ``RUNS/<method>/seed<seed>/`` (the recipe with
its top-level ``seed`` replaced). ``run`` is resumable: finished runs are skipped, unfinished ones
continue with ``resume=True``, and a run that fails (e.g. a non-finite loss) is recorded in its
``failed.json`` and skipped until ``--retry-failed``. Seeds are the outer loop, so a study cut short
by ``--max-minutes`` has balanced arms.

``report`` evaluates each finished run's final model (``last.pt``) on the held-out clips
(``build_validation_clips``: the corpus's ``valid`` split via ``ValidationSet``) at every
``validation.n_codebooks`` value with ``codec.eval.metrics.score`` and writes into ``--out``:
``results.csv`` (one row per method, seed, n_codebooks), ``stage_usage.csv`` (per-stage usage at
the largest n_codebooks), ``ttests.csv`` (Welch t-tests against ``--baseline``) and ``curves.png``;
and replaces the generated section of ``--md`` (default ``<out>.md``) between the markers
:data:`BEGIN` and :data:`END` (appending it when the markers are absent).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# ``python scripts/study.py`` puts scripts/ first on sys.path; a test loading this file by path does
# not: make both the repository and scripts/ (the ``studykit`` package) importable.
_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT, _ROOT / "scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from codec.errors import DiveqError, UsageError  # noqa: E402
from studykit.common import (  # noqa: E402,F401  (the study's names, importable from here)
    ALPHA, BASE_NAME, BEGIN, COLLAPSE_USAGE, COLUMNS, END, FAILED, HIGHER_IS_BETTER, METRICS,
    PESQ_BAR, TESTED, Arm, find_arms, parse_list, read_records, run_dir_of, run_status, say,
    train_seconds, write_text_atomic)
from studykit.evaluate import RunInfo, evaluate_run, find_runs  # noqa: E402,F401
from studykit.report import plot_curves, render_markdown, report, update_markdown  # noqa: E402,F401
from studykit.run import run_study  # noqa: E402
from studykit.statistics import (  # noqa: E402,F401
    collapsed_seeds, conclusion, mean_std, operating_point, welch_tests)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every (arm, seed); resumable")
    run.add_argument("--out", type=Path, required=True, help="study folder (one run dir per arm/seed)")
    run.add_argument("--recipes", type=Path, default=_ROOT / "recipes" / "study",
                     help="folder of arm recipes (default: recipes/study)")
    run.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    run.add_argument("--arms", default=None, help="comma-separated arms (default: all)")
    run.add_argument("--max-minutes-per-run", type=float, default=None,
                     help="stop each run cleanly after this many minutes (resume later)")
    run.add_argument("--max-minutes", type=float, default=None,
                     help="wall-time budget for this whole call")
    run.add_argument("--max-steps", type=int, default=None,
                     help="override every recipe's schedule.max_steps (smoke tests)")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--retry-failed", action="store_true", help="retry runs that failed before")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: when stderr is a terminal)")
    rep = sub.add_parser("report", help="evaluate finished runs; write results.csv, curves, study.md")
    rep.add_argument("--runs", type=Path, required=True, help="study folder written by `run`")
    rep.add_argument("--out", type=Path, required=True, help="folder for results.csv and curves.png")
    rep.add_argument("--md", type=Path, default=None, help="markdown file (default: <out>.md)")
    rep.add_argument("--baseline", default="ste", help="arm the t-tests compare against")
    rep.add_argument("--target-kbps", type=float, default=6.0, help="operating point (6 kbps)")
    rep.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    rep.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    rep.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (a DiveqError's exit_code, after a one-line message)."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None and args.threads < 1:
            raise UsageError("--threads must be >= 1")
        if args.command == "run":
            seeds = parse_list(args.seeds, "--seeds", int)
            arms = parse_list(args.arms, "--arms") if args.arms else None
            progress = sys.stderr.isatty() if args.progress is None else args.progress
            statuses = run_study(args.out, args.recipes, seeds, arms,
                                 max_minutes_per_run=args.max_minutes_per_run,
                                 max_minutes=args.max_minutes, max_steps=args.max_steps,
                                 threads=args.threads, device=args.device,
                                 retry_failed=args.retry_failed, progress=progress)
            counts = {s: sum(v == s for v in statuses.values()) for s in sorted(set(statuses.values()))}
            say("study: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        else:
            import torch

            torch.set_num_threads(args.threads)
            command = "scripts/study.py " + " ".join(sys.argv[1:] if argv is None else argv)
            result = report(args.runs, args.out, args.md, baseline=args.baseline,
                            target_kbps=args.target_kbps, device=args.device, force=args.force,
                            command=command)
            say(f"wrote {args.out}/results.csv ({len(result['rows'])} rows) and "
                 f"{args.md or args.out.with_suffix('.md')}")
    except DiveqError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
