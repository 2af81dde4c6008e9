#!/usr/bin/env bash
# Sets up .venv if needed and runs the main job on the embedded default: the model zoo table and
# one forward pass of every model. The train -> evaluate -> predict quickstart on synthetic data is
# scripts/quickstart.sh (it does not reach its accuracy goal yet; see docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
.venv/bin/litepose zoo --size 128
