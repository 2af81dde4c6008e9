#!/usr/bin/env bash
# Sets up .venv (with test extras) if needed and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
export PYTHONUNBUFFERED=1
# Huge-page malloc for XLA:CPU's per-step temporaries (litepose_jax/host_memory.py): fewer page
# faults, a faster suite; glibc ignores the tunable where it does not exist.
if [ -z "${LITEPOSE_NO_HUGEPAGES:-}" ]; then
  export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
fi
exec .venv/bin/python -m pytest "$@"
