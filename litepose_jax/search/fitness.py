"""Fitness of a sub-net: its AP inside the super-net after BatchNorm recalibration.

Per candidate (SUPERNET_SPEC.md §5.3, with §9 point 10's recalibration): reset the sub-net's
BatchNorm statistics to the cumulative average of its batch statistics over the calibration split
(fixed, seeded augmentation: the same images for every candidate), then predict the search split
through the masked super-net (flip test on, grouping at input resolution, as the official
valid.py) and score it with the official evaluator -> AP@[.5:.95] as a fraction.

What the official flow pays per candidate and this one pays once per resolution: the calibration
batches (read, augmented and kept as uint8, normalised on the device) and the search images
fitted into the candidate's square input (Predictor's fixed-input protocol: one input shape per
resolution). There is no per-candidate copy of the super-net and no data loader: the candidate is
a set of channel masks passed as arrays to three jitted programs (calibration step, statistics
merge, flip-fused maps), so every sub-net at a resolution runs the same compiled programs;
`compiles` counts them. With `sliced=True` the sub-net runs at its own widths instead, through
block programs that are all compiled with the first candidate of a resolution (search/sliced.py):
less work per candidate, more to compile once. Everything of one candidate runs on one device (`score(arch, device)`),
which is what lets search.parallel spread candidates over devices and hosts with results equal to
one device's.
"""
from __future__ import annotations

import collections
from collections.abc import Mapping
import copy
import dataclasses
import threading
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from litepose_jax import models
from litepose_jax.data import datasets
from litepose_jax.data import image_files
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.evaluation import split as split_lib
from litepose_jax.inference import fusion
from litepose_jax.inference import predictor as predictor_lib
from litepose_jax.inference import transforms
from litepose_jax.nas import recalibrate as recalibrate_lib
from litepose_jax.nas import supernet as supernet_lib
from litepose_jax.search import sliced as sliced_lib
from litepose_jax.search import splits as splits_lib

# The evaluator swaps sys.stdout for its printout (contextlib.redirect_stdout, process-wide):
# two threads scoring at once could leave stdout redirected, so one evaluation at a time.
_EVALUATOR_LOCK = threading.Lock()


