"""The study's statistics: means, Welch t-tests against the baseline, collapsed runs, and the
plain-language conclusion generated from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .common import ALPHA, COLLAPSE_USAGE, HIGHER_IS_BETTER, PESQ_BAR, TESTED


def _values(rows: Sequence[dict[str, Any]], method: str, n: int, metric: str) -> list[float]:
    return [float(r[metric]) for r in rows if r["method"] == method and int(r["n_codebooks"]) == n
            and math.isfinite(float(r[metric]))]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for fewer than 2 values)."""
    import numpy as np

    if not values:
        return math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def welch_tests(rows: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Welch's t-test (scipy ``ttest_ind(equal_var=False)``) of every method against ``baseline``
    on each of :data:`TESTED` at each n_codebooks. ``diff`` = mean(method) - mean(baseline); ``p``
    is NaN when a group has fewer than 2 values or both have zero variance."""
    import warnings

    from scipy import stats

    out = []
    methods = sorted({r["method"] for r in rows} - {baseline})
    for n in sorted({int(r["n_codebooks"]) for r in rows}):
        kbps = next(float(r["kbps"]) for r in rows if int(r["n_codebooks"]) == n)
        for method in methods:
            for metric in TESTED:
                a, b = _values(rows, method, n, metric), _values(rows, baseline, n, metric)
                t = p = math.nan
                if len(a) >= 2 and len(b) >= 2:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        res = stats.ttest_ind(a, b, equal_var=False)
                    t, p = float(res.statistic), float(res.pvalue)
                diff = mean_std(a)[0] - mean_std(b)[0] if a and b else math.nan
                better = (diff > 0) == HIGHER_IS_BETTER[metric] if math.isfinite(diff) else False
                out.append({"n_codebooks": n, "kbps": kbps, "method": method, "baseline": baseline,
                            "metric": metric, "n_method": len(a), "n_baseline": len(b),
                            "diff": diff, "t": t, "p": p,
                            "significant": bool(math.isfinite(p) and p < ALPHA),
                            "method_better": bool(better and diff != 0)})
    return out


def operating_point(rows: Sequence[dict[str, Any]], target_kbps: float) -> int:
    """The evaluated n_codebooks with the highest bitrate not above ``target_kbps`` (else the lowest)."""
    by_n = {int(r["n_codebooks"]): float(r["kbps"]) for r in rows}
    below = [n for n, k in by_n.items() if k <= target_kbps + 1e-9]
    return max(below) if below else min(by_n)


def collapsed_seeds(rows: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Per method, the seeds whose model collapsed: mean codebook usage on the held-out clips below
    COLLAPSE_USAGE at the largest evaluated n_codebooks (the encoder output went constant over time,
    so every frame gets the same codes; such a run scores like a codec that transmits nothing)."""
    n_max = max(int(r["n_codebooks"]) for r in rows)
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["method"], [])
        usage = float(r.get("codebook_usage", math.nan))
        if int(r["n_codebooks"]) == n_max and math.isfinite(usage) and usage < COLLAPSE_USAGE:
            out[r["method"]].append(int(r["seed"]))
    return {m: sorted(seeds) for m, seeds in out.items()}


