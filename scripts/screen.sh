#!/usr/bin/env bash
# Design screening at equal CPU time (issue 14): train each arm from scratch, two at a time, one thread
# each, until its training steps have used BUDGET CPU minutes; then scripts/screen_report.py.
#   scripts/screen.sh [BUDGET_MINUTES] arm1 arm2 ...     (arms: recipes/screen/<arm>.toml)
# Run directories: ${SCREEN_RUNS:-$HOME/diveq-runs/screen}/<arm> (resumed if present).
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:?budget in CPU minutes}"; shift
runs="${SCREEN_RUNS:-$HOME/diveq-runs/screen}"
mkdir -p "$runs"
run_arm() {
    local arm="$1" resume=()
    [ -f "$runs/$arm/last.pt" ] && resume=(--resume)
    .venv/bin/diveq-codec train "recipes/screen/$arm.toml" --out "$runs/$arm" --threads 1 \
        --max-cpu-minutes "$budget" --no-progress "${resume[@]}" >>"$runs/$arm.log" 2>&1 \
        && echo "done: $arm" || echo "FAILED: $arm (see $runs/$arm.log)"
}
export -f run_arm; export runs budget
printf '%s\n' "$@" | xargs -P 2 -I{} bash -c 'run_arm {}'
