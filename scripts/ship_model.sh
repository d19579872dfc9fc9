#!/usr/bin/env bash
# Ship a run's best checkpoint as the built-in default model and regenerate everything that describes it.
#
#   scripts/ship_model.sh RUN_DIR RECIPE LEGACY_NAME
#   scripts/ship_model.sh ~/diveq-runs/speech16k-stft recipes/speech16k-stft.toml speech16k-stft-v1
#
# 1. The current default keeps shipping as codec/pretrained/LEGACY_NAME.{safetensors,json}, so streams it
#    made still decode (decode picks the built-in model by the weights hash a stream names); its ONNX
#    graphs are remade for the new name (graphs point at their weights file by name). LEGACY_NAME "-"
#    drops it instead: only for a default that never reached users (committed, never landed on main).
# 2. `diveq-codec export RUN_DIR --onnx` (its best validation checkpoint) becomes codec/pretrained/default.*
#    (float16, ~10 MB, and the ONNX graphs of the light runtime, ~0.2 MB, reading default.safetensors);
#    tests/test_onnx_runtime.py checks that the shipped graphs belong to the shipped weights.
# 3. tests/data/model_quality.json gets the new model's scores on the pinned clips (scripts/pin_quality.py);
#    tests/test_default_model.py fails if they are worse than an earlier model's at 6 kbps.
# 4. docs/listen-example (+ .png), docs/quality/training.{csv,png} (HISTORY_RUNS / HISTORY_PRIOR below), docs/eval (the 24-file real-speech
#    eval set against Opus and Codec2) and the speed benchmark are remade; their numbers go to the README
#    by hand (the script prints them).
# Needs data/eval_valid (scripts/make_eval_set.py). Took 5 minutes on one free core (the other training).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 3 ]]; then
    echo "usage: scripts/ship_model.sh RUN_DIR RECIPE LEGACY_NAME" >&2
    exit 2
fi
run=$1 recipe=$2 legacy=$3
py=.venv/bin/python
cli=.venv/bin/diveq-codec
pre=codec/pretrained
log=$(mktemp -d)/ship   # mktemp -d made the folder

[[ -d data/eval_valid ]] || { echo "data/eval_valid is missing: run scripts/make_eval_set.py" >&2; exit 2; }
[[ -f $run/best.pt ]] || { echo "$run/best.pt not found" >&2; exit 2; }
if [[ $legacy != - && -e $pre/$legacy.safetensors ]]; then
    echo "$pre/$legacy.safetensors exists: choose another legacy name" >&2
    exit 2
fi

if [[ $legacy == - ]]; then
    echo "== drop the current default (never released)"
    rm -f "$pre"/default.{safetensors,json,encoder.onnx,decoder.onnx}
else
    echo "== keep the current default as $legacy"
    mv "$pre/default.safetensors" "$pre/$legacy.safetensors"
    mv "$pre/default.json" "$pre/$legacy.json"
    rm -f "$pre/default.encoder.onnx" "$pre/default.decoder.onnx"  # they read default.safetensors
    $cli export-onnx "$pre/$legacy.safetensors"
fi

echo "== export"
$cli export "$run" "$pre/default.safetensors" --dtype float16 --onnx
ls -l "$pre"

echo "== pinned clips"
$py scripts/pin_quality.py | tee "$log.pin"

echo "== listening example"
$py scripts/make_listen_example.py > "$log.listen" 2>&1 || { cat "$log.listen"; exit 1; }
tail -5 "$log.listen"

echo "== training history"
# A run that continues others (a continuation, a cool-down fork): HISTORY_RUNS lists the chain and
# HISTORY_PRIOR the history before it (scripts/training_history.py), e.g.
#   HISTORY_PRIOR=/tmp/prior.csv HISTORY_RUNS="$HOME/diveq-runs/long $HOME/diveq-runs/cooldown3@19000"
read -r -a history_runs <<< "${HISTORY_RUNS:-$run}"
$py scripts/training_history.py "${history_runs[@]}" ${HISTORY_PRIOR:+--prior "$HISTORY_PRIOR"} \
    --recipe "$recipe" --out docs/quality | tee "$log.history"

echo "== eval set against Opus and Codec2"
$cli eval data/eval_valid --bitrate 1.5,3,6 --against opus,codec2 --out docs/eval --listen 0 --force \
    > "$log.eval" 2>&1 || { cat "$log.eval"; exit 1; }
rm -f docs/eval/index.html   # no clips on it (--listen 0); results.md is what the README links
cat docs/eval/results.md

echo "== speed"
OMP_NUM_THREADS=1 $py scripts/bench_model.py --threads 1 --steps 2 "$recipe"
echo "logs in $(dirname "$log")"
