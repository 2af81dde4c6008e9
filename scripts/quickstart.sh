#!/usr/bin/env bash
# Quickstart (work in progress: does not reach its AP goal yet, see docs/BENCHMARKS.md).
# ~15 CPU-minutes on a quiet 2-core machine: sets up .venv if needed, prints the model zoo, then trains
# LitePose-XS at 128 px on an easy synthetic data set, scores AP on its held-out val split and
# draws predictions for a few val images. Last line: `quickstart: AP X.XX on synthetic val (N min)`.
# Exits non-zero if the model learned nothing (AP < 0.05); warns below AP 0.5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
start=$SECONDS
.venv/bin/litepose zoo --size 128

work=workdirs/quickstart
data=$work/data
# Fresh model each run; the generated data set is kept.
rm -rf "$work/train" "$work/eval" "$work/predictions" "$work/val_samples"
.venv/bin/python scripts/quickstart.py data --out "$data" --samples "$work/val_samples"
.venv/bin/litepose train --config configs/litepose_xs.py:quickstart --workdir "$work/train" \
    --config.data.data_dir="$data"
.venv/bin/litepose eval --checkpoint "$work/train" --dataset crowdpose --size 128 \
    --ann "$data/json/crowdpose_val.json" --images "$data/images" --out "$work/eval"
.venv/bin/litepose predict --checkpoint "$work/train" --size 128 \
    --source "$work/val_samples" --out "$work/predictions"
echo "drawn predictions: $work/predictions"
.venv/bin/python scripts/quickstart.py summary --metrics "$work/eval/eval_crowdpose_metrics.json" \
    --workdir "$work/train" --seconds $((SECONDS - start))
