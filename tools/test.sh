#!/usr/bin/env bash
# The project's test command: the README's second command, and exactly what CI (.ci/run) runs.
# It uses the activated environment's python3, else the checkout's .venv (the README's install), so
# a new shell needs no `activate` first; $PYTHON overrides both. Extra arguments go to pytest, e.g.
#   tools/test.sh tests/test_io.py -x
set -uo pipefail
cd "$(dirname "$0")/.."
python="python3"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python3 ]; then
    python=".venv/bin/python3"
fi
"${PYTHON:-$python}" -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
    # pytest's "no tests collected": a wrong path or an import-time skip of everything. A run that
    # tested nothing must not look like a pass.
    echo "tools/test.sh: error: pytest collected no tests (exit 5); nothing was tested" >&2
    exit 1
fi
exit "$status"
