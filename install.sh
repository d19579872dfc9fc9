#!/usr/bin/env bash
# Installs everything diveq-codec needs on a fresh Debian machine: system tools, then a virtual
# environment in .venv with the package (editable) and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# libsndfile for soundfile; sox/ffmpeg/espeak-ng/flite build the training corpus; opus-tools and codec2
# are the anchors `diveq-codec eval` compares against; chromium (+ a font) is the headless browser the
# tests open the listening page in (driven by playwright; nothing downloads a browser).
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    libsndfile1 sox ffmpeg espeak-ng flite opus-tools codec2 chromium fonts-liberation >/dev/null
PY="${PYTHON:-python3}"
[ -d .venv ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
# The ONNX export's tools in a second command: they need protobuf >= 3.20.2, which descript-audiotools'
# stale pin (< 3.20) forbids within one resolution (pip reports the conflict here and installs them;
# nothing breaks: the test suite passes with both).
.venv/bin/pip install -q -e '.[export]'
echo "installed: $(.venv/bin/diveq-codec --version)"
