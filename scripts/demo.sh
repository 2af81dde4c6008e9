#!/usr/bin/env bash
# The main job on the embedded default, the quickstart (~12 minutes on a quiet 2-core CPU after
# the one-time setup): sets up .venv if needed, generates the easy synthetic data set, trains
# LitePose-XS at 64 px on it, scores AP on its held-out val split (flip test) and draws predictions
# for a few val images. Last line: `quickstart: AP X.XX on synthetic val (N min)`.
# Exits non-zero if the model learned nothing (AP < 0.05); warns below the AP 0.5 goal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
start=$SECONDS

work=workdirs/quickstart
data=$work/data
size=64
# Fresh model each run; the generated data set is kept (remade when its recipe changes).
rm -rf "$work/train" "$work/eval" "$work/predictions"
.venv/bin/python scripts/quickstart.py data --out "$data" --samples "$work/val_samples"
.venv/bin/litepose train --config configs/quickstart.py --workdir "$work/train" \
    --config.data.data_dir="$data"
.venv/bin/litepose eval --checkpoint "$work/train" --dataset crowdpose --size $size \
    --ann "$data/json/crowdpose_val.json" --images "$data/images" --out "$work/eval"
.venv/bin/litepose predict --checkpoint "$work/train" --size $size --flip \
    --source "$work/val_samples" --out "$work/predictions"
echo "drawn predictions: $work/predictions"
.venv/bin/python scripts/quickstart.py summary --metrics "$work/eval/eval_crowdpose_metrics.json" \
    --workdir "$work/train" --seconds $((SECONDS - start))
