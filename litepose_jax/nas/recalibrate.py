"""BatchNorm recalibration of one sub-net inside the super-net (SUPERNET_SPEC.md §9 point 10).

The super-net's running statistics are an exponential mix over every sub-net and resolution it
was trained on (§2.3), so they match no particular sub-net. Before a sub-net is evaluated (inside
the super-net or extracted), its statistics are recomputed: reset, then the cumulative average
over a fixed, seeded calibration set of the per-batch statistics in training mode (mean of the
batch means, mean of the batch variances, as OFA), no gradients. The official calibrate_test.py
(§5.3) instead keeps the super-net's statistics and runs the momentum-0.1 EMA over an unseeded
pass, so the last ~22 batches dominate and the same sub-net scores differently on every run.

How the per-batch statistics leave flax without touching layers.py: the training-mode forward
starts from zero running statistics, so each BatchNorm writes new = momentum * 0 + (1 - momentum)
* batch into its active channels, and batch = new / (1 - momentum) is that layer's own batch
statistic (to one float32 rounding). Which channels are active is what each BatchNorm itself was
given: a method interceptor reads its `channel_mask` argument (layers.conv_bn), so no mapping from
`subnet_masks` to variable paths is repeated here. The step is jitted as a function of
(variables, masks, images): one compilation per input resolution whatever the sub-net.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
import copy
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from litepose_jax import models
from litepose_jax.data import datasets
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.nas import supernet as supernet_lib


def _bn_recorder(record: dict):
  """A flax interceptor storing, per BatchNorm path, (momentum, active channels [C] bool)."""
  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, nn.BatchNorm) and context.method_name == '__call__':
      key = '/'.join(module.path)
      if key in record:
        # A second call would fold two batches into one EMA step: the division below would lie.
        raise RuntimeError(f'BatchNorm {key} runs twice in one forward: cannot recalibrate it')
      mask = kwargs.get('channel_mask')
      c = args[0].shape[-1]
      record[key] = (module.momentum, jnp.ones(c, bool) if mask is None else mask > 0)
    return next_fun(*args, **kwargs)
  return intercept


def _flat_stats(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, dict]:
  """{'a/b/bn': {'mean': [C], 'var': [C]}} of a nested batch_stats tree."""
  out = {}
  for name, node in tree.items():
    if isinstance(node, Mapping) and 'mean' in node and 'var' in node:
      out['/'.join(prefix + (name,))] = {'mean': node['mean'], 'var': node['var']}
    elif isinstance(node, Mapping):
      out.update(_flat_stats(node, prefix + (name,)))
  return out


def module_batch_stats(module: nn.Module, params: Mapping[str, Any],
                       batch_stats: Mapping[str, Any], *args: Any) -> tuple[Any, dict]:
  """(output, {BatchNorm path: (batch mean [C], biased batch var [C], active [C] bool)}) of a
  training-mode `module.apply` on `args` (traceable); paths relative to `module`."""
  # From zero running statistics, one EMA step leaves (1 - momentum) x the batch statistics.
  zeros = jax.tree.map(jnp.zeros_like, batch_stats)
  record: dict = {}
  with nn.intercept_methods(_bn_recorder(record)):
    out, upd = module.apply({'params': params, 'batch_stats': zeros}, *args,
                            mutable=['batch_stats'])
  new = _flat_stats(upd['batch_stats'])
  stats = {}
  for key, (momentum, active) in record.items():
    keep = 1.0 - momentum
    stats[key] = (new[key]['mean'] / keep, new[key]['var'] / keep, active)
  return out, stats


@functools.lru_cache(maxsize=8)
def _stats_fn(supernet: supernet_lib.SuperLitePose):
  """Jitted (variables, masks, images [B, S, S, 3]) -> {path: (batch mean [C], batch var [C],
  active [C] bool)} of every BatchNorm of `supernet` running the sub-net of `masks`."""
  def fn(variables, masks, images):
    return module_batch_stats(supernet, variables['params'], variables['batch_stats'], images,
                              masks, True)[1]
  return jax.jit(fn)


def batch_stats_fn(supernet: supernet_lib.SuperLitePose):
  """The jitted per-batch statistics of `supernet` (shared, one compile per input size):
  (variables, masks, normalised images [B, S, S, 3]) -> {BatchNorm path: (batch mean [C],
  biased batch var [C], active [C] bool)}; callable inside another jit (search.fitness)."""
  return _stats_fn(supernet)


@functools.partial(jax.jit, donate_argnums=0)
def _accumulate(total, stats):
  """Running sums of the batch means and variances (the active masks pass through)."""
  return {k: (total[k][0] + s[0], total[k][1] + s[1], s[2]) for k, s in stats.items()}


def recalibrate(supernet: supernet_lib.SuperLitePose, variables: Mapping[str, Any],
                arch: models.ArchLike, batches: Iterable[Any], *, progress: bool = False) -> dict:
  """Super-net variables with sub-net `arch`'s running statistics recomputed on `batches`.

  batches: normalised float32 images [B, S, S, 3], all of one size S (uint8 RGB is normalised
  first). Every BatchNorm channel the sub-net uses gets the mean over batches of its batch mean
  and of its (biased) batch variance, from a training-mode forward without gradients; every other
  channel (inactive widths, blocks beyond the sub-net's depth) keeps the super-net's value, so
  the result is a super-net tree in which the other sub-nets are untouched.
  Returns {'params', 'batch_stats'} as nested dicts of numpy arrays (copies; the input is not
  modified). Compiles once per S, whatever `arch`.
  """
  if not isinstance(variables, Mapping) or 'batch_stats' not in variables:
    raise UserError('variables must be the super-net\'s {"params", "batch_stats"}')
  masks = supernet_lib.subnet_masks(supernet, arch)
  fn = _stats_fn(supernet)
  on_device = jax.device_put({'params': variables['params'],
                              'batch_stats': variables['batch_stats']})
  masks_d = jax.device_put(masks)
  total, count, shape = None, 0, None
  total_hint = len(batches) if hasattr(batches, '__len__') else None
  for images in tqdm.tqdm(batches, desc='BN recalibration', unit='batch', total=total_hint,
                          disable=not progress):
    images = normalize.model_input(np.asarray(images))
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
      raise UserError(f'calibration batch {count}: expected images [B, S, S, 3], got '
                      f'{images.shape}')
    if shape is not None and images.shape[1:] != shape:
      raise UserError(f'calibration batch {count}: size {images.shape[1:3]} differs from the '
                      f'first batch\'s {shape[:2]}: recalibrate at one input size')
    shape = images.shape[1:]
    stats = fn(on_device, masks_d, images.astype(np.float32))
    total = stats if total is None else _accumulate(total, stats)
    count += 1
  if not count:
    raise UserError('no calibration batches: BatchNorm recalibration needs at least one')
  batch_stats = _merge_stats(on_device['batch_stats'], total, np.float32(count))
  return jax.tree.map(np.array, _plain({'params': variables['params'],
                                        'batch_stats': batch_stats}))


def merge_stats(batch_stats: Mapping[str, Any], total: Mapping[str, tuple], count) -> dict:
  """A copy of the nested batch_stats tree with total's {path: (mean sum, var sum, active)}
  averaged over `count` batches in the active channels; the others keep their values
  (traceable: search.fitness jits it)."""
  out = _plain(batch_stats)  # new dicts all the way down: the input tree is not touched
  for key, (mean_sum, var_sum, active) in total.items():
    node = out
    for name in key.split('/'):
      node = node[name]
    node['mean'] = jnp.where(active, mean_sum / count, node['mean'])
    node['var'] = jnp.where(active, var_sum / count, node['var'])
  return out


_merge_stats = jax.jit(merge_stats)


def _plain(tree: Any) -> Any:
  """Nested Mappings (FrozenDict included) -> plain dicts."""
  if isinstance(tree, Mapping):
    return {k: _plain(v) for k, v in tree.items()}
  return tree


def calibration_batches(data_cfg: Any, size: int, num_images: int = 2000, batch_size: int = 16,
                        seed: int = 0, *, image_ids: Sequence[int] | None = None,
                        raw: bool = False) -> Iterator[np.ndarray]:
  """Normalised float32 image batches [batch_size, size, size, 3] for `recalibrate`.

  A fixed subset of min(num_images, N) images of the training split that `data_cfg` (a training
  config's config.data, see data.pipeline.default_data_config) describes, chosen by `seed`, shown
  once in ceil(min(num_images, N) / batch_size) batches (the last one completed from the start of
  the next pass) through the training pipeline and its augmentation at input size `size`; the
  augmentation of every position is a pure function of (seed, position), so the same arguments
  give the same images. The data set is opened here (errors now), the images are read lazily.
  image_ids: choose among these images of the split only (e.g. a search's calibration split;
  UserError naming an id the split lacks), N = len(image_ids). raw: uint8 RGB batches as the
  pipeline makes them (4x smaller, to be normalised on the device) instead of float32.
  """
  # Imported here: the training pipeline brings OpenCV and TensorFlow, which nas does not need
  # otherwise (and tests of the super-net alone should not pay for).
  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  if num_images <= 0:
    raise UserError(f'calibration images (--calib-images) must be positive, got {num_images}')
  if batch_size <= 0:
    raise UserError(f'calibration batch size (--calib-batch) must be positive, got {batch_size}')
  if seed < 0:
    raise UserError(f'calibration seed (--calib-seed) must be non-negative, got {seed}')
  cfg = (copy.deepcopy(data_cfg) if isinstance(data_cfg, ml_collections.ConfigDict)
         else ml_collections.ConfigDict(dict(data_cfg)))
  if cfg.get('source', 'files') != 'files':
    raise UserError(f'config.data.source is {cfg.source!r}: BatchNorm calibration reads the '
                    "training images ('files')")
  with cfg.unlocked():
    cfg.input_size, cfg.input_sizes = int(size), ()
    cfg.batch_size, cfg.seed, cfg.shuffle = int(batch_size), int(seed), False
    if raw:
      cfg.image_dtype = 'uint8'
  source = datasets.open_from_config(cfg)
  if image_ids is not None:
    source = _only_ids(source, image_ids)
  n = min(int(num_images), len(source))
  chosen = np.sort(np.random.default_rng([int(seed), 1511]).choice(len(source), n, replace=False))
  subset = source.subset(chosen)
  steps = math.ceil(n / batch_size)
  dataset = pipeline.make_train_dataset(cfg, source=subset)

  def generate():
    for batch in dataset.take(steps).as_numpy_iterator():
      yield batch['image'] if raw else normalize.model_input(batch['image'])
  return _Batches(generate(), steps, n)


def _only_ids(source: datasets.KeypointDataset, image_ids: Sequence[int]
              ) -> datasets.KeypointDataset:
  """The records of `source` whose image ids are in image_ids (in the split's order)."""
  wanted = {int(i) for i in image_ids}
  if not wanted:
    raise UserError('calibration image ids: the list is empty')
  index = [i for i, r in enumerate(source.records) if r.image_id in wanted]
  if len(index) != len(wanted):
    missing = sorted(wanted - {source.records[i].image_id for i in index})
    raise UserError(f'calibration image ids: {len(missing)} not among the usable images of '
                    f'{source.ann_file}, e.g. {missing[:5]}')
  return source.subset(index)


class _Batches:
  """An iterator of `length` batches that knows its length and the number of distinct images."""

  def __init__(self, it: Iterator[np.ndarray], length: int, num_images: int):
    self._it, self._len, self.num_images = it, length, num_images

  def __iter__(self):
    return self._it

  def __next__(self):
    return next(self._it)

  def __len__(self) -> int:
    return self._len


def add_calibration_arguments(parser, when: str) -> None:
  """--calib-images / --calib-batch / --calib-seed of a command that recalibrates `when`."""
  parser.add_argument('--calib-images', type=int, default=2000,
                      help=f'{when}: calibration images (seeded subset of the training split)')
  parser.add_argument('--calib-batch', type=int, default=16,
                      help=f'{when}: calibration batch size')
  parser.add_argument('--calib-seed', type=int, default=0,
                      help=f'{when}: seed of the calibration subset and its augmentation')


def recalibrated_subnet(net: supernet_lib.SuperLitePose, variables: Mapping[str, Any],
                        arch: models.ArchLike, data_cfg: Any, *, size: int | None = None,
                        num_images: int = 2000, batch_size: int = 16,
                        seed: int = 0) -> tuple[dict, dict]:
  """(standalone variables of sub-net `arch`, calibration record): its BatchNorm statistics
  recalibrated on `data_cfg`'s training split at `size` (default: the arch's img_size), then
  extracted (`litepose eval --supernet-arch`, `litepose extract --config`)."""
  from litepose_jax.nas import extract  # pylint: disable=g-import-not-at-top
  spec = models.resolve_arch(arch)
  size = int(size or spec.img_size)
  batches = calibration_batches(data_cfg, size, num_images, batch_size, seed)
  variables = recalibrate(net, variables, spec, batches, progress=True)
  record = {'images': batches.num_images, 'batches': len(batches),
            'requested_images': num_images, 'batch_size': batch_size, 'seed': seed,
            'split': data_cfg.get('split', ''), 'size': size}
  return extract.extract_subnet(variables, spec, net.num_joints, fusion=net.fusion), record