def conclusion(rows: Sequence[dict[str, Any]], tests: Sequence[dict[str, Any]], baseline: str,
               target_kbps: float, quantizers: dict[str, tuple[str, str]],
               failed: dict[str, list[int]] | None = None) -> list[str]:
    """Plain-language paragraphs generated from the numbers (see the module docstring).

    failed: per method, the seeds whose training stopped on an error (e.g. a non-finite loss).
    """
    from codec.config import QuantizerConfig

    lines: list[str] = []
    n_op = operating_point(rows, target_kbps)
    kbps = next(float(r["kbps"]) for r in rows if int(r["n_codebooks"]) == n_op)
    methods = sorted({r["method"] for r in rows})
    pesq = {m: mean_std(_values(rows, m, n_op, "pesq_wb")) for m in methods}
    mel = {m: mean_std(_values(rows, m, n_op, "mel_distance")) for m in methods}
    counts = {m: len({r["seed"] for r in rows if r["method"] == m}) for m in methods}
    scored = [m for m in methods if math.isfinite(pesq[m][0])]
    at = f"{kbps:g} kbps ({n_op} stages)"
    if abs(kbps - target_kbps) > 1e-6:
        lines.append(f"The models serve no exact {target_kbps:g} kbps point; the operating point is "
                     f"{at}, the highest bitrate at or below it.")
    best = max(scored, key=lambda m: pesq[m][0]) if scored else None
    best_mel = min(methods, key=lambda m: mel[m][0] if math.isfinite(mel[m][0]) else math.inf)
    reached = best is not None and pesq[best][0] >= PESQ_BAR
    if best is None:
        lines.append(f"No run produced a PESQ-WB score at {at}, so no arm can be called best.")
    else:
        seeds = f"{counts[best]} seed" + ("s" if counts[best] != 1 else "")
        lines.append(f"**Best arm at {at}: `{best}`** by mean PESQ-WB ({_pm(*pesq[best], 3)}, "
                     f"{seeds}); lowest mean mel distance: `{best_mel}` "
                     f"({_pm(*mel[best_mel], 3)}). Whether these leads are real is what the "
                     "t-tests below say.")
    if reached:
        lines.append(f"**Operating point reached:** the best arm's mean PESQ-WB at {at} is "
                     f"{pesq[best][0]:.2f} >= {PESQ_BAR} (issue 6's bar), so the comparison counts.")
    else:
        value = f"{pesq[best][0]:.2f}" if best is not None else "n/a"
        lines.append(f"**Operating point NOT reached:** the best mean PESQ-WB at {at} is {value} < "
                     f"{PESQ_BAR} (issue 6's bar). At this quality the codec is not yet intelligible "
                     "enough to compare quantizers, so the differences below are NOT evidence for or "
                     "against DiVeQ; the study has to be rerun at a larger scale (more steps, a GAN "
                     "phase, or on a GPU) before it can choose defaults.")
    collapsed = collapsed_seeds(rows)
    failed = failed or {}
    if any(collapsed.values()) or any(failed.values()):
        parts = []
        for m in sorted(set(methods) | set(failed)):
            bad_c, bad_f = collapsed.get(m, []), failed.get(m, [])
            total = counts.get(m, 0) + len(bad_f)
            part = f"`{m}` {len(bad_c)}/{total} collapsed"
            if bad_f:
                part += f" and {len(bad_f)}/{total} diverged"
            parts.append(part)
        lines.append("**Training failures** (collapse: held-out code usage < "
                     f"{100 * COLLAPSE_USAGE:g} % at the most stages; diverged: a non-finite loss "
                     "stopped the run): " + "; ".join(parts) + ". A collapsed run is kept in the "
                     "means and tests, so they measure how reliably each arm trains as much as "
                     "how well it codes.")
        healthy = []
        for m in methods:
            vals = [(float(r["pesq_wb"]), float(r["mel_distance"])) for r in rows
                    if r["method"] == m and int(r["n_codebooks"]) == n_op
                    and int(r["seed"]) not in collapsed.get(m, [])]
            if vals:
                p_ms, d_ms = mean_std([v[0] for v in vals]), mean_std([v[1] for v in vals])
                healthy.append(f"`{m}` PESQ-WB {_pm(*p_ms, 3)}, mel {_pm(*d_ms, 3)} "
                               f"(n = {len(vals)})")
            else:
                healthy.append(f"`{m}`: every run collapsed")
        lines.append(f"Without the collapsed runs, at {at}: " + "; ".join(healthy) + ".")
    if baseline not in methods:
        lines.append(f"The baseline arm `{baseline}` has no finished runs: no t-test was possible.")
    n_min = min(counts.values())
    if n_min < 3:
        lines.append(f"Sample size: only {n_min} seed(s) in the smallest arm; a Welch t-test on so "
                     "few runs means little (issue 6 asks for at least 3 seeds per arm).")
    else:
        lines.append(f"Sample size: {n_min}+ seeds per arm. With this few runs the Welch t-test "
                     "detects only large effects: a non-significant difference is not evidence "
                     "that two arms are equal.")
    # straight-through arms other than the baseline (e.g. STE at another learning rate) are reported
    # against it but are not DiVeQ variants: they neither win nor lose the default
    variants = [m for m in methods if m != baseline and quantizers.get(m, ("",))[0] != "ste"]
    wins, losses = [], []
    for method in methods:
        if method == baseline:
            continue
        parts = []
        for metric in TESTED:
            test = next((t for t in tests if t["method"] == method and t["metric"] == metric
                         and t["n_codebooks"] == n_op), None)
            if test is None or not math.isfinite(test["p"]):
                parts.append(f"{metric}: not testable")
                continue
            verdict = ("significant" if test["significant"] else "not significant")
            who = method if test["method_better"] else baseline
            parts.append(f"{metric} {test['diff']:+.3f} (p = {test['p']:.3g}, {verdict}; "
                         f"`{who}` better)")
            if metric == "pesq_wb" and test["significant"] and method in variants:
                (wins if test["method_better"] else losses).append(method)
        lines.append(f"`{method}` vs `{baseline}` at {at}: " + "; ".join(parts) + ".")
    default = QuantizerConfig()
    current = f"kind = \"{default.kind}\", reparam = \"{default.reparam}\""
    if not reached:
        lines.append(f"**Default:** unchanged on this evidence: the recipes keep {current} "
                     "(QuantizerConfig's default) until a study reaches the operating point.")
    elif wins:
        pick = max(wins, key=lambda m: pesq[m][0])
        kind, reparam = quantizers.get(pick, ("?", "?"))
        lines.append(f"**Default:** `{pick}` (kind = \"{kind}\", reparam = \"{reparam}\"): its "
                     f"PESQ-WB at {at} is significantly above `{baseline}`'s (p < {ALPHA}).")
    elif losses and len(losses) == len(variants):
        kind, reparam = quantizers.get(baseline, ("?", "?"))
        lines.append(f"**Default: `{baseline}` wins.** Every DiVeQ variant's PESQ-WB at {at} is "
                     f"significantly below the straight-through baseline's; the recipes should use "
                     f"kind = \"{kind}\".")
    else:
        lines.append(f"**Default:** no DiVeQ variant is significantly better than `{baseline}` on "
                     f"PESQ-WB at {at}; the recipes keep {current}, which needs no auxiliary loss, "
                     "but this study does not show that it is better.")
    return lines


def _pm(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
