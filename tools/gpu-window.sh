#!/usr/bin/env bash
# One training window on a lent GPU machine, in one device run (see docs/training.md, "Training windows").
#
# Prepare here first:   python -m dagl.train.window prepare          (fills the ignored .window/)
# Then the device call: command "bash tools/gpu-window.sh", carry [".window"], timeout_s 600.
#
# It installs the project into the device's own Python without touching torch (no deps, no index,
# no build isolation); if that fails it runs from a copy of the tree laid out as the installed
# package. Everything it prints also goes to $OUT/window.log. Extra arguments go to `window run`
# (e.g. --init none). DAGL_WINDOW_SECONDS (default 540) is the whole window, set-up included;
# DAGL_WINDOW_DATA (default .window/data) the prepared data; DAGL_WINDOW_NO_INSTALL=1 skips pip
# and runs from the copy of the tree (what the CPU test does, leaving its environment alone).
set -u
START=$(date +%s)
BUDGET=${DAGL_WINDOW_SECONDS:-540}
OUT=${OUT:-out/window}
PY=${PYTHON:-python3}
DATA=${DAGL_WINDOW_DATA:-.window/data}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

setup() {
    echo "window set-up: $(date -u '+%F %T') UTC, $($PY --version 2>&1), $(nvidia-smi -L 2>/dev/null | head -1)"
    if [ "${DAGL_WINDOW_NO_INSTALL:-0}" != 1 ] \
            && $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >/tmp/dagl-pip.log 2>&1 \
            && $PY -c "import dagl.runtime, dagl.train.window" 2>>/tmp/dagl-pip.log; then
        echo "installed dagl (editable, no dependencies)"
    else
        [ -f /tmp/dagl-pip.log ] && tail -5 /tmp/dagl-pip.log
        echo "not installed (pip failed or was skipped): running from a copy of the tree laid out as the package"
        local site
        site=$(mktemp -d /tmp/dagl-site.XXXXXX) && cp -r dagl "$site/" \
            && cp -r export "$site/dagl/export" && cp -r runtime "$site/dagl/runtime" \
            && cp -r calibration "$site/dagl/calibration"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    fi
}

{
    setup
    LEFT=$(( BUDGET - ($(date +%s) - START) ))
    $PY -m dagl.train.window run --data "$DATA" --out "$OUT" --budget "$LEFT" "$@"
} 2>&1 | tee "$OUT/window.log"
exit "${PIPESTATUS[0]}"
