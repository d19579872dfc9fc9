#!/usr/bin/env bash
# Train the default recipe on a lent GPU (the `device` tool) for a few minutes and bring the result back.
#
#   scripts/gpu_train.sh [MINUTES]     on the device machine, from the repo root; OUT must be set.
#   scripts/gpu_train.sh --fetch-wheels  here: download/build the wheels the image lacks into data/gpu_wheels
#   scripts/gpu_train.sh --preflight     here: sizes of what a call carries, and the call to make
#
# Device mode (docs/gpu.md has the exact device.run call):
#  1. installs the carried wheels (data/gpu_wheels) into /tmp/diveq_site when the image lacks one of
#     soundfile, soxr, dac, librosa, pystoi, pesq; PYTHONPATH=/tmp/diveq_site:REPO (no `pip install -e .`).
#  2. writes a recipe extending recipes/speech16k-stft.toml: data.sources = the carried subset
#     (data/gpu_subset/manifest.csv, built by scripts/gpu_subset.py), batch 32, 8 loader workers,
#     validation every 1000 steps, checkpoint every 500; PESQ / STOI off if pesq / pystoi won't import.
#  3. trains with --device cuda --max-minutes MINUTES (default 8.5, cut so the whole script ends within
#     GPU_TOTAL_S = 570 s; `timeout` stops a run that overshoots), with --resume when data/gpu_run/last.pt
#     was carried (its metrics.jsonl and best.pt are used too when present).
#  4. writes into $OUT (at most 8 files, each < 16 MiB): train.log (all output), model.safetensors +
#     model.json (`diveq-codec export` of the run: best.pt, else last.pt), metrics.jsonl, and last.pt
#     split into ckpt.part-aa, -ab, ... (15 MiB each) when the parts fit the 8-file limit; the log
#     ends with the sha256 of last.pt, to check the reassembled file.
#
# Environment (device mode): OUT (required), PYTHON (python3), GPU_TRAIN_DEVICE (cuda),
# GPU_BASE_RECIPE (recipes/speech16k-stft.toml), GPU_SUBSET (data/gpu_subset/manifest.csv),
# GPU_WHEELS (data/gpu_wheels), GPU_RESUME_FROM (data/gpu_run), GPU_BATCH (32), GPU_WORKERS (8),
# GPU_VAL_INTERVAL (1000), GPU_CKPT_INTERVAL (500), GPU_MAX_STEPS (the recipe's), GPU_THREADS (torch's
# default), GPU_WORK (/tmp/diveq_gpu: the run directory is GPU_WORK/run), GPU_TOTAL_S (570),
# GPU_RESERVE_S (60: time kept for start-up, export and copies), GPU_INIT_FROM (a model file that starts
# a fresh run, e.g. GPU_BASE_RECIPE=recipes/dac-layout/speech16k-cpu-gan.toml
# GPU_INIT_FROM=codec/pretrained/default.safetensors: the GAN fine-tune of the shipped model).
# GPU_TRAIN_DEBUG=1: a CPU smoke test at debug scale (recipes/debug.toml, batch 4, 1 worker, 1 thread,
# validation every 8 steps, checkpoint every 4, device cpu); each setting can still be overridden.
#   OUT=/tmp/gpu_out GPU_TRAIN_DEBUG=1 PYTHON=.venv/bin/python scripts/gpu_train.sh 0.2

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

WHEELS=${GPU_WHEELS:-data/gpu_wheels}
SUBSET=${GPU_SUBSET:-data/gpu_subset/manifest.csv}
RESUME_FROM=${GPU_RESUME_FROM:-data/gpu_run}
MIB=$((1024 * 1024))

# Packages the training imports that the nvidia-h200 image lacks (KINDS.md, 2026-11-17), pinned to the
# versions of this checkout's .venv. Binary ones are fetched for the image's CPython 3.12.
PURE_WHEELS="descript-audio-codec==1.0.0 descript-audiotools==0.7.2 docstring_parser==0.18.0
ffmpy==1.0.0 flatten-dict==0.5.0 importlib_resources==7.1.0 julius==0.2.8 fire==0.7.1 termcolor==3.3.0
librosa==0.11.0 audioread==3.1.0 decorator==5.3.1 pooch==1.9.0 platformdirs==4.14.8 pystoi==0.4.1
pycparser==3.12 pyloudnorm==0.2.0"
SDIST_ONLY_PURE="argbind==0.3.9 randomname==0.2.1"
BINARY_WHEELS="cffi==2.1.1 soxr==1.1.0 soundfile==0.14.0"
PESQ="pesq==0.0.4"  # sdist only: built here with a CPython 3.12 (pyenv), else PESQ is left out

