"""LitePose-XS (input 256) with the official normal-training recipe.

Adam lr 4e-3 (no weight decay), 500 epochs, lr x0.1 at epochs 350 and 480, global batch 16
(official: 16 per GPU; scale data.batch_size and optim.lr together for more devices). Official
values: experiments/crowd_pose/mobilenet/mobile.yaml and dist_train.py of the LitePose repository
(docs/OFFICIAL.md, "Training recipe" and "Augmentation").

Arguments (comma separated, after a colon):
  dataset=crowdpose|coco  CrowdPose trainval -> test (default) or COCO train2017 -> val2017
  synthetic               small generated data set in workdirs/synthetic_data (created on first use)
  quickstart              the recipe of configs/quickstart.py (scripts/demo.sh); combines with
                          fake and runlocal
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
import ml_collections

from litepose_jax import config_files
from litepose_jax.errors import UserError

common = config_files.import_sibling(__file__, 'common')


def get_config(arg=None):
  """The recipe; `arg` as in the module docstring."""
  a = common.parse_arg(arg, quickstart=False)
  if a.quickstart:
    return _quickstart(a)
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.arch = 'XS'  # preset name or an official-schema JSON path
  config.model.kernel_size = 0  # 0: the architecture's own kernels; 3/5/7/9 overrides every block
  config.model.width_mult = 1.0
  config.model.fusion = True  # official fusion deconv head
  config.model.depthwise_impl = 'auto'
  config.model.conv_impl = 'auto'  # dense / transposed convs: 'auto' | 'lax' | 'matmul' (CPU)

  config.data = common.data_for(a.dataset)
  config.data.input_size = 256  # official: 256 (the architecture json's img_size)
  config.data.batch_size = 16  # official: 16 per GPU; the global batch is what is set here
  config.data.max_people = 30  # official MAX_NUM_PEOPLE 30
  config.data.sigma = 2.0  # official SIGMA 2 (output pixels, both resolutions)
  config.data.min_scale = 0.75  # official MIN_SCALE 0.75
  config.data.max_scale = 1.5  # official MAX_SCALE 1.5
  config.data.max_rotation = 30.0  # official MAX_ROTATION 30 (degrees)
  config.data.max_translate = 40.0  # official MAX_TRANSLATE 40
  config.data.flip_prob = 0.5  # official FLIP 0.5

  config.num_epochs = 500  # official END_EPOCH 500
  config.total_steps = 0  # > 0 overrides num_epochs
  config.optim = ml_collections.ConfigDict()
  config.optim.name = 'adam'  # official Adam; 'adamw' uses weight_decay
  config.optim.lr = 4e-3  # official LR 0.004
  config.optim.b1 = 0.9  # official: torch defaults (0.9, 0.999), eps 1e-8
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 0.0  # official WD 1e-4 is read only by the SGD branch
  config.optim.schedule = 'multistep'  # 'multistep' | 'cosine' | 'constant'
  config.optim.milestones = (350, 480)  # epochs; official LR_STEP [350, 480], stepped per epoch
  config.optim.decay_factor = 0.1  # official LR_FACTOR 0.1
  config.optim.warmup_epochs = 0.0  # linear warm-up from 0 (official: none)
  config.optim.min_lr_ratio = 0.0  # cosine floor as a fraction of lr
  config.optim.grad_clip_norm = 0.0  # > 0: clip by global norm (official: none)
  config.mixed_precision = False  # True: bf16 compute, fp32 params / optimizer state / loss
  config.ema_decay = 0.0  # > 0: keep an EMA of the params; checkpoints export the EMA weights

  config.loss = ml_collections.ConfigDict()
  config.loss.heatmap_factors = (1.0, 1.0)  # official HEATMAPS_LOSS_FACTOR [1.0, 1.0]
  config.loss.push_factor = 1e-3  # official PUSH_LOSS_FACTOR 0.001
  config.loss.pull_factor = 1e-3  # official PULL_LOSS_FACTOR 0.001
  config.loss.ae_type = 'exp'  # official AE_LOSS_TYPE exp

  config.eval = ml_collections.ConfigDict()
  config.eval.enabled = True
  # The split results are reported on (CrowdPose test, COCO val2017): `litepose eval --config`.
  config.eval.split = common.eval_split(a.dataset)
  # Periodic evaluation and best/ choose the model on eval.holdout_images training images held
  # out of training (WORKDIR/holdout.json), not on the reported split; 'split' uses eval.split.
  config.eval.select_on = 'holdout'
  config.eval.holdout_images = 500
  config.eval.num_images = 0  # > 0: only the first N images of the evaluated set
  config.eval.flip = True  # official TEST.FLIP_TEST True

  common.add_run_settings(config)
  common.shrink(config, a)  # synthetic / fake / runlocal, last
  return config


def _quickstart(a):
  """`quickstart[,fake][,runlocal]`: configs/quickstart.py, kept for scripts and docs."""
  if a.synthetic or a.dataset != 'crowdpose':
    raise UserError('config argument quickstart trains on its own data: it does not combine with '
                    'synthetic or dataset=')
  extra = ','.join(k for k in ('fake', 'runlocal') if a[k])
  return config_files.import_sibling(__file__, 'quickstart').get_config(extra or None)
