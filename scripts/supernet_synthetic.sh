#!/usr/bin/env bash
# The super-net path on the quickstart's synthetic data, on a CPU: train the super-net with both
# policies (600 sub-net passes each), cut out three sub-nets with BatchNorm recalibration
# (`litepose extract --config`), score them on the synthetic val split (flip test), and print a
# table. Reruns reuse finished work (the trainer resumes; done extractions and evaluations are
# skipped).
#   bash scripts/supernet_synthetic.sh            # both policies, ~1 h on a 2-core CPU
#   POLICIES=official bash scripts/supernet_synthetic.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHONUNBUFFERED=1
work=workdirs/supernet_synthetic
data=workdirs/quickstart/data
mkdir -p "$work/archs"
.venv/bin/python scripts/quickstart.py data --out "$data"
# Sub-nets of the synthetic space (resolutions 64 / 96, the official widths and depths).
.venv/bin/python - "$work/archs" <<'PY'
import json, sys
from litepose_jax import nas
space = nas.SearchSpace(resolutions=(64, 96))
for name, arch in (('largest96', nas.largest(space)), ('half96', nas.uniform(space, 0.5, 96)),
                   ('smallest64', nas.smallest(space))):
  with open(f'{sys.argv[1]}/{name}.json', 'w') as f:
    json.dump(arch, f, indent=1)
PY
for policy in ${POLICIES:-official sandwich}; do
  run=$work/$policy
  .venv/bin/litepose train --config "configs/supernet.py:synthetic,policy=$policy" \
      --workdir "$run/train" --config.data.data_dir="$data" --config.progress=False
  for arch in largest96 half96 smallest64; do
    size=$(.venv/bin/python -c "import json; print(json.load(open('$work/archs/$arch.json'))['img_size'])")
    if [[ ! -f $run/$arch/model.json ]]; then
      .venv/bin/litepose extract --checkpoint "$run/train" --arch "$work/archs/$arch.json" \
          --out "$run/$arch" --config configs/supernet.py:synthetic \
          --config.data.data_dir="$data" --calib-images 1000 --calib-batch 32
    fi
    if [[ ! -f $run/$arch/eval/eval_crowdpose_metrics.json ]]; then
      .venv/bin/litepose eval --checkpoint "$run/$arch" --dataset crowdpose --size "$size" \
          --ann "$data/json/crowdpose_val.json" --images "$data/images" --out "$run/$arch/eval"
    fi
  done
done
.venv/bin/python - "$work" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
print('policy    sub-net      AP     AP50')
for m in sorted(work.glob('*/*/eval/eval_crowdpose_metrics.json')):
  r = json.loads(m.read_text())
  print(f'{m.parts[-4]:9s} {m.parts[-3]:11s} {r["AP"]:.4f} {r["AP50"]:.4f}')
PY
