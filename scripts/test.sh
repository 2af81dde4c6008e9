#!/usr/bin/env bash
# Sets up .venv (with test extras) if needed and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest "$@"
