"""Training configs: the official LitePose recipe as an ml_collections ConfigDict, plus loading
`path.py[:arg]` config files (big_vision style `get_config(arg)`) and `--config.KEY=VALUE` overrides.
"""
from __future__ import annotations

import ast
from typing import Any, Sequence

import ml_collections

from litepose_jax import config_files
from litepose_jax.data import pipeline as data_pipeline

# Input sizes of the released models (spec 4: XS 256, S 448, M 448, L 512).
INPUT_SIZES = {'XS': 256, 'S': 448, 'M': 448, 'L': 512}
DATASET_DEFAULTS = {
    # dataset: (train split, eval split)
    'crowdpose': ('trainval', 'test'),
    'coco': ('train', 'val'),
}


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses 'key=value,flag,...' against typed defaults (a bare key sets a bool to True)."""
  out = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, eq, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(f'unknown config argument {key!r}; known: {sorted(defaults)}')
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f'config argument {key!r} needs a value ({key}=...)')
      out[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(f'config argument {key}={value!r} must be true or false')
      out[key] = value.lower() in ('true', '1')
    else:
      try:
        out[key] = type(default)(value)
      except ValueError as e:
        raise ValueError(f'config argument {key}={value!r}: expected {type(default).__name__}') from e
  return ml_collections.ConfigDict(out)


def base_config(model: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """The official LitePose normal-training recipe (spec 5.1) for preset `model`.

  arg: 'dataset=crowdpose|coco', 'synthetic' (small generated data set), 'quickstart' (the
  ~12 CPU-minute schedule of scripts/demo.sh on the easy data of scripts/quickstart.py), 'fake'
  (in-memory random batches, for tests and benchmarks), 'runlocal' (tiny batch and run).
  """
  a = parse_arg(arg, dataset='crowdpose', synthetic=False, quickstart=False, fake=False,
                runlocal=False)
  if a.dataset not in DATASET_DEFAULTS:
    raise ValueError(f'dataset must be one of {sorted(DATASET_DEFAULTS)}, got {a.dataset!r}')
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict({
      'arch': model,  # preset name or an official-schema JSON path
      'kernel_size': 0,  # 0: the architecture's own kernels; 3/5/7/9 overrides every block
      'width_mult': 1.0,
      'fusion': True,
      'depthwise_impl': 'auto',
      'conv_impl': 'auto',  # dense / transposed convs: 'auto' | 'lax' | 'matmul' (CPU)
  })
  train_split, eval_split = DATASET_DEFAULTS[a.dataset]
  data = data_pipeline.default_data_config()
  data.dataset = a.dataset
  data.split = train_split
  data.input_size = INPUT_SIZES.get(model, 448)
  data.batch_size = 16  # official: 16 per GPU; the global batch is what is set here
  data.source = 'files'  # 'files' (the tf.data pipeline) | 'fake' (in-memory random batches)
  data.fake_num_images = 256
  data.fake_people = 4
  data.fake_nan_step = -1  # tests: put a NaN into the batch of this step
  data.synthetic_images = 0  # > 0: generate this many synthetic images into data_dir if missing
  c.data = data
  c.num_epochs = 500
  c.total_steps = 0  # > 0 overrides num_epochs
  c.optim = ml_collections.ConfigDict({
      'name': 'adam',  # 'adam' | 'adamw' (weight_decay used only by adamw)
      'lr': 4e-3, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-8, 'weight_decay': 0.0,
      'schedule': 'multistep',  # 'multistep' | 'cosine' | 'constant'
      'milestones': (350, 480),  # epochs (official MultiStepLR stepped per epoch)
      'decay_factor': 0.1,
      'warmup_epochs': 0.0,  # linear warm-up from 0 (off in the official recipe)
      'min_lr_ratio': 0.0,  # cosine floor as a fraction of lr
      'grad_clip_norm': 0.0,  # > 0: clip by global norm
  })
  c.loss = ml_collections.ConfigDict({
      'heatmap_factors': (1.0, 1.0), 'push_factor': 1e-3, 'pull_factor': 1e-3, 'ae_type': 'exp'})
  c.mixed_precision = False  # True: bf16 compute, fp32 params / optimizer state / loss
  c.ema_decay = 0.0  # > 0: keep an EMA of the params; checkpoints export the EMA weights
  c.seed = 0
  c.log_every = 50
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.eval_every = 0  # steps; 0 = only at the end (when eval.enabled)
  c.eval = ml_collections.ConfigDict({
      'enabled': True, 'split': eval_split, 'num_images': 0,  # 0 = whole split
      'flip': False, 'batch_size': 8})
  c.image_summary_every = 1000  # steps; 0 = never
  c.progress = True
  c.compilation_cache_dir = ''  # '' = $LITEPOSE_JAX_CACHE or ~/.cache/litepose_jax/jax_cache
  # Multi-host: TPU pods / SLURM: auto=True (jax.distributed.initialize() finds everything);
  # GPU clusters without a scheduler, or CPU tests: the explicit coordinator fields.
  c.distributed = ml_collections.ConfigDict({
      'auto': False, 'coordinator_address': '', 'num_processes': 0, 'process_id': -1,
      'cpu_collectives': 'gloo'})
  if a.dataset == 'coco':
    c.data.data_dir = 'data/coco'
  else:
    c.data.data_dir = 'data/crowdpose'
  if a.synthetic:
    c.data.data_dir = 'workdirs/synthetic_data'
    c.data.split = 'train'
    c.data.synthetic_images = 240
    c.data.input_size = 128
    c.data.batch_size = 8
    c.eval.split = 'val'
    c.eval.num_images = 16
    c.num_epochs = 30
    c.optim.milestones = (20, 27)
    c.log_every = 10
    c.checkpoint_every = 200
    c.eval_every = 200
    c.image_summary_every = 200
  if a.quickstart:
    # scripts/demo.sh: 5800 + 200 square 128 px images with 1-3 large people facing the camera,
    # written by `python scripts/quickstart.py data` (not generated here: its knobs differ).
    # Tuned on the 2-core CPU for ~12 minutes of training (docs/BENCHMARKS.md, Quickstart):
    # 64 px input (~75 img/s; 96 px learned less per minute), batch 32 with lr 8e-3 (linear
    # scaling of the official 4e-3 at 16; +15% AP at step 500 over 4e-3).
    c.data.data_dir = 'workdirs/quickstart/data'
    c.data.split = 'train'
    c.data.input_size = 64
    c.data.batch_size = 32
    # Mild augmentation: with the default rotation / scale / shift the val AP after 600 steps was
    # 20x lower (5e-4 vs 0.011 at step 500).
    c.data.max_rotation = 0.0
    c.data.min_scale, c.data.max_scale = 0.9, 1.1
    c.data.max_translate = 10.0
    c.total_steps = 1600
    c.optim.lr = 8e-3
    # A short run: warm-up then cosine to 0 instead of the 500-epoch step schedule.
    c.optim.schedule = 'cosine'
    c.optim.warmup_epochs = 0.5
    # 'max' push instead of the official 'exp': tags start near zero, and exp(-d^2)'s gradient
    # -2d exp(-d^2) vanishes there; in 1600 steps the tags of different people stayed 0.03 apart
    # (grouping merged people; val AP 0.32). clamp(1 - |d|, 0) pushes at any distance below 1:
    # tags ~1 apart, val AP 0.59. Ten times the official push / pull factors: 0.60 / 0.58 over two
    # seeds against 0.59 / 0.53 (docs/BENCHMARKS.md, Quickstart).
    c.loss.ae_type = 'max'
    c.loss.push_factor = c.loss.pull_factor = 1e-2
    c.log_every = 20
    c.checkpoint_every = 400
    c.eval_every = 400
    c.eval.split = 'val'
    c.eval.num_images = 48  # the learning curve; the demo scores the whole val split after
    c.image_summary_every = 0
  if a.fake:
    c.data.source = 'fake'
    c.data.input_size = 64
    c.eval.enabled = False
  if a.runlocal:
    c.data.batch_size = 2
    c.total_steps = 4
    c.log_every = 1
    c.checkpoint_every = 2
    c.eval_every = 0
    c.eval.num_images = 4
    c.image_summary_every = 0
  return c


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Runs get_config(arg) of the config file 'path.py[:arg]'."""
  cfg = config_files.call_file_function(spec, 'get_config', 'config')
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise ValueError(f'{spec}: get_config() must return an ml_collections.ConfigDict')
  return cfg


