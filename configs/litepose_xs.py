"""LitePose-XS (input 256) with the official normal-training recipe (spec 5.1).

Adam lr 4e-3 (no weight decay), 500 epochs, lr x0.1 at epochs 350 and 480, global batch 16
(official: 16 per GPU; scale data.batch_size and optim.lr together for more devices).

Arguments (comma separated, after a colon):
  dataset=crowdpose|coco  CrowdPose trainval -> test (default) or COCO train2017 -> val2017
  synthetic               small generated data set in workdirs/synthetic_data (created on first use)
  quickstart              the ~12 CPU-minute run of scripts/demo.sh (1600 steps, 64 px, batch 32,
                          lr 8e-3, warm-up + cosine, AE loss 'max' x10) on the easy data of
                          `python scripts/quickstart.py data`; expected synthetic val AP ~0.55-0.6
  fake                    in-memory random batches (benchmarks, tests)
  runlocal                tiny batch, 4 steps (smoke test)

Run:
  litepose train --config configs/litepose_xs.py --workdir runs/litepose_xs_crowdpose \
      --config.data.data_dir=/path/to/crowdpose
  litepose train --config configs/litepose_xs.py:dataset=coco --workdir runs/litepose_xs_coco \
      --config.data.data_dir=/path/to/coco
  bash scripts/demo.sh   # the quickstart: data, training, val AP (flip test) and drawn predictions

Expected: published AP (after super-net training and fine-tuning): CrowdPose test 49.5, COCO val
40.6. Trained from scratch with this recipe the AP is far lower (users report 46.6 vs 58.3 for S).
"""
from litepose_jax.training import config_lib


def get_config(arg=None):
  return config_lib.base_config('XS', arg)
