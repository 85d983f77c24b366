#!/usr/bin/env bash
# The project's test command: the README's second command, and exactly what CI (.ci/run) runs.
# It uses the python3 on PATH (the activated environment); extra arguments go to pytest, e.g.
#   tools/test.sh tests/test_io.py -x
set -uo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
    # pytest's "no tests collected": a wrong path or an import-time skip of everything. A run that
    # tested nothing must not look like a pass.
    echo "tools/test.sh: error: pytest collected no tests (exit 5); nothing was tested" >&2
    exit 1
fi
exit "$status"