def _coerce(value: str, current: Any, key: str) -> Any:
  if isinstance(current, bool):
    if value.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(f'--config.{key}={value!r}: expected true or false')
    return value.lower() in ('true', '1')
  if isinstance(current, str):
    return value
  try:
    parsed = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    raise ValueError(f'--config.{key}={value!r}: not a valid {type(current).__name__}') from None
  if isinstance(current, float) and isinstance(parsed, int):
    parsed = float(parsed)
  if isinstance(current, (tuple, list)) and isinstance(parsed, (tuple, list, int, float)):
    parsed = tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)
  if current is not None and not isinstance(parsed, type(current)):
    raise ValueError(f'--config.{key}={value!r}: expected {type(current).__name__}, got '
                     f'{type(parsed).__name__}')
  return parsed


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]
                    ) -> ml_collections.ConfigDict:
  """Applies ['model.kernel_size=5', ...] (keys must exist; values keep their type)."""
  for item in overrides:
    key, eq, value = item.partition('=')
    if not eq:
      raise ValueError(f'config override {item!r} must be KEY=VALUE')
    *parents, leaf = key.split('.')
    node = cfg
    for i, p in enumerate(parents):
      if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
        raise ValueError(f'unknown config field {".".join(parents[:i + 1])!r} in --config.{key}')
      node = node[p]
    if leaf not in node:
      raise ValueError(f'unknown config field {key!r}; fields here: {sorted(node.keys())}')
    if isinstance(node[leaf], ml_collections.ConfigDict):
      raise ValueError(f'--config.{key} is a group; set one of its fields: {sorted(node[leaf].keys())}')
    node[leaf] = _coerce(value, node[leaf], key)
  return cfg
