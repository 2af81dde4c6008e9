#!/usr/bin/env bash
# Sets up .venv if needed and runs the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
.venv/bin/litepose zoo --size 128
