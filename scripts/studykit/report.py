"""``study.py report``: evaluate the finished runs and write results.csv, stage_usage.csv,
ttests.csv, curves.png and the generated section of the markdown report."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codec.errors import UsageError

from .common import BEGIN, COLUMNS, END, FAILED, METRICS, ALPHA, read_records, say, write_text_atomic
from .evaluate import RunInfo, evaluate_run, find_runs
from .statistics import _pm, _values, collapsed_seeds, conclusion, mean_std, welch_tests


def render_markdown(rows: Sequence[dict[str, Any]], stage_rows: Sequence[dict[str, Any]],
                    tests: Sequence[dict[str, Any]], runs: Sequence[RunInfo], baseline: str,
                    target_kbps: float, curves: str | None, command: str) -> str:
    """The generated section of docs/study.md (markers included)."""
    methods = sorted({r["method"] for r in rows})
    quantizers = {r.method: (r.kind, r.reparam) for r in runs}
    out = io.StringIO()
    w = out.write
    w(f"{BEGIN}\n\n## Results\n\nGenerated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
      f"`{command}`.\nEach number is the mean ± standard deviation over seeds of the per-run mean "
      "over the held-out clips (final model, `last.pt`).\n\n### Conclusion\n\n")
    failed: dict[str, list[int]] = {}
    for r in runs:
        if r.status == "failed":
            failed.setdefault(r.method, []).append(r.seed)
    for line in conclusion(rows, tests, baseline, target_kbps, quantizers, failed):
        w(f"- {line}\n")
    collapsed = collapsed_seeds(rows)
    w("\n### Runs\n\n| method | quantizer | reparam | seeds | collapsed seeds | steps "
      "| train minutes (mean) |\n|---|---|---|---|---|---|---|\n")
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        seeds = sorted({int(r["seed"]) for r in mine})
        steps = sorted({int(r["steps"]) for r in mine})
        minutes = mean_std([float(r["train_seconds"]) / 60 for r in mine])[0]
        kind, reparam = quantizers.get(m, ("?", "?"))
        w(f"| {m} | {kind} | {reparam} | {', '.join(map(str, seeds))} | "
          f"{', '.join(map(str, collapsed.get(m, []))) or '–'} | "
          f"{', '.join(map(str, steps))} | {minutes:.1f} |\n")
    other = [r for r in runs if r.status != "finished"]
    if other:
        w("\nNot in the tables (rerun `scripts/study.py run` to finish them):\n\n")
        for r in other:
            note = ""
            if r.status == "failed":
                note = ": " + json.loads((r.run_dir / FAILED).read_text(encoding="utf-8"))["error"]
            w(f"- `{r.method}` seed {r.seed}: {r.status}{note}\n")
    for n in sorted({int(r["n_codebooks"]) for r in rows}):
        kbps = next(float(r["kbps"]) for r in rows if int(r["n_codebooks"]) == n)
        w(f"\n### {kbps:g} kbps ({n} stages)\n\n| method | n | PESQ-WB ↑ | STOI ↑ | mel distance ↓ "
          "| SI-SDR dB ↑ | codebook usage ↑ | perplexity |\n|---|---|---|---|---|---|---|---|\n")
        for m in methods:
            cells = [_pm(*mean_std(_values(rows, m, n, k)), 1 if k in ("si_sdr", "perplexity") else 3)
                     for k in METRICS]
            w(f"| {m} | {len(_values(rows, m, n, 'mel_distance'))} | " + " | ".join(cells) + " |\n")
    w(f"\n### Welch t-tests against `{baseline}`\n\n`diff` = mean(method) − mean({baseline}); "
      f"significant at p < {ALPHA}. PESQ-WB: higher is better; mel distance: lower is better.\n\n"
      "| kbps | method | metric | n | diff | t | p | significant | better |\n"
      "|---|---|---|---|---|---|---|---|---|\n")
    for t in tests:
        p = f"{t['p']:.3g}" if math.isfinite(t["p"]) else "n/a"
        tt = f"{t['t']:.2f}" if math.isfinite(t["t"]) else "n/a"
        diff = f"{t['diff']:+.3f}" if math.isfinite(t["diff"]) else "n/a"
        better = t["method"] if t["method_better"] else baseline
        w(f"| {t['kbps']:g} | {t['method']} | {t['metric']} | {t['n_method']} vs {t['n_baseline']} "
          f"| {diff} | {tt} | {p} | {'yes' if t['significant'] else 'no'} | {better} |\n")
    if not tests:
        w(f"| – | – | – | – | – | – | n/a (no `{baseline}` runs or no other arm) | – | – |\n")
    if stage_rows:
        n_stages = max(int(r["stage"]) for r in stage_rows) + 1
        w("\n### Codebook usage per stage (held-out clips, all stages; % of codes used, mean ± std "
          "over seeds)\n\n| stage | " + " | ".join(methods) + " |\n"
          + "|---" * (len(methods) + 1) + "|\n")
        for k in range(n_stages):
            cells = []
            for m in methods:
                vals = [100 * float(r["usage"]) for r in stage_rows
                        if r["method"] == m and int(r["stage"]) == k]
                cells.append(_pm(*mean_std(vals), 1))
            w(f"| {k} | " + " | ".join(cells) + " |\n")
    if curves:
        w(f"\n### Training curves\n\n![training curves]({curves})\n\nLeft: training mel loss; "
          "middle: validation mel distance at the highest bitrate; right: mean share of codes used "
          "per stage in training (between validations). One colour per arm, one line per seed.\n")
    w(f"\n{END}\n")
    return out.getvalue()


def plot_curves(runs: Sequence[RunInfo], path: Path) -> bool:
    """Write training curves from every run's metrics.jsonl to ``path`` (PNG); False if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    methods = sorted({r.method for r in runs})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    drawn = set()
    any_data = False
    for run in runs:
        records = read_records(run.run_dir)
        train = [r for r in records if r.get("kind") == "train"]
        valid = [r for r in records if r.get("kind") == "validation"]
        label = run.method if run.method not in drawn else None
        style = dict(color=colours[run.method], alpha=0.8, linewidth=1.2, label=label)
        if train:
            axes[0].plot([r["step"] for r in train], [r["mel"] for r in train], **style)
            any_data = True
        mel_keys = sorted((k for k in (valid[0] if valid else {}) if k.startswith("mel_distance@")),
                          key=lambda k: int(k.split("@")[1]))
        if valid and mel_keys:
            axes[1].plot([r["step"] for r in valid], [r[mel_keys[-1]] for r in valid], marker="o",
                         markersize=3, **style)
            use = [[v for k, v in r.items() if k.startswith("train_usage@")] for r in valid]
            pts = [(r["step"], 100 * sum(u) / len(u)) for r, u in zip(valid, use) if u]
            if pts:
                axes[2].plot(*zip(*pts), marker="o", markersize=3, **style)
        drawn.add(run.method)
    for ax, title in zip(axes, ("training mel loss", "validation mel distance (highest bitrate)",
                                "codes used per stage in training (%)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    if any_data:
        from codec.io.fileio import atomic_output

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, force=True) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return any_data


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                         for k in columns})
    return buf.getvalue()


