#!/usr/bin/env bash
# The light install, as a user gets it: a fresh virtual environment with `pip install .` (no extras),
# which must encode and decode a file on onnxruntime without torch ever being imported. Prints the
# install's size: what `pip install .` added to the fresh environment (the environment's own pip and
# setuptools, ~24 MB, are there before it and are not counted; the total is printed too); fails if
# torch is installed or imported, if coding fails, or if the install is larger than LIMIT_MB.
#
#   scripts/check_light_install.sh [KEEP_DIR]
#
# KEEP_DIR: make the environment there and keep it (scripts/bench_runtime.py --light-cli
# KEEP_DIR/bin/diveq-codec uses it); default: a temporary one, removed afterwards.
# Env: PYTHON (python3), LIMIT_MB (250: what the install adds may not be larger).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
LIMIT_MB=${LIMIT_MB:-250}
WORK=$(mktemp -d)
if [ $# -ge 1 ]; then
    VENV=$1
    rm -rf "$VENV"
    trap 'rm -rf "$WORK"' EXIT
else
    VENV="$WORK/venv"
    trap 'rm -rf "$WORK"' EXIT
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
base_mb=$(du -sm "$VENV" | cut -f1)
"$VENV/bin/pip" install -q .
echo "light install: $("$VENV/bin/pip" list --format=freeze 2>/dev/null | tr '\n' ' ')"
if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
    echo "FAIL: the light install brought torch" >&2
    exit 1
fi
total_mb=$(du -sm "$VENV" | cut -f1)
size_mb=$((total_mb - base_mb))
echo "install size: ${size_mb} MB added by pip install . ($(du -sm "$VENV"/lib/python3*/site-packages/codec | cut -f1) MB of it the package and its models; the environment: ${total_mb} MB, ${base_mb} MB of it pip and setuptools before the install)"

# a 2-second test signal, coded from outside the source tree (the installed package, not ./codec)
"$VENV/bin/python" - "$WORK/in.wav" <<'PYEOF'
import sys
import numpy as np
import soundfile as sf
t = np.arange(32000) / 16000
sf.write(sys.argv[1], (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 2 * t)).astype(np.float32), 16000)
PYEOF
cd "$WORK"
"$VENV/bin/diveq-codec" encode in.wav out.dvq --bitrate 6
"$VENV/bin/diveq-codec" decode out.dvq back.wav
"$VENV/bin/diveq-codec" info out.dvq | grep -E "duration|built-in model"
"$VENV/bin/python" -X importtime -c "
import sys
from cli.main import app
sys.argv = ['diveq-codec', 'encode', 'in.wav', 'again.dvq', '--force']
try:
    app()
except SystemExit as exit:
    assert not exit.code, exit.code
" 2> importtime.txt
if grep -E '\| +torch(\.|$)' importtime.txt >/dev/null; then
    echo "FAIL: encode imported torch:" >&2
    grep -E '\| +torch(\.|$)' importtime.txt | head -5 >&2
    exit 1
fi
echo "python -X importtime of encode: $(wc -l < importtime.txt) modules, no torch"
cmp -s out.dvq again.dvq || { echo "FAIL: encoding twice gave different streams" >&2; exit 1; }
"$VENV/bin/python" -c "import soundfile as sf; assert sf.info('back.wav').frames == 32000"

# streaming through the built-in causal model (its frame graphs on onnxruntime): raw PCM in, packets,
# raw PCM out, the same length; and no torch imported on the way
"$VENV/bin/python" -c "
import numpy as np, soundfile as sf
x, _ = sf.read('in.wav', dtype='int16')
open('in.raw', 'wb').write(x.astype('<i2').tobytes())"
"$VENV/bin/python" -X importtime -m cli.main encode --stream - - < in.raw 2> stream-importtime.txt > packets.bin
"$VENV/bin/diveq-codec" decode --stream - - < packets.bin > back.raw
if grep -E '\| +torch(\.|$)' stream-importtime.txt >/dev/null; then
    echo "FAIL: encode --stream imported torch" >&2
    exit 1
fi
[ "$(stat -c %s back.raw)" -eq "$(stat -c %s in.raw)" ] || { echo "FAIL: the stream's length changed" >&2; exit 1; }
echo "streaming: $(stat -c %s packets.bin) bytes of packets for 2 s, decoded to its length, no torch"
if [ "$size_mb" -gt "$LIMIT_MB" ]; then
    echo "FAIL: the light install takes ${size_mb} MB (limit ${LIMIT_MB} MB)" >&2
    exit 1
fi
echo "light install ok"
