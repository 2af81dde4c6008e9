"""Pieces that every configs/litepose_*.py recipe shares unchanged.

Not a recipe: the recipes (model, data, augmentation, optimizer, schedule, loss, evaluation) are
written out in each config file. Here are the config arguments, the data sets' folders and splits,
the run settings (logging, checkpoints, multi-host) and the shrinks applied last (synthetic data,
fake data, runlocal), so that all four models shrink the same way.
"""
import ml_collections

from litepose_jax import config_files
from litepose_jax.data import pipeline
from litepose_jax.errors import UserError

# dataset: default data_dir, training split, evaluation split. The official experiments train
# CrowdPose on trainval and test on test, COCO on train2017 and test on val2017 (official
# experiments/{crowd_pose,coco}/mobilenet/mobile.yaml; docs/OFFICIAL.md, "Training recipe").
DATASETS = {
    'crowdpose': ('data/crowdpose', 'trainval', 'test'),
    'coco': ('data/coco', 'train', 'val'),
}


def parse_arg(arg, **extra):
  """The arguments of a litepose_*.py config: dataset=..., synthetic, fake, runlocal (+ extra)."""
  a = config_files.parse_arg(arg, dataset='crowdpose', synthetic=False, fake=False,
                             runlocal=False, **extra)
  if a.dataset not in DATASETS:
    raise UserError(f'config argument dataset must be one of {sorted(DATASETS)}, got '
                    f'{a.dataset!r}')
  return a


def data_for(dataset: str) -> ml_collections.ConfigDict:
  """The data section before the recipe: folders and splits of `dataset`, loader settings.

  The loader settings (explicit annotation / image paths, custom joint sets, decoded-image cache,
  tf.data threads) are the pipeline's own defaults (litepose_jax/data/pipeline.py); the recipe
  sets the training values on top.
  """
  data = pipeline.default_data_config()
  data.dataset = dataset
  data.data_dir, data.split, _ = DATASETS[dataset]
  data.source = 'files'  # 'files' (the tf.data pipeline) | 'fake' (in-memory random batches)
  data.synthetic_images = 0  # > 0: generate this many synthetic images into data_dir if missing
  # Read only by the fake-data path (litepose_jax/training/input_pipeline.py), for tests and benchmarks.
  data.fake = ml_collections.ConfigDict({
      'num_images': 256,  # the "epoch" length of the fake stream (sets steps per epoch)
      'people': 4,  # people per fake image (joints drawn uniformly over the S/4 map)
      'nan_at_step': -1,  # >= 0: a NaN in the batch of this step (tests the finite-loss guard)
  })
  return data


def eval_split(dataset: str) -> str:
  """The split a recipe reports on (model selection uses held-out training images)."""
  return DATASETS[dataset][2]


def add_run_settings(config: ml_collections.ConfigDict) -> None:
  """Logging, checkpoint and summary cadence, progress bar, compilation cache, multi-host."""
  config.seed = 0
  # A checkpoint (dir or workdir) whose variables start a fresh run (not a resumed one): an
  # extracted sub-net to fine-tune (`litepose extract`), or, for a super-net, a trained largest
  # network (channels sorted by importance, configs/supernet.py).
  config.init_from = ''
  config.log_every = 50
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  config.eval_every = 0  # steps; 0 = only at the end (when eval.enabled)
  config.image_summary_every = 1000  # steps; 0 = never
  config.progress = True
  config.compilation_cache_dir = ''  # '' = $LITEPOSE_JAX_CACHE or ~/.cache/litepose_jax/jax_cache
  # TPU pods / SLURM: auto=True (jax.distributed.initialize() finds everything); GPU clusters
  # without a scheduler, or CPU tests: the explicit coordinator fields.
  config.distributed = ml_collections.ConfigDict({
      'auto': False, 'coordinator_address': '', 'num_processes': 0, 'process_id': -1,
      'cpu_collectives': 'gloo'})


def use_synthetic_data(config: ml_collections.ConfigDict) -> None:
  """`synthetic`: 240 generated 128 px images in workdirs/synthetic_data, a 30-epoch run."""
  config.data.data_dir = 'workdirs/synthetic_data'
  config.data.split = 'train'
  config.data.synthetic_images = 240
  config.data.input_size = 128
  config.data.batch_size = 8
  config.eval.split = 'val'
  config.eval.select_on = 'split'  # synthetic val is fresh data, not a reported split
  config.eval.num_images = 16
  config.num_epochs = 30
  config.optim.milestones = (20, 27)
  config.log_every = 10
  config.checkpoint_every = 200
  config.eval_every = 200
  config.image_summary_every = 200


def use_fake_data(config: ml_collections.ConfigDict) -> None:
  """`fake`: in-memory random 64 px batches (config.data.fake), no evaluation."""
  config.data.source = 'fake'
  config.data.input_size = 64
  config.eval.enabled = False


def runlocal(config: ml_collections.ConfigDict) -> None:
  """`runlocal`: batch 2, 4 steps, a log line per step (a smoke test of the whole loop)."""
  config.data.batch_size = 2
  config.total_steps = 4
  config.log_every = 1
  config.checkpoint_every = 2
  config.eval_every = 0
  config.eval.num_images = 4
  config.image_summary_every = 0


def shrink(config: ml_collections.ConfigDict, a: ml_collections.ConfigDict) -> None:
  """Applies the synthetic / fake / runlocal arguments in `a`, in that order."""
  if a.get('synthetic'):
    use_synthetic_data(config)
  if a.get('fake'):
    use_fake_data(config)
  if a.get('runlocal'):
    runlocal(config)