def update_markdown(md: Path, section: str) -> None:
    """Replace the generated section of ``md`` (between BEGIN/END), append it, or create the file."""
    text = md.read_text(encoding="utf-8") if md.is_file() else "# DiVeQ vs straight-through RVQ\n"
    start, end = text.find(BEGIN), text.find(END)
    if start >= 0 and end > start:
        text = text[:start] + section.rstrip("\n") + text[end + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(md, text if text.endswith("\n") else text + "\n")


def report(runs_dir: Path, out: Path, md: Path | None = None, *, baseline: str = "ste",
           target_kbps: float = 6.0, device: str = "auto", force: bool = False,
           command: str = "scripts/study.py report") -> dict[str, Any]:
    """Evaluate every finished run under ``runs_dir`` and write the report (module docstring).

    Returns ``{"rows", "stage_rows", "tests", "runs"}``. Raises UsageError when an output exists
    and ``force`` is False, or when no run has finished.
    """
    md = Path(md) if md is not None else out.with_suffix(".md")
    targets = [out / name for name in ("results.csv", "stage_usage.csv", "ttests.csv", "curves.png")]
    if not force:
        for target in targets:
            if target.exists():
                raise UsageError(f"{target} exists (use --force to overwrite)")
    runs = find_runs(runs_dir)
    finished = [r for r in runs if r.status == "finished"]
    if not finished:
        raise UsageError(f"no finished runs under {runs_dir} (statuses: "
                         + ", ".join(f"{r.method}/seed{r.seed} {r.status}" for r in runs) + ")")
    rows: list[dict[str, Any]] = []
    stage_rows: list[dict[str, Any]] = []
    cache: dict[Any, list[Any]] = {}
    for info in finished:
        say(f"evaluating {info.method}/seed{info.seed}")
        r, s = evaluate_run(info, device, cache)
        rows += r
        stage_rows += s
    tests = welch_tests(rows, baseline)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.csv", _csv_text(rows, COLUMNS))
    write_text_atomic(out / "stage_usage.csv",
                      _csv_text(stage_rows, ("method", "seed", "stage", "usage", "perplexity")))
    write_text_atomic(out / "ttests.csv", _csv_text(tests, list(tests[0]) if tests else ["method"]))
    curves = None
    if plot_curves(finished, out / "curves.png"):
        curves = os.path.relpath(out / "curves.png", md.parent.resolve() if md.parent.exists()
                                 else md.parent).replace(os.sep, "/")
    update_markdown(md, render_markdown(rows, stage_rows, tests, runs, baseline, target_kbps,
                                        curves, command))
    return {"rows": rows, "stage_rows": stage_rows, "tests": tests, "runs": runs}
