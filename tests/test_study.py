"""Issue 6 study tooling (scripts/study.py): the arm recipes, a tiny end-to-end study, the statistics.

The smoke study trains 2 arms x 2 seeds of a debug-sized codec on generated audio for a few steps
(one torch thread), first cut short with --max-steps and then resumed, and reports on it.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from codec.errors import UsageError
from codec.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
STUDY_RECIPES = ROOT / "recipes" / "study"
ARMS = ("diveq", "diveq-onsum", "sfdiveq", "sfdiveq-vertex", "ste", "ste-lr1e-4", "ste-restarts")


def _load_script():
    spec = importlib.util.spec_from_file_location("study_script", ROOT / "scripts" / "study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_script"] = module
    spec.loader.exec_module(module)
    return module


study = _load_script()

TINY_BASE = """
seed = 0
[model]
name = "study-tiny"
stem_stride = 4
encoder_dim = 8
encoder_rates = [2, 5, 8]
latent_dim = 16
decoder_dim = 32
decoder_rates = [2, 2]
[model.quantizer]
kind = "diveq"
n_codebooks = 4
codebook_size = 64
codebook_dim = 16
replace_interval = 2
[data]
sources = ["synthetic"]
segment_seconds = 0.4
batch_size = 2
num_workers = 0
validation_items = 2
validation_seconds = 1.0
synthetic_clips = 4
synthetic_seconds = 1.0
[optim]
lr = 3e-3
[loss]
adversarial = 0.0
feature_matching = 0.0
[schedule]
max_steps = 4
gan_start_step = 4
log_interval = 1
validation_interval = 2
checkpoint_interval = 2
[validation]
n_codebooks = [2, 4]
pesq = false
stoi = false
audio_samples = 0
"""


# ------------------------------------------------------------------------------------- recipes


def test_study_recipes_differ_only_in_the_quantizer():
    base = load_recipe(STUDY_RECIPES / "base.toml")
    arms = {arm.name: load_recipe(arm.recipe_path) for arm in study.find_arms(STUDY_RECIPES)}
    assert sorted(arms) == sorted(ARMS)
    for name, recipe in arms.items():
        same_model = dataclasses.replace(recipe.model, name=base.model.name,
                                         quantizer=base.model.quantizer)
        assert same_model == base.model, name
        optim = base.optim
        if name == "ste-lr1e-4":  # the one deliberate exception: STE at DAC's learning rate
            assert recipe.optim.lr == 1e-4 and base.optim.lr == 1e-3
            optim = dataclasses.replace(base.optim, lr=recipe.optim.lr)
        assert recipe.replace(model=base.model, optim=optim) == base.replace(optim=optim), \
            f"{name} changes more than the quantizer"
    q = {name: (r.model.quantizer.kind, r.model.quantizer.reparam) for name, r in arms.items()}
    assert q == {"ste": ("ste", "per_stage"), "ste-lr1e-4": ("ste", "per_stage"),
                 "diveq": ("diveq", "per_stage"), "diveq-onsum": ("diveq", "on_sum"),
                 "sfdiveq": ("sfdiveq", "per_stage"), "sfdiveq-vertex": ("sfdiveq", "per_stage"),
                 "ste-restarts": ("ste", "per_stage")}
    assert arms["sfdiveq-vertex"].model.quantizer.sf_inference == "vertex"
    assert arms["ste-restarts"].model.quantizer.ste_restarts
    assert not base.uses_gan
    assert base.model.bitrate(12) == 6000.0 and 12 in base.validation.n_codebooks


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--seeds"):
        study.parse_list("0,x", "--seeds", int)
    with pytest.raises(UsageError, match="duplicate"):
        study.parse_list("1,1", "--seeds", int)
    with pytest.raises(UsageError, match="unknown arm 'nope'"):
        study.find_arms(STUDY_RECIPES, ["nope"])
    assert study.main(["report", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2


# ------------------------------------------------------------------------------- smoke study


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("study")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "base.toml").write_text(TINY_BASE)
    (recipes / "ste.toml").write_text('extends = "base.toml"\n[model.quantizer]\nkind = "ste"\n'
                                      "replace_interval = 0\n")
    (recipes / "diveq.toml").write_text('extends = "base.toml"\n')
    runs = root / "runs"
    common = ["run", "--out", str(runs), "--recipes", str(recipes), "--seeds", "0,1",
              "--threads", "1", "--device", "cpu", "--no-progress"]
    try:
        assert study.main(common + ["--max-steps", "2"]) == 0  # cut short ...
        partial = {p.parent.name + p.parent.parent.name: study.run_status(p.parent, 4)
                   for p in runs.glob("*/seed*/last.pt")}
        assert sorted(partial.values()) == ["partial"] * 4
        assert study.main(common) == 0  # ... then resumed to the recipe's 4 steps
        mtimes = {p: p.stat().st_mtime_ns for p in runs.glob("*/seed*/last.pt")}
        assert study.main(common) == 0  # finished runs are skipped
        assert {p: p.stat().st_mtime_ns for p in runs.glob("*/seed*/last.pt")} == mtimes
        out, md = root / "docs" / "study", root / "docs" / "study.md"
        md.parent.mkdir()
        md.write_text(f"# Study\n\nHow to run it.\n\n{study.BEGIN}\nold results\n{study.END}\n\nTail.\n")
        assert study.main(["report", "--runs", str(runs), "--out", str(out), "--threads", "1",
                           "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(before)
    return runs, out, md


def test_smoke_study_resumes_and_logs_every_run(smoke):
    runs, _, _ = smoke
    for method in ("ste", "diveq"):
        for seed in (0, 1):
            run_dir = runs / method / f"seed{seed}"
            assert study.run_status(run_dir, 4) == "finished"
            records = study.read_records(run_dir)
            steps = [r["step"] for r in records if r["kind"] == "train"]
            assert steps == [1, 2, 3, 4], (method, seed, steps)  # resumed, not restarted
            assert sum(r["kind"] == "start" for r in records) == 2
            assert json.loads((run_dir / "recipe.json").read_text())["seed"] == seed


def test_smoke_report_outputs(smoke):
    runs, out, md = smoke
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "curves.png"):  # written like any other file, not 0600 temp files
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == study.COLUMNS
        rows = list(reader)
    assert len(rows) == 2 * 2 * 2  # methods x seeds x n_codebooks
    assert {(r["method"], r["seed"], r["n_codebooks"]) for r in rows} == {
        (m, s, n) for m in ("ste", "diveq") for s in ("0", "1") for n in ("2", "4")}
    for r in rows:
        assert int(r["steps"]) == 4 and float(r["train_seconds"]) > 0
        assert float(r["kbps"]) == pytest.approx(int(r["n_codebooks"]) * 6 * 50 / 1000)
        assert float(r["mel_distance"]) > 0 and 0 < float(r["codebook_usage"]) <= 1
        assert float(r["perplexity"]) >= 1
        assert r["pesq_wb"] != "" and r["stoi"] != "" and r["si_sdr"] != ""
    with (out / "stage_usage.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2 * 2 * 4  # methods x seeds x stages
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = md.read_text()
    assert text.startswith("# Study\n\nHow to run it.") and text.rstrip().endswith("Tail.")
    assert "old results" not in text and text.count(study.BEGIN) == 1
    assert "### Welch t-tests against `ste`" in text
    assert "| 1.2 | diveq | pesq_wb | 2 vs 2 |" in text and "| 1.2 | diveq | mel_distance |" in text
    assert "### Conclusion" in text and "Best arm at 1.2 kbps (4 stages)" in text
    assert "no exact 6 kbps point" in text
    assert "Operating point NOT reached" in text  # a 4-step debug codec cannot reach PESQ-WB 1.5
    assert "only 2 seed(s) in the smallest arm" in text
    assert "![training curves](study/curves.png)" in text
    assert "### Codebook usage per stage" in text
    assert "| stage | diveq | ste |\n|---|---|---|\n| 0 | " in text

    # outputs are not overwritten without --force
    args = ["report", "--runs", str(runs), "--out", str(out), "--device", "cpu"]
    assert study.main(args) == 2


# ------------------------------------------------------------------------------- statistics


def _rows(values: dict[str, list[tuple[float, float]]]) -> list[dict]:
    return [{"method": m, "seed": s, "n_codebooks": 12, "kbps": 6.0, "pesq_wb": p, "mel_distance": d}
            for m, pairs in values.items() for s, (p, d) in enumerate(pairs)]


QUANTIZERS = {"ste": ("ste", "per_stage"), "diveq": ("diveq", "per_stage"),
              "diveq-onsum": ("diveq", "on_sum"), "ste-lr1e-4": ("ste", "per_stage")}


def test_conclusion_recommends_a_significantly_better_variant():
    rows = _rows({"ste": [(1.50, 2.0), (1.52, 2.1), (1.49, 2.05)],
                  "diveq": [(1.61, 1.80), (1.63, 1.82), (1.62, 1.79)],
                  "diveq-onsum": [(1.52, 2.0), (1.48, 2.1), (1.55, 1.9)]})
    tests = study.welch_tests(rows, "ste")
    pesq = {t["method"]: t for t in tests if t["metric"] == "pesq_wb"}
    assert pesq["diveq"]["significant"] and pesq["diveq"]["method_better"]
    assert not pesq["diveq-onsum"]["significant"]
    assert pesq["diveq"]["diff"] == pytest.approx(1.62 - 1.5033333, abs=1e-6)
    text = " ".join(study.conclusion(rows, tests, "ste", 6.0, QUANTIZERS))
    assert "Best arm at 6 kbps (12 stages): `diveq`" in text
    assert "Operating point reached" in text
    assert '**Default:** `diveq` (kind = "diveq", reparam = "per_stage")' in text


def test_conclusion_says_when_ste_wins_and_when_the_bar_is_missed():
    rows = _rows({"ste": [(1.80, 1.5), (1.82, 1.4), (1.81, 1.45)],
                  "diveq": [(1.60, 1.8), (1.61, 1.9), (1.59, 1.85)]})
    text = " ".join(study.conclusion(rows, study.welch_tests(rows, "ste"), "ste", 6.0, QUANTIZERS))
    assert "`ste` wins" in text and "Best arm at 6 kbps (12 stages): `ste`" in text
    # a second straight-through arm is compared with the baseline but is not a DiVeQ variant:
    # a significantly better one is not recommended as the DiVeQ default, nor does it block "ste wins"
    two = rows + _rows({"ste-lr1e-4": [(1.90, 1.3), (1.91, 1.35), (1.92, 1.3)]})
    text = " ".join(study.conclusion(two, study.welch_tests(two, "ste"), "ste", 6.0, QUANTIZERS))
    assert "`ste-lr1e-4` vs `ste`" in text and "`ste` wins" in text
    assert "**Default:** `ste-lr1e-4`" not in text
    low = _rows({"ste": [(1.05, 3.0), (1.04, 3.1), (1.06, 3.0)],
                 "diveq": [(1.20, 2.5), (1.21, 2.6), (1.19, 2.55)]})
    text = " ".join(study.conclusion(low, study.welch_tests(low, "ste"), "ste", 6.0, QUANTIZERS))
    assert "Operating point NOT reached" in text and "unchanged on this evidence" in text
    assert "significant" in text  # the test is still reported, but not acted on


def test_conclusion_counts_collapsed_and_diverged_runs():
    def row(method, seed, pesq, mel, usage):
        return {"method": method, "seed": seed, "n_codebooks": 12, "kbps": 6.0, "pesq_wb": pesq,
                "mel_distance": mel, "codebook_usage": usage}

    rows = [row("ste", 0, 1.08, 4.9, 0.001), row("ste", 1, 1.20, 2.6, 0.30),
            row("diveq", 0, 1.12, 2.7, 0.77), row("diveq", 1, 1.10, 4.9, 0.004)]
    assert study.collapsed_seeds(rows) == {"ste": [0], "diveq": [1]}
    text = " ".join(study.conclusion(rows, study.welch_tests(rows, "ste"), "ste", 6.0, QUANTIZERS,
                                     failed={"diveq-onsum": [1]}))
    assert "`diveq` 1/2 collapsed" in text and "`ste` 1/2 collapsed" in text
    assert "`diveq-onsum` 0/1 collapsed and 1/1 diverged" in text
    assert "Without the collapsed runs, at 6 kbps (12 stages): `diveq` PESQ-WB 1.120" in text
    healthy = [row("ste", 0, 1.2, 2.6, 0.3), row("diveq", 0, 1.1, 2.7, 0.7)]
    text = " ".join(study.conclusion(healthy, study.welch_tests(healthy, "ste"), "ste", 6.0,
                                     QUANTIZERS))
    assert "Training failures" not in text
