#!/usr/bin/env bash
# The serving environment: nvidia-pytriton (the serve extra) pins numpy below 2, so it gets a virtual
# environment of its own, .venv-serve/ beside the README's .venv/, which it never touches. Makes it, or
# brings an existing one up to date; the serving commands then run from it:
#   tools/serve-env.sh && .venv-serve/bin/dagl-serve jpeg
# torch is installed at the version of the checkout's .venv (the same wheel, no second download), else
# at the README's; $SERVE_VENV names another folder (CI uses a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SERVE_VENV:-.venv-serve}"
torch="torch==2.13.0"
if [ -x .venv/bin/python3 ]; then
    version="$(.venv/bin/python3 -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
    [ -n "$version" ] && torch="torch==$version"
fi
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/python3" -m pip install -q "$torch"
"$venv/bin/python3" -m pip install -q -e '.[test,serve]'
