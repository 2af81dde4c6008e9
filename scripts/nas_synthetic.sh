#!/usr/bin/env bash
# The whole `litepose nas` chain on the quickstart's synthetic data, on a CPU: super-net
# training, search at two MACs budgets, extraction with BatchNorm recalibration, fine-tuning of
# the searched and the uniform-width nets, evaluation on synthetic val, report
# (configs/nas.py:synthetic; ~30 minutes on a 2-core CPU). A rerun skips finished stages and
# resumes an interrupted one.
#   bash scripts/nas_synthetic.sh                       # -> workdirs/nas_synthetic/report.md
#   WORKDIR=/tmp/nas bash scripts/nas_synthetic.sh --config.search.macs='(0.1,)'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
work=${WORKDIR:-workdirs/nas_synthetic}
data=workdirs/quickstart/data  # configs/quickstart.py's data_dir, which configs/nas.py reads
if [[ ! -f $data/json/crowdpose_train.json ]]; then
  .venv/bin/python scripts/quickstart.py data --out "$data"
fi
time .venv/bin/litepose nas --config configs/nas.py:synthetic --workdir "$work" \
    --config.progress=False "$@"
