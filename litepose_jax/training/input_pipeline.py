"""The trainer's one data dependency: `make_data(config, process_index, process_count, start_step)`.

Returns (iterator of this host's batches as numpy dicts, info). Two sources:
  'files': the tf.data pipeline of litepose_jax.data (real or synthetic CrowdPose / COCO data);
           with eval.select_on 'holdout', a seeded choice of eval.holdout_images training images
           is kept out of the stream for periodic evaluation and best/ (info.holdout);
  'fake':  deterministic random batches in memory (tests, benchmarks), set up by the
           config.data.fake sub-dict (read nowhere else): the global batch of step t is a function
           of (seed, t) only and host p takes rows [p*B/P, (p+1)*B/P), so any process layout sees
           the same global batch.
"""
from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import os

import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.data import sizes
from litepose_jax.errors import UserError

TRAIN_KEYS = ('image', 'heatmaps4', 'heatmaps2', 'masks4', 'masks2', 'joints')


@dataclasses.dataclass
class DataTally:
  """What this process's batches carried that the loss does not see, counted as they are used."""
  zero_weighted: int = 0  # samples replaced by zeros (undecodable image, size mismatch)
  dropped_people: int = 0  # people beyond data.max_people in a training sample

  def add(self, batch: dict) -> None:
    self.zero_weighted += int(np.sum(np.asarray(batch['valid']) < 0.5))
    self.dropped_people += int(np.sum(batch['dropped_people']))


@dataclasses.dataclass
class DataInfo:
  num_images: int  # training images (one epoch)
  num_joints: int
  joint_set: str
  source: object = None  # the KeypointDataset for 'files' (without the held-out images)
  tally: DataTally = dataclasses.field(default_factory=DataTally)
  holdout: object = None  # KeypointDataset of the held-out training images, or None

  def summary(self, max_people: int) -> str:
    """One line: images skipped when the json was read or decoded, and this run's tally."""
    if self.source is None:
      return 'in-memory batches, nothing skipped'
    return (f'{self.source.bad.summary()}; {self.tally.zero_weighted} sample(s) '
            f'zero-weighted and {self.tally.dropped_people} people beyond data.max_people='
            f'{max_people} dropped in the batches of this run')


def _fake_batch(cfg, step: int, num_joints: int) -> dict:
  """The global batch of `step`: random images [B,S,S,3], targets and joints of fake.people, at
  the step's input size (data.input_sizes, as the file pipeline draws it)."""
  b, s = cfg.batch_size, sizes.step_input_size(cfg.seed, step, sizes.input_sizes(cfg))
  r4, r2 = s // 4, s // 2
  rng = np.random.default_rng([cfg.seed, 104729, step])
  people = cfg.fake.people
  joints = np.zeros((b, cfg.max_people, num_joints, 2), np.int32)
  k = np.arange(num_joints)
  for p in range(min(people, joints.shape[1])):
    y = rng.integers(0, r4, (b, num_joints))
    x = rng.integers(0, r4, (b, num_joints))
    joints[:, p, :, 0] = k * r4 * r4 + y * r4 + x
    joints[:, p, :, 1] = rng.random((b, num_joints)) < 0.8
  batch = {
      'image': rng.standard_normal((b, s, s, 3), np.float32),
      'heatmaps4': rng.random((b, r4, r4, num_joints), np.float32) ** 8,
      'heatmaps2': rng.random((b, r2, r2, num_joints), np.float32) ** 8,
      'masks4': np.ones((b, r4, r4), np.float32),
      'masks2': np.ones((b, r2, r2), np.float32),
      'joints': joints,
  }
  if step == cfg.fake.nan_at_step:
    batch['image'][0, 0, 0, 0] = np.nan
  return batch


def _fake_stream(cfg, process_index, process_count, start_step, num_joints) -> Iterator[dict]:
  local = cfg.batch_size // process_count
  step = start_step
  while True:
    full = _fake_batch(cfg, step, num_joints)
    yield {k: v[process_index * local:(process_index + 1) * local] for k, v in full.items()}
    step += 1


