#!/usr/bin/env bash
# The project's test command: the README's second command, and exactly what CI (.ci/run) runs.
# It uses the activated environment's python3, else the checkout's .venv (the README's install), so
# a new shell needs no `activate` first; $PYTHON overrides both. Extra arguments go to pytest, e.g.
#   tools/test.sh tests/core/test_io.py -x
# Without test paths (the whole suite, options allowed: tools/test.sh -m "not slow"), the serving tests
# then run again in the serving environment, where nvidia-pytriton is installed (it pins numpy below 2,
# so it has an environment of its own): $SERVE_PYTHON, else .venv-serve/, made by tools/serve-env.sh on
# first use. To run only the serving tests: PYTHON=.venv-serve/bin/python3 tools/test.sh tests/runtime/test_serve.py
set -uo pipefail
cd "$(dirname "$0")/.."
SERVE_TESTS=(tests/runtime/test_serve.py tests/runtime/test_serve_gate.py tests/export/test_triton_repo.py)
python="python3"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python3 ]; then
    python=".venv/bin/python3"
fi

run_pytest() {  # PYTHON ARGS...: pytest's status, with "collected nothing" (5) made a failure
    "$@"
    local status=$?
    if [ "$status" -eq 5 ]; then
        # pytest's "no tests collected": a wrong path or an import-time skip of everything. A run that
        # tested nothing must not look like a pass.
        echo "tools/test.sh: error: pytest collected no tests (exit 5); nothing was tested" >&2
        return 1
    fi
    return "$status"
}

whole_suite=1
for arg in "$@"; do
    [ -e "${arg%%::*}" ] && whole_suite=0
done

run_pytest "${PYTHON:-$python}" -m pytest -q "$@"
status=$?
if [ "$whole_suite" -eq 1 ]; then
    serve_python="${SERVE_PYTHON:-.venv-serve/bin/python3}"
    if [ ! -x "$serve_python" ]; then
        echo "tools/test.sh: making the serving environment .venv-serve/ (tools/serve-env.sh)" >&2
        tools/serve-env.sh || { echo "tools/test.sh: error: tools/serve-env.sh failed" >&2; exit 1; }
    fi
    echo "tools/test.sh: the serving tests, in $("$serve_python" -c 'import sys; print(sys.prefix)')" >&2
    run_pytest "$serve_python" -m pytest -q "$@" "${SERVE_TESTS[@]}" || status=1
fi
exit "$status"
