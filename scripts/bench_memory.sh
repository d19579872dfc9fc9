#!/usr/bin/env bash
# Peak memory (max RSS, from /usr/bin/time -v) and wall time of `diveq-codec encode` + `decode` of a
# long 16 kHz mono file (1 hour by default). Fails if either run exceeds LIMIT_MB (default 1536).
#
# Usage: scripts/bench_memory.sh [MODEL.safetensors] [SECONDS]
#   MODEL   default: codec/pretrained/default.safetensors if installed, else a randomly initialised
#           model with the default ModelConfig (same size and speed as a trained one).
#   SECONDS length of the test signal (default 3600).
# Env: LIMIT_MB (1536), DEVICE (cpu), RUNTIME (auto: onnx for a model with ONNX graphs; or torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CLI=.venv/bin/diveq-codec
LENGTH=${2:-3600}
LIMIT_MB=${LIMIT_MB:-1536}
DEVICE=${DEVICE:-cpu}
RUNTIME=${RUNTIME:-auto}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

MODEL=${1:-}
if [ -z "$MODEL" ]; then
    if [ -f codec/pretrained/default.safetensors ]; then
        MODEL=codec/pretrained/default.safetensors
    else
        MODEL="$WORK/random-default.safetensors"
        "$PY" -W ignore - "$MODEL" <<'PYEOF'
import sys
import torch
from codec.config import ModelConfig
from codec.models.model import Codec
from codec.models.weights import save_model
torch.manual_seed(0)
save_model(Codec(ModelConfig()), sys.argv[1])
PYEOF
    fi
fi

# Test signal: pink noise, 16-bit PCM (memory does not depend on the content).
if command -v sox >/dev/null; then
    sox -n -r 16000 -c 1 -b 16 "$WORK/in.wav" synth "$LENGTH" pinknoise vol 0.3
else
    "$PY" - "$WORK/in.wav" "$LENGTH" <<'PYEOF'
import sys
import numpy as np
import soundfile as sf
rng = np.random.default_rng(0)
with sf.SoundFile(sys.argv[1], "w", 16000, 1, subtype="PCM_16") as f:
    for _ in range(int(sys.argv[2])):
        f.write((0.1 * rng.standard_normal(16000)).astype(np.float32))
PYEOF
fi

measure() {  # label, then the command; prints "label: peak RSS, wall time"
    local label=$1
    shift
    /usr/bin/time -v -o "$WORK/$label.time" "$@"
    local kb wall
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$label.time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/$label.time")
    echo "$label: peak RSS $((kb / 1024)) MiB, wall $wall"
    if [ "$((kb / 1024))" -gt "$LIMIT_MB" ]; then
        echo "FAIL: $label used more than $LIMIT_MB MiB" >&2
        return 1
    fi
}

echo "model: $MODEL; input: ${LENGTH} s of 16 kHz mono ($(du -h "$WORK/in.wav" | cut -f1)); device: $DEVICE; runtime: $RUNTIME"
status=0
measure encode "$CLI" encode "$WORK/in.wav" "$WORK/out.dvq" --model "$MODEL" --device "$DEVICE" --runtime "$RUNTIME" || status=1
"$CLI" info "$WORK/out.dvq" | grep -E "duration|bitrate|file size"
measure decode "$CLI" decode "$WORK/out.dvq" "$WORK/back.wav" --model "$MODEL" --device "$DEVICE" --runtime "$RUNTIME" || status=1
"$PY" -c "import soundfile as sf, sys; a, b = sf.info(sys.argv[1]), sf.info(sys.argv[2]); \
assert (a.frames, a.samplerate) == (b.frames, b.samplerate), (a, b); print('length restored:', b.frames, 'samples')" \
    "$WORK/in.wav" "$WORK/back.wav"
exit $status