def _plain_numpy(tree: Any) -> Any:
  """Nested Mappings of arrays (FrozenDict, jax arrays included) -> plain dicts of numpy."""
  if isinstance(tree, Mapping):
    return {k: _plain_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


@dataclasses.dataclass(frozen=True)
class _Candidate:
  """A sub-net on its device: input side, super-net params, its (recalibrated) batch_stats,
  channel masks, and its sliced plan (None: run through the masked super-net)."""
  size: int
  params: Any
  batch_stats: Any
  masks: Any
  plan: Any
  device: Any


class Fitness:
  """Callable: sub-net (official-schema dict) -> AP@[.5:.95] (fraction) on the search split.

  supernet / variables: the trained super-net (nas.load_supernet); data_cfg: the training
  config's config.data that `splits` was carved from; calib_batch: calibration batch size (the
  official 16); eval_batch: search images per network call (x2 with flip); seed: of the
  calibration augmentation. sliced: run each sub-net at its own widths through per-block
  programs (search/sliced.py: ~2x fewer multiply-adds, ~190 programs to compile per resolution
  instead of 3) instead of the masked super-net. `compiles`: programs compiled so far
  (constant after the first candidate at each resolution and device).
  """

  def __init__(self, supernet: supernet_lib.SuperLitePose, variables: Mapping[str, Any],
               data_cfg: Any, splits: splits_lib.SearchSplits, *, calib_batch: int = 16,
               eval_batch: int = 8, flip: bool = True, seed: int = 0, progress: bool = False,
               sliced: bool = False):
    for name, value in (('calib_batch', calib_batch), ('eval_batch', eval_batch)):
      if int(value) <= 0:
        raise UserError(f'{name} must be positive, got {value}')
    if int(seed) < 0:
      raise UserError(f'seed (of the calibration augmentation) must be non-negative, got {seed}')
    if not isinstance(variables, Mapping) or 'batch_stats' not in variables:
      raise UserError('variables must be the super-net\'s {"params", "batch_stats"}')
    self.supernet, self.splits = supernet, splits
    self.calib_batch, self.eval_batch = int(calib_batch), int(eval_batch)
    self.flip, self.seed, self.progress = bool(flip), int(seed), bool(progress)
    self._cfg = (copy.deepcopy(data_cfg) if isinstance(data_cfg, ml_collections.ConfigDict)
                 else ml_collections.ConfigDict(dict(data_cfg)))
    source = datasets.open_from_config(self._cfg, is_train=True)
    if source.name != splits.dataset:
      raise UserError(f'config.data.dataset is {source.name!r} but the splits ({splits.path}) '
                      f'were carved from {splits.dataset!r}')
    by_id = {r.image_id: r for r in source.records}
    missing = [i for i in splits.search_ids if i not in by_id]
    if missing:
      raise UserError(f'{len(missing)} search image ids of {splits.path} are not usable images '
                      f'of {source.ann_file} (e.g. {missing[:5]}): the splits come from other data')
    self._records = [by_id[i] for i in splits.search_ids]
    self.joint_set = source.joint_set
    if supernet.num_joints != self.joint_set.num_joints:
      raise UserError(f'the super-net predicts {supernet.num_joints} joints but '
                      f'config.data.dataset {source.name!r} has {self.joint_set.num_joints}')
    self._variables = _plain_numpy({'params': variables['params'],
                                    'batch_stats': variables['batch_stats']})
    # Predictor's defaults: the official parser settings.
    self._parse_kw = dict(max_people=30, detection_threshold=0.1, tag_threshold=1.0, adjust=True,
                          refine=True, joint_order=self.joint_set.group_order)
    self._lock = threading.Lock()
    self._size_locks: dict[int, threading.Lock] = {}
    self._calib: dict[int, list[np.ndarray]] = {}
    self._search: dict[int, tuple[np.ndarray, list, list]] = {}
    self._zeros: dict[int, Any] = {}
    self._on_device: dict[Any, dict] = {}
    self._build_programs()
    self.sliced = bool(sliced)
    self._sliced = sliced_lib.SlicedSubnets(supernet, flip_index=(
        tuple(self.joint_set.flip_index) if self.flip else None))

  def _build_programs(self) -> None:
    """The three jitted programs; the candidate's masks are arguments, never constants."""
    stats_fn = recalibrate_lib.batch_stats_fn(self.supernet)
    net, num_joints = self.supernet, self.supernet.num_joints
    flip_index = tuple(self.joint_set.flip_index) if self.flip else None

    def calib_step(variables, masks, images, total):
      x = normalize.normalize_images(images, jnp)
      stats = stats_fn(variables, masks, x)
      return {k: (total[k][0] + m, total[k][1] + v, active)
              for k, (m, v, active) in stats.items()}

    def maps(params, batch_stats, masks, images):
      x = normalize.normalize_images(images, jnp)
      if flip_index is not None:
        x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
      out4, out2 = net.apply({'params': params, 'batch_stats': batch_stats}, x, masks,
                             train=False)
      return fusion.fuse_outputs_jax(out4, out2, num_joints, flip_index)

    self._stats_fn = stats_fn
    def merge(batch_stats, total, count):
      # Its own function object: jit caches are per function, and `compiles` counts this one's.
      return recalibrate_lib.merge_stats(batch_stats, total, count)

    self._calib_step, self._merge, self._maps = jax.jit(calib_step), jax.jit(merge), jax.jit(maps)

  @property
  def compiles(self) -> int:
    """Programs compiled so far by this Fitness (all resolutions and devices)."""
    return self._sliced.compiles + sum(
        f._cache_size() for f in (self._calib_step, self._merge, self._maps))  # pylint: disable=protected-access

  def __call__(self, arch: dict) -> float:
    """AP@[.5:.95] (fraction) of sub-net `arch` on the search split, on the first local device."""
    return self.score(arch)

  def score(self, arch: dict, device: Any = None) -> float:
    """AP@[.5:.95] (fraction) of sub-net `arch`, every step of it computed on `device` (a local
    jax device; default the first)."""
    return self.ap(self.predict(arch, device))

  def ap(self, results: list[dict]) -> float:
    """AP@[.5:.95] (fraction) of COCO keypoint results on the search split (0 without any)."""
    with _EVALUATOR_LOCK:
      metrics = split_lib.score(self.splits.search_gt, results, self.splits.dataset,
                                len(self._records), log=self._log)
    return float(metrics['AP'])

  def predict(self, arch: dict, device: Any = None) -> list[dict]:
    """COCO keypoint results of sub-net `arch` (recalibrated) on the search images."""
    return self._predict(self._prepare(arch, device))

  def recalibrated(self, arch: dict, device: Any = None) -> dict:
    """The super-net's {'params', 'batch_stats'} (numpy) with sub-net `arch`'s statistics
    recalibrated, as nas.recalibrate.recalibrate returns them (diagnostics, tests)."""
    cand = self._prepare(arch, device)
    return _plain_numpy({'params': cand.params, 'batch_stats': jax.device_get(cand.batch_stats)})

  def maps(self, arch: dict, device: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Fused maps of sub-net `arch` on the search images: heatmaps [N, S/2, S/2, J] and tags
    [N, S/2, S/2, J, T] (T = 2 with flip), S = its img_size (diagnostics, tests)."""
    heats, tags = [], []
    for _, heat, tag, count in self._map_batches(self._prepare(arch, device)):
      heats.append(heat[:count])
      tags.append(tag[:count])
    return np.concatenate(heats), np.concatenate(tags)

  def _prepare(self, arch: dict, device: Any) -> _Candidate:
    """Sub-net `arch` on the device, its statistics recalibrated."""
    spec = models.resolve_arch(arch)
    masks = supernet_lib.subnet_masks(self.supernet, spec)
    device = self._device(device)
    variables = self._device_variables(device)
    cand = _Candidate(int(spec.img_size), variables['params'], variables['batch_stats'],
                      jax.device_put(masks, device),
                      self._sliced.plan(spec) if self.sliced else None, device)
    return dataclasses.replace(cand, batch_stats=self._recalibrate(cand))

  def _log(self, msg: str) -> None:
    if self.progress:
      tqdm.tqdm.write(f'fitness: {msg}')

  def _device(self, device: Any):
    local = jax.local_devices()
    if device is None:
      return local[0]
    if device not in local:
      raise ValueError(f'{device} is not a local device of process {jax.process_index()} '
                       f'(local: {local})')
    return device

  def _device_variables(self, device) -> dict:
    """The super-net's variables on `device`, uploaded once."""
    with self._lock:
      if device not in self._on_device:
        self._on_device[device] = jax.device_put(self._variables, device)
      return self._on_device[device]

  def _size_lock(self, size: int) -> threading.Lock:
    with self._lock:
      return self._size_locks.setdefault(size, threading.Lock())

  def _recalibrate(self, cand: _Candidate) -> dict:
    """batch_stats (on the candidate's device) with its channels recalibrated."""
    batches = self._calibration(cand.size)
    total = jax.device_put(self._zeros[cand.size], cand.device)
    variables = {'params': cand.params, 'batch_stats': cand.batch_stats}
    for images in batches:
      images = jax.device_put(images, cand.device)
      if cand.plan is not None:
        total = self._sliced.run(cand.plan, variables, cand.masks, images, cand.device, total)
      else:
        total = self._calib_step(variables, cand.masks, images, total)
    return self._merge(cand.batch_stats, total, np.float32(len(batches)))

  def _calibration(self, size: int) -> list[np.ndarray]:
    """The calibration batches at `size`, uint8 [calib_batch, size, size, 3], made once."""
    with self._size_lock(size):
      if size not in self._calib:
        ids = self.splits.calibration_ids
        stream = recalibrate_lib.calibration_batches(
            self._cfg, size, len(ids), self.calib_batch, self.seed, image_ids=ids, raw=True)
        batches = [np.asarray(b, np.uint8) for b in tqdm.tqdm(
            stream, total=len(stream), desc=f'calibration images {size}px', unit='batch',
            leave=False, disable=not self.progress)]
        # Zero running sums shaped like the statistics (traced, not compiled).
        shape = jax.eval_shape(
            self._stats_fn, self._variables, _max_masks(self.supernet),
            jax.ShapeDtypeStruct((self.calib_batch, size, size, 3), jnp.float32))
        self._zeros[size] = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shape)
        self._calib[size] = batches
      return self._calib[size]

  def _search_images(self, size: int) -> tuple[np.ndarray, list, list]:
    """(search images fitted into size x size, uint8 [N, size, size, 3], centres, scales)."""
    with self._size_lock(size):
      if size not in self._search:
        fitted = np.zeros((len(self._records), size, size, 3), np.uint8)
        centers, scales = [], []
        for i, rec in enumerate(tqdm.tqdm(self._records, desc=f'search images {size}px',
                                          unit='img', leave=False, disable=not self.progress)):
          rgb = image_files.read_rgb(rec.file_path, f'search image (id {rec.image_id})',
                                     ignore_orientation=True)
          fitted[i], center, scale = transforms.fit_image(rgb, (size, size))
          centers.append(center)
          scales.append(scale)
        self._search[size] = (fitted, centers, scales)
      return self._search[size]

  def _map_batches(self, cand: _Candidate):
    """(start, heatmaps, tags, images in the batch) per eval_batch search images; the next call
    is dispatched before the current one's maps are fetched (grouped meanwhile on the host)."""
    images, _, _ = self._search_images(cand.size)
    n, step = len(images), self.eval_batch
    variables = {'params': cand.params, 'batch_stats': cand.batch_stats}

    def launch(start: int):
      chunk = images[start:start + step]
      if len(chunk) < step:
        # Padded to the one batch shape (eval-mode BatchNorm: images do not interact).
        chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]),
                                                chunk.dtype)])
      chunk = jax.device_put(chunk, cand.device)
      if cand.plan is not None:
        return self._sliced.run(cand.plan, variables, cand.masks, chunk, cand.device)
      return self._maps(cand.params, cand.batch_stats, cand.masks, chunk)

    pending = collections.deque([(0, launch(0))])
    while pending:
      start, out = pending.popleft()
      if start + step < n:
        pending.append((start + step, launch(start + step)))
      heat, tags = (np.asarray(o) for o in jax.device_get(out))
      yield start, heat, tags, min(step, n - start)

  def _predict(self, cand: _Candidate) -> list[dict]:
    """COCO results on the search images (Predictor's fixed-input decode of each image)."""
    _, centers, scales = self._search_images(cand.size)
    results: list[dict] = []
    for start, heat, tags, count in self._map_batches(cand):
      for k in range(count):
        i = start + k
        results += self._decode(heat[k], tags[k], centers[i], scales[i], cand.size,
                                self._records[i].image_id)
    return results

  def _decode(self, heat: np.ndarray, tags: np.ndarray, center, scale, size: int,
              image_id: int) -> list[dict]:
    """One image's fused stride-2 maps -> its COCO results (Predictor's fixed-input decode)."""
    poses, scores = predictor_lib.decode_maps(
        (1.0,), [heat], [tags], (size, size), center, scale, self._parse_kw,
        what=f'the super-net (search image {image_id})')
    return predictor_lib.Prediction(poses, scores, {}).to_coco(image_id)


def _max_masks(supernet: supernet_lib.SuperLitePose) -> dict:
  """The masks of the largest sub-net (shapes of every candidate's masks)."""
  return supernet_lib.subnet_masks(supernet, supernet.arch, check=False)
