#!/usr/bin/env bash
# From a fresh clone to a running demo in one command: a virtual environment in
# .venv-demo with the bot and its `demo` extra (Synapse), then `helpline-bot demo`.
# Needs only Python 3.11+ with venv and pip. Arguments go to the demo, e.g.
#   ./demo.sh --simulate     a scripted conversation, printed as a timeline
#   ./demo.sh --fresh        replace the previous demo in ./.demo
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-demo}"
STAMP="$VENV/.installed-from"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up $VENV (once; Synapse and its dependencies take a minute)" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# Reinstall only when the package's requirements changed since the last run.
want="$(cat pyproject.toml | cksum)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet -e '.[demo]'
    echo "$want" > "$STAMP"
fi
exec "$VENV/bin/helpline-bot" demo "$@"
