"""The LitePose super-net: every sub-net of the official search space, weights shared.

The official super-net recipe (experiments/crowd_pose/mobilenet/supermobile.yaml, dist_train.py;
SUPERNET_SPEC.md §3): the largest network (24, [64, 48, 32], 32/64/96/160 x 6/8/10/10 blocks)
trained at 512 px crops with, per step, an input size from {256, 320, 384, 448, 512} and one
uniformly sampled sub-net; Adam 4e-3 constant (the official milestones are never reached), batch
16 per GPU, the normal LitePose loss; started from a trained largest network with channels sorted
by importance. Every step's sub-nets and size are a function of (seed, step), the same on every
host; images, heatmaps (sigma 2) and joint indices are rendered at the drawn size.

Policy (config.supernet.policy): 'official' (one uniformly sampled sub-net per step) is the
default. On the synthetic set, with the same number of sub-net passes (600: 600 official steps
or 150 sandwich steps of four sub-nets, about the same CPU time), the official policy's extracted
and recalibrated sub-nets scored AP 0.061 / 0.039 / 0.098 (largest at 96 px / half widths at
96 px / smallest at 64 px) against 0.004 / 0.001 / 0.001 for 'sandwich' (largest + smallest + 2
random sub-nets per step, gradients summed, in-place distillation from the largest;
docs/BENCHMARKS.md, "Super-net"): on a short budget four times as many optimizer steps matter
more than covering the extremes at every step, and the distillation target is itself untrained
for most of the run. 'sandwich' stays available for long runs, where BigNAS-style training is
known to help.

Arguments (comma separated, after a colon):
  dataset=crowdpose|coco  CrowdPose trainval (default) or COCO train2017
  policy=official|sandwich
  synthetic  the quickstart's easy synthetic data (`python scripts/quickstart.py data`) at input
             sizes 64 / 96 with the quickstart's short recipe: a CPU run of minutes
  fake       in-memory random batches (tests, benchmarks)
  runlocal   tiny batch, 4 steps (smoke test)

Run:
  litepose train --config configs/supernet.py --workdir runs/supernet_crowdpose \
      --config.data.data_dir=/path/to/crowdpose --config.init_from=runs/largest_crowdpose
  litepose extract --checkpoint runs/supernet_crowdpose --arch search-S.json --out runs/S_init
  litepose train --config configs/litepose_s.py --workdir runs/S --config.init_from=runs/S_init

Expected: no super-net AP is published; the official pipeline's sub-nets reach the published AP
only after this step, weight transfer and fine-tuning (CrowdPose test: 49.4 XS, 58.3 S, 59.9 M,
61.9 L). Synthetic set: docs/BENCHMARKS.md, "Super-net".
"""
import ml_collections

from litepose_jax import config_files
from litepose_jax.nas import space as space_lib

common = config_files.import_sibling(__file__, 'common')
quickstart = config_files.import_sibling(__file__, 'quickstart')
litepose_l = config_files.import_sibling(__file__, 'litepose_l')


def get_config(arg=None):
  """The super-net recipe; `arg` as in the module docstring."""
  a = common.parse_arg(arg, policy='official')
  # The normal LitePose recipe (loss, augmentation, optimizer fields, run settings) at 512 px.
  config = litepose_l.get_config(f'dataset={a.dataset}')

  config.supernet = ml_collections.ConfigDict()
  config.supernet.enabled = True
  # SearchSpace fields (litepose_jax/nas/space.py): the official space.
  config.supernet.space = space_lib.space_to_json(space_lib.OFFICIAL)
  config.supernet.shipped_depths = False  # True: the shipped sampler's 4/6/8/8 blocks (a bug)
  config.supernet.policy = a.policy  # 'official' | 'sandwich' (see the module docstring)
  config.supernet.num_random = 2  # sandwich: random sub-nets besides the largest and smallest
  config.supernet.distill = 1.0  # sandwich: weight of the distillation from the largest net
  # init_from a trained largest network (not a super-net checkpoint): sort its channels by
  # importance (official re-organize_weights, with the BN statistics permuted) and keep or
  # re-initialise its head (official: re-initialised).
  config.supernet.sort_channels = True
  config.supernet.fresh_head = False

  config.model.arch = 'supernet'  # informational: the space decides the architecture
  config.data.input_size = 512  # official INPUT_SIZE 512 (COCO: 448), the largest net's
  config.data.input_sizes = (256, 320, 384, 448, 512)  # one per step, official draw
  config.data.batch_size = 16  # official 16 per GPU
  config.num_epochs = 2400  # official END_EPOCH 2400
  config.optim.schedule = 'constant'  # official: lr 4e-3 throughout (milestones never reached)
  # The periodic evaluation scores the largest sub-net with the super-net's mixed statistics;
  # sub-nets are scored with `litepose eval --supernet-arch` (BN recalibrated).
  config.eval.enabled = False

  if a.synthetic:
    use_quickstart_recipe(config)
  if a.fake:
    common.use_fake_data(config)
    config.data.input_sizes = (64, 96)
    config.supernet.space.resolutions = (64, 96)
  if a.runlocal:
    common.runlocal(config)
  return config


def use_quickstart_recipe(config: ml_collections.ConfigDict) -> None:
  """`synthetic`: the quickstart's data and short recipe (configs/quickstart.py) at 64 / 96 px."""
  q = quickstart.get_config()
  config.data.update(q.data.to_dict())
  config.loss.update(q.loss.to_dict())
  config.optim.update(q.optim.to_dict())
  config.supernet.space.resolutions = (64, 96)
  config.data.input_sizes = (64, 96)
  config.data.input_size = 96
  # 600 sub-net passes (forward + backward) for either policy: 600 steps of one sub-net, or 150
  # sandwich steps of four, about the same CPU time.
  passes_per_step = 1 if config.supernet.policy == 'official' else 2 + config.supernet.num_random
  config.total_steps = 600 // passes_per_step
  config.log_every = 20
  config.checkpoint_every = 200
  config.image_summary_every = 0
  config.eval.select_on = 'split'  # no held-out training images: sub-nets are scored on val
