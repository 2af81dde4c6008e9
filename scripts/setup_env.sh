#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) if missing and installs the project into it.
#   bash scripts/setup_env.sh          runtime requirements
#   bash scripts/setup_env.sh dev      + test requirements (pytest, CPU torch for importer tests)
# Re-running is cheap: installs are skipped while the requirement files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-runtime}
req=requirements.txt
[[ $mode == dev ]] && req=requirements-dev.txt

if [[ ! -x .venv/bin/python ]]; then
  py=""
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      py=$cand; break
    fi
  done
  [[ -n $py ]] || { echo "setup_env: need Python >= 3.11 on PATH" >&2; exit 1; }
  echo "setup_env: creating .venv with $($py --version)"
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

stamp=.venv/.litepose-$mode.stamp
want=$(cat requirements.txt "$req" pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "setup_env: installing $req (first run takes a few minutes)"
.venv/bin/python -m pip install -q -r "$req"
# xtcocotools (CrowdPose evaluation): its wheel is built against numpy 1.x and fails to import
# under numpy 2, so build it from source against the installed numpy.
if ! .venv/bin/python -c 'import xtcocotools.cocoeval' 2>/dev/null; then
  .venv/bin/python -m pip install -q cython setuptools
  .venv/bin/python -m pip install -q --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
fi
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python -c 'import jax, flax, xtcocotools.cocoeval, litepose_jax' 
echo "$want" > "$stamp"
