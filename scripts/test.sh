#!/usr/bin/env bash
# Sets up .venv (with test extras) if needed and runs the whole test suite. Extra args go to pytest:
#   bash scripts/test.sh -m "not slow"     the fast loop (no training loops, TFLite export, torch)
#   bash scripts/test.sh tests/models -x   one folder
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
export PYTHONUNBUFFERED=1
# Huge-page malloc and heap thresholds for large temporaries (litepose_jax/host_memory.py): fewer
# page faults, a faster suite; glibc ignores tunables that do not exist.
if [ -z "${LITEPOSE_NO_HUGEPAGES:-}" ]; then
  tunables=$(.venv/bin/python -c 'from litepose_jax import host_memory; print(host_memory.TUNABLE)')
  export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}$tunables"
fi
exec .venv/bin/python -m pytest "$@"