fetch_wheels() {
    local py=${PYTHON:-.venv/bin/python} py312=${PY312:-}
    mkdir -p "$WHEELS"
    local plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
    # shellcheck disable=SC2086
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $plat -d "$WHEELS" $PURE_WHEELS $BINARY_WHEELS || return 1
    # shellcheck disable=SC2086
    "$py" -m pip wheel -q --no-deps -w "$WHEELS" $SDIST_ONLY_PURE || return 1
    if [ -z "$py312" ]; then
        py312=$(ls "$HOME"/.pyenv/versions/3.12*/bin/python 2>/dev/null | head -1)
        [ -z "$py312" ] && py312=$(command -v python3.12 || true)
    fi
    if [ -n "$py312" ]; then
        "$py312" -m pip wheel -q --no-deps -w "$WHEELS" "$PESQ" \
            || echo "warning: could not build $PESQ for CPython 3.12: validation will skip PESQ" >&2
    else
        echo "warning: no CPython 3.12 here to build $PESQ: validation will skip PESQ" >&2
    fi
    local bad
    bad=$(ls "$WHEELS"/*.whl | grep -v -e '-none-any\.whl$' -e 'cp312' -e 'py3-none-manylinux' || true)
    [ -n "$bad" ] && { echo "error: wheels not for CPython 3.12: $bad" >&2; return 1; }
    ls -l "$WHEELS"
    du -sh "$WHEELS"
}

tree_bytes() {  # bytes of what travels besides carry: tracked + untracked-not-ignored files
    git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}'
}

dir_bytes() { [ -e "$1" ] && find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}' || echo 0; }

preflight() {
    local tree wheels subset run total carry
    tree=$(tree_bytes)
    wheels=$(dir_bytes "$WHEELS")
    subset=$(dir_bytes "$(dirname "$SUBSET")")
    run=$(dir_bytes "$RESUME_FROM")
    total=$((tree + wheels + subset + run))
    awk -v t="$tree" -v w="$wheels" -v s="$subset" -v r="$run" -v m=$MIB \
        -v wn="$WHEELS" -v sn="$(dirname "$SUBSET")" -v rn="$RESUME_FROM" 'BEGIN {
        printf "%-22s %8.2f MiB\n", "working tree", t / m; printf "%-22s %8.2f MiB\n", wn, w / m
        printf "%-22s %8.2f MiB\n", sn, s / m; printf "%-22s %8.2f MiB\n", rn, r / m
        printf "%-22s %8.2f MiB (limit 64)\n", "total", (t + w + s + r) / m }'
    local ok=0
    [ -f "$SUBSET" ] || { echo "missing $SUBSET: run scripts/gpu_subset.py $(dirname "$SUBSET")"; ok=1; }
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "missing wheels: run scripts/gpu_train.sh --fetch-wheels"; ok=1; }
    if [ "$total" -ge $((63 * MIB)) ]; then
        echo "too large: rebuild the subset: .venv/bin/python scripts/gpu_subset.py $(dirname "$SUBSET") --force" \
            "--max-mb $(( (62 * MIB - tree - wheels - run) / MIB ))"
        ok=1
    fi
    for p in "$WHEELS" "$(dirname "$SUBSET")" "$RESUME_FROM"; do
        [ -e "$p" ] && { git check-ignore -q "$p" || { echo "$p is not git-ignored: it would travel twice"; ok=1; }; }
    done
    carry="[\"$WHEELS\", \"$(dirname "$SUBSET")\""
    [ -f "$RESUME_FROM/last.pt" ] && carry="$carry, \"$RESUME_FROM\""
    carry="$carry]"
    echo "device.run: command='OUT=\"\$OUT\" bash scripts/gpu_train.sh 8.5', carry=$carry, timeout_s=600"
    [ -f "$RESUME_FROM/last.pt" ] && echo "resumes from $RESUME_FROM/last.pt" || echo "fresh run (no $RESUME_FROM/last.pt)"
    return $ok
}

device_main() {
    local minutes=$1 t0=$SECONDS py=${PYTHON:-python3}
    local debug=${GPU_TRAIN_DEBUG:-0}
    local device=${GPU_TRAIN_DEVICE:-$([ "$debug" = 1 ] && echo cpu || echo cuda)}
    local base=${GPU_BASE_RECIPE:-$([ "$debug" = 1 ] && echo recipes/debug.toml || echo recipes/speech16k-stft.toml)}
    local batch=${GPU_BATCH:-$([ "$debug" = 1 ] && echo 4 || echo 32)}
    local workers=${GPU_WORKERS:-$([ "$debug" = 1 ] && echo 1 || echo 8)}
    local val_interval=${GPU_VAL_INTERVAL:-$([ "$debug" = 1 ] && echo 8 || echo 1000)}
    local ckpt_interval=${GPU_CKPT_INTERVAL:-$([ "$debug" = 1 ] && echo 4 || echo 500)}
    local threads=${GPU_THREADS:-$([ "$debug" = 1 ] && echo 1 || echo "")}
    local work=${GPU_WORK:-/tmp/diveq_gpu} total_s=${GPU_TOTAL_S:-570} reserve_s=${GPU_RESERVE_S:-60}
    local run="$work/run" recipe="$work/gpu_recipe.toml" site=/tmp/diveq_site
    export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

    echo "== gpu_train.sh $(date -u +%FT%TZ) minutes=$minutes device=$device base=$base"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$py" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())' || return 1

    # 1. packages the image lacks
    local probe='import importlib.util as u, sys
names = sys.argv[1:]
print(" ".join(n for n in names if u.find_spec(n) is None))'
    local missing
    missing=$("$py" -c "$probe" soundfile soxr dac librosa pystoi pesq)
    if [ -n "$missing" ]; then
        echo "missing: $missing; installing carried wheels from $WHEELS"
        ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "error: no wheels in $WHEELS (carry it)"; return 1; }
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "$WHEELS"/*.whl || return 1
        export PYTHONPATH="$site:$PYTHONPATH"
        missing=$("$py" -c "$probe" soundfile soxr dac librosa pystoi pesq)
    fi
    local broken
    broken=$("$py" -c 'import importlib, sys
bad = []
for n in sys.argv[1:]:
    try:
        importlib.import_module(n)
    except Exception as e:
        bad.append(n); print(f"import {n} failed: {e}", file=sys.stderr)
print(" ".join(bad))' soundfile soxr dac librosa pystoi pesq)
    for m in soundfile soxr dac librosa; do
        case " $broken " in *" $m "*) echo "error: $m does not import"; return 1;; esac
    done
    local no_pesq=0 no_stoi=0
    case " $broken " in *" pesq "*) no_pesq=1; echo "pesq unavailable: validation without PESQ";; esac
    case " $broken " in *" pystoi "*) no_stoi=1; echo "pystoi unavailable: validation without STOI";; esac

    # 2. the recipe
    [ -f "$SUBSET" ] || { echo "error: $SUBSET not found (carry $(dirname "$SUBSET"))"; return 1; }
    mkdir -p "$work"
    {
        echo "# written by scripts/gpu_train.sh"
        echo "extends = \"$ROOT/$base\""
        echo "[data]"
        echo "sources = [\"$ROOT/$SUBSET\"]"
        echo "batch_size = $batch"
        echo "num_workers = $workers"
        echo "[schedule]"
        echo "validation_interval = $val_interval"
        echo "checkpoint_interval = $ckpt_interval"
        if [ $no_pesq = 1 ] || [ $no_stoi = 1 ]; then
            echo "[validation]"
            [ $no_pesq = 1 ] && echo "pesq = false"
            [ $no_stoi = 1 ] && echo "stoi = false"
        fi
    } >"$recipe"
    cat "$recipe"

    # 3. train
    local resume=()
    rm -rf "$run"
    if [ -f "$RESUME_FROM/last.pt" ]; then
        mkdir -p "$run"
        cp "$RESUME_FROM/last.pt" "$run/"
        for f in best.pt metrics.jsonl; do [ -f "$RESUME_FROM/$f" ] && cp "$RESUME_FROM/$f" "$run/"; done
        resume=(--resume)
        echo "resuming from $RESUME_FROM/last.pt"
    elif [ -n "${GPU_INIT_FROM:-}" ]; then
        [ -f "$GPU_INIT_FROM" ] || { echo "error: GPU_INIT_FROM=$GPU_INIT_FROM not found"; return 1; }
        resume=(--init-from "$ROOT/$GPU_INIT_FROM")
        echo "fine-tuning from $GPU_INIT_FROM"
    fi
    local left train_min hard_s
    left=$((total_s - (SECONDS - t0) - reserve_s))
    train_min=$(awk -v m="$minutes" -v l="$left" 'BEGIN {x = l / 60; if (m < x) x = m; if (x < 0.05) x = 0.05; printf "%.2f", x}')
    hard_s=$(awk -v m="$train_min" -v r="$reserve_s" 'BEGIN {printf "%d", m * 60 + r / 2}')
    local extra=()
    [ -n "${GPU_MAX_STEPS:-}" ] && extra+=(--max-steps "$GPU_MAX_STEPS")
    [ -n "$threads" ] && extra+=(--threads "$threads")
    echo "== train: --max-minutes $train_min (hard stop after ${hard_s}s) at +$((SECONDS - t0))s"
    timeout -k 15 "$hard_s" "$py" -m cli.main train "$recipe" --out "$run" --device "$device" \
        --max-minutes "$train_min" --no-progress "${resume[@]}" "${extra[@]}"
    local rc=$?
    echo "== train exit $rc at +$((SECONDS - t0))s"
    if [ $rc = 124 ] || [ $rc = 137 ]; then  # 124 would read as the device call's own time-out
        echo "train overran its hard stop and was killed: results are from the last checkpoint"
        rc=75
    fi

    # 4. results
    if [ -f "$run/last.pt" ]; then
        "$py" -m cli.main export "$run" "$OUT/model.safetensors" --force || { [ $rc = 0 ] && rc=1; }
    else
        echo "error: no checkpoint was written"; [ $rc = 0 ] && rc=1
    fi
    [ -f "$run/metrics.jsonl" ] && cp "$run/metrics.jsonl" "$OUT/"
    if [ -f "$run/last.pt" ]; then
        local size parts have total
        size=$(stat -c %s "$run/last.pt")
        parts=$(((size + 15 * MIB - 1) / (15 * MIB)))
        have=$(find "$OUT" -maxdepth 1 -type f | wc -l)
        [ -f "$OUT/train.log" ] || have=$((have + 1))
        total=$(($(dir_bytes "$OUT") + size + MIB))
        if [ $((have + parts)) -le 8 ] && [ "$total" -lt $((64 * MIB)) ]; then
            split -b 15m "$run/last.pt" "$OUT/ckpt.part-"
            echo "last.pt ($size bytes) -> $parts ckpt.part-* files"
        else
            echo "last.pt ($size bytes, $parts parts) left out: $have files already, at most 8 come back"
        fi
        echo "sha256 $(sha256sum "$run/last.pt" | cut -d' ' -f1)  last.pt"
        [ -f "$run/metrics.jsonl" ] && "$py" - "$run" <<'PY'
import json, sys
from pathlib import Path
lines = [json.loads(l) for l in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines() if l.strip()]
train = [r for r in lines if r.get("kind") == "train"]
val = [r for r in lines if r.get("kind") == "validation"]
if train:
    r = train[-1]
    print(f"last train log: step {r['step']} mel {r['mel']:.4f} total {r['total']:.3f} "
          f"{r['steps_per_s']:.2f} steps/s peak {r['peak_memory_mb']:.0f} MiB gan {r['gan']}")
for r in val[-3:]:
    keys = sorted((k for k in r if "@" in k and not k.startswith(("usage", "perplexity", "train_"))),
                  key=lambda k: (k.split("@")[0], int(k.split("@")[1])))
    print(f"validation step {r['step']}: " + " ".join(f"{k}={r[k]:.3f}" for k in keys))
PY
    fi
    ls -l "$OUT"
    echo "== done at +$((SECONDS - t0))s, exit $rc"
    return $rc
}

case "${1:-}" in
    --fetch-wheels) fetch_wheels; exit $? ;;
    --preflight) preflight; exit $? ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
: "${OUT:?OUT must name the folder whose files come back (the device tool sets it)}"
mkdir -p "$OUT"
device_main "${1:-8.5}" 2>&1 | tee "$OUT/train.log"
exit "${PIPESTATUS[0]}"