def _ensure_synthetic(cfg, process_count: int) -> None:
  """Generates the synthetic data set into data_dir once (single-process runs only)."""
  if cfg.synthetic_images <= 0:
    return
  # Imported here: the generator (and its rendering code) is needed only when data are missing.
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from litepose_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  ann, _ = datasets.expected_paths(cfg.dataset, cfg.data_dir, cfg.split)
  if os.path.isfile(ann):
    return
  if process_count > 1:
    raise FileNotFoundError(f'{ann} is missing: generate the synthetic data first (`litepose data '
                            'synth`) rather than from several training processes at once')
  synthetic.generate(cfg.data_dir, cfg.synthetic_images, cfg.seed, size=max(cfg.input_size, 128),
                     joints='coco' if cfg.dataset == 'coco' else 'crowdpose')


def select_on(config) -> str:
  """config.eval.select_on: 'holdout' (held-out training images) or 'split' (eval.split)."""
  value = config.eval.select_on
  if value not in ('holdout', 'split'):
    raise UserError(f"eval.select_on must be 'holdout' or 'split', got {value!r}")
  return value


def holds_out(config) -> bool:
  """Whether this run keeps eval.holdout_images of the training split for model selection.

  Not tied to eval.enabled: switching evaluation on or off when resuming must not change the
  training set (and so the stream)."""
  return select_on(config) == 'holdout'


def holdout_indices(num_records: int, num_held: int, seed: int) -> np.ndarray:
  """Sorted indices of the held-out records: a seeded choice, the same on every host and run."""
  if not 0 < num_held < num_records:
    raise UserError(f'eval.holdout_images must be in 1..{num_records - 1} (the training split has '
                    f'{num_records} usable images), got {num_held}')
  rng = np.random.default_rng([seed, 4001])  # 4001: apart from the sample streams' seeds
  return np.sort(rng.choice(num_records, size=num_held, replace=False))


def _split_off_holdout(config, source):
  """(training source, held-out source or None): the held-out images never enter the stream."""
  if not holds_out(config):
    return source, None
  held = holdout_indices(len(source), config.eval.holdout_images, config.data.seed)
  keep = np.ones(len(source), bool)
  keep[held] = False
  # The stream indexes the remaining records 0..N-1: still a pure function of (seed, N, g).
  return source.subset(np.flatnonzero(keep)), source.subset(held)


def make_data(config, process_index: int = 0, process_count: int = 1, start_step: int = 0
              ) -> tuple[Iterator[dict], DataInfo]:
  """(endless iterator of this host's batches {TRAIN_KEYS: numpy}, DataInfo) from `start_step`."""
  cfg = config.data
  if cfg.batch_size % process_count:
    raise UserError(f'data.batch_size {cfg.batch_size} is not divisible by the {process_count} '
                    'processes')
  if cfg.source == 'fake':
    js = joints_lib.get_joint_set(cfg.dataset) if cfg.dataset != 'custom' else None
    num_joints = js.num_joints if js else 14
    info = DataInfo(cfg.fake.num_images, num_joints, cfg.dataset)
    return _fake_stream(cfg, process_index, process_count, start_step, num_joints), info
  if cfg.source != 'files':
    raise UserError(f"data.source must be 'files' or 'fake', got {cfg.source!r}")
  # Imported here: fake-data runs (GPU benchmarks, tests) skip OpenCV and the data readers.
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  _ensure_synthetic(cfg, process_count)
  source, holdout = _split_off_holdout(config, datasets.open_from_config(cfg, is_train=True))
  ds = pipeline.make_train_dataset(cfg, process_index=process_index, process_count=process_count,
                                   start_step=start_step, source=source)
  info = DataInfo(len(source), source.joint_set.num_joints, cfg.dataset, source, holdout=holdout)

  def it():
    for batch in ds.as_numpy_iterator():
      info.tally.add(batch)
      yield {k: batch[k] for k in TRAIN_KEYS}
  return it(), info
