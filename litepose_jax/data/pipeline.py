"""The training input pipeline (tf.data): index stream -> decode + warp -> targets -> batches.

Entry point: `make_train_dataset(cfg, process_index=..., process_count=..., start_step=...)`.

Determinism and resume: the stream is an endless sequence of global positions g = 0, 1, 2, ...;
position g belongs to epoch e = g // N and shows record perm_e[g % N], where perm_e is a stateless
permutation (see _index_stream). All randomness of a sample (scale, rotation, translation, flip) is
drawn with stateless RNG from (seed, g), and the input size of a global step t (variable-size
training) from (seed, t). So element g is a pure function of g: resuming at step t starts the index
stream at g = t * global_batch without decoding anything before it.

Multi-host: process p of P takes the positions g with g % P == p (tf.data shard on the cheap index
stream), so in every global step the P hosts read disjoint samples whose union is that step's
global batch, and over N / global_batch steps the hosts together see exactly one epoch.

Work split: one numpy_function per local batch loads its samples one after another straight into
the batch arrays: parameters from np.random.default_rng([seed, g]), read + decode (RGB) and warp
with OpenCV (which releases the GIL, so parallel map calls over batches use all cores), targets with
NumPy (a few tenths of a ms of GIL-holding work per 448 sample). Per-batch rather than per-sample
calls, decoding to RGB directly and uint8 output (normalised on the device, see normalize.py) give
1.2-1.7x the official loader's per-core throughput, the optional decoded-image cache
(decoded_cache.py) ~2-2.4x (docs/BENCHMARKS.md). Doing
parameters, matrices and targets as TF ops was measured slower on CPU (per-op overhead and slow
scatter kernels, see targets.py).

Bad data: missing files and malformed keypoints are removed when the json is read; an image that
cannot be decoded (or whose size disagrees with the json) is reported with file name and image id,
counted, and replaced by an all-zero sample with valid = 0, masks = 0 and no joints, so it
contributes nothing to the loss and the stream positions (resume) stay exact. strict=True raises.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import cv2
import ml_collections
import numpy as np

from litepose_jax.data import augment
from litepose_jax.data import datasets
from litepose_jax.data import decoded_cache
from litepose_jax.data import image_files
from litepose_jax.data import normalize
from litepose_jax.data import sizes as sizes_lib
from litepose_jax.data import targets
from litepose_jax.errors import UserError

if TYPE_CHECKING:  # annotations only: TensorFlow is imported where a dataset is built
  import tensorflow as tf


def default_data_config() -> ml_collections.ConfigDict:
  """The data fields the pipeline reads, with the official LitePose-S training values.

  For callers without a config file (`litepose data show` without --config, scripts/bench_data.py,
  tests); training recipes (configs/litepose_*.py) start from it and write every recipe value
  out, the official numbers beside them.
  """
  c = ml_collections.ConfigDict()
  c.dataset = 'crowdpose'  # 'crowdpose' | 'coco' | 'custom'
  c.data_dir = ''  # official layout root (see datasets.expected_paths), or a flat copy
  c.split = 'trainval'  # CrowdPose trains on trainval; COCO on 'train'
  c.ann_file = ''  # explicit paths override the layout
  c.image_dir = ''
  c.joint_names = ()  # custom sets only; default: the json category
  c.flip_index = ()
  c.skeleton = ()
  c.input_size = 448
  # Non-empty: every global step draws its input size from this list (super-net training,
  # 256..512 step 64); targets are rendered at that size directly (no resizing of targets).
  c.input_sizes = ()
  c.max_people = 30
  c.sigma = 2.0
  c.min_scale = 0.75
  c.max_scale = 1.5
  c.scale_type = 'short'  # 'short' | 'long': the image side that sets the crop scale
  c.max_rotation = 30.0
  c.max_translate = 40.0
  c.flip_prob = 0.5
  # Official behaviour: the mask is warped like the image, so the black border outside the image
  # is masked out (0) as are crowd regions / unlabelled people (COCO). False: border stays 1.
  c.mask_outside_image = True
  # 'uint8' (default): RGB bytes, 4x less host work and host->device traffic; the trainer
  # normalises on the device (normalize.model_input). 'float32': normalised on the host.
  c.image_dtype = 'uint8'
  # Non-empty: a folder for decoded images (raw .npy, written on first use, read back later), so
  # epochs after the first skip the JPEG decode, ~55% of a CrowdPose sample's host time. Costs
  # H*W*3 bytes of disk per image (CrowdPose trainval ~18 GB); entries are keyed by the file's
  # path, size and mtime, so an edited image is decoded again.
  c.decoded_cache_dir = ''
  c.seed = 0
  c.shuffle = True
  c.strict = False
  c.batch_size = 32  # global; each of the process_count hosts gets batch_size / process_count
  c.num_parallel_calls = -1  # -1 = tf.data AUTOTUNE
  c.prefetch = 2
  c.threads = 0  # tf.data private thread pool size; 0 = TF default (all cores)
  return c


class _SingleThreadedOpenCV:
  """OpenCV on one thread while any data worker is inside a batch, its own count otherwise.

  tf.data already runs batches in parallel, so OpenCV's thread pool inside each warp would
  oversubscribe the cores. cv2.setNumThreads is process-wide, so the first worker to enter sets 1
  and the last to leave restores the previous count: OpenCV work outside the data workers (the
  periodic evaluation between training steps) keeps all its threads once the workers are idle.
  Setting and restoring costs ~0.15 ms, against ~10 ms of work per sample.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._active = 0
    self._saved = 0

  def __enter__(self):
    with self._lock:
      if not self._active:
        self._saved = cv2.getNumThreads()
        cv2.setNumThreads(1)
      self._active += 1

  def __exit__(self, *exc_info):
    with self._lock:
      self._active -= 1
      if not self._active:
        cv2.setNumThreads(self._saved)


# One for the process, as the OpenCV setting it guards.
_OPENCV_IN_WORKERS = _SingleThreadedOpenCV()


class _Loader:
  """The Python half of a sample: read, decode, warp (OpenCV, GIL released) and NumPy targets.

  Targets are rendered here with NumPy rather than with TF ops: on the 2-core development machine
  a TF-op renderer (tensor_scatter_nd_max) took 3-7x longer than the NumPy version for
  the 112 / 224 maps of one sample, and per-sample TF ops for parameters and matrices added more
  per-op overhead than the ~0.1 ms of NumPy they replace.
  """

  def __init__(self, source: datasets.KeypointDataset, cfg, sizes: tuple[int, ...]):
    if cfg.scale_type not in ('short', 'long'):
      # Checked here, once: params() would silently treat any other value as 'long'.
      raise UserError(f"data.scale_type must be 'short' or 'long', got {cfg.scale_type!r}")
    self.source = source
    self.cfg = cfg
    self.sizes = sizes
    self.seed = cfg.seed
    self.global_batch = cfg.batch_size
    self.mask_outside_image = cfg.mask_outside_image
    self.has_ignore = source.has_ignore_regions
    self.flip_index = list(source.joint_set.flip_index)
    self.sigma = cfg.sigma
    self.max_people = cfg.max_people
    self.num_joints = source.joint_set.num_joints
    self._all_valid: dict[tuple[int, int], np.ndarray] = {}
    self.cache = (decoded_cache.DecodedCache(cfg.decoded_cache_dir) if cfg.decoded_cache_dir
                  else None)

  def size_at(self, g: int) -> int:
    """Input size of the global step that stream position g belongs to."""
    return sizes_lib.step_input_size(self.seed, g // self.global_batch, self.sizes)

  def params(self, g: int, rec: datasets.ImageRecord):
    """(centre, scale, rotation, flip) of stream position g: stateless in (seed, g)."""
    c = self.cfg
    u = np.random.default_rng([self.seed, g]).random(5)
    base = (min if c.scale_type == 'short' else max)(rec.width, rec.height) / 200.0
    scale = base * (c.min_scale + u[0] * (c.max_scale - c.min_scale))
    rot = (u[1] * 2.0 - 1.0) * c.max_rotation
    # Integer translation in [-floor(T*s), floor(T*s)), as numpy's randint with float bounds.
    m = np.floor(c.max_translate * scale)
    dx, dy = np.floor(-m + u[2] * 2.0 * m), np.floor(-m + u[3] * 2.0 * m)
    return (rec.width / 2.0 + dx, rec.height / 2.0 + dy), scale, rot, bool(u[4] < c.flip_prob)

  def batch_arrays(self, n: int, size: int) -> tuple[np.ndarray, ...]:
    """Zeroed outputs for n samples: image, heatmaps4, heatmaps2, masks4, masks2, joints, dropped,
    ok (a failed sample stays all zero with ok False)."""
    r4, r2, j = size // 4, size // 2, self.num_joints
    z = np.zeros
    return (z((n, size, size, 3), np.uint8), z((n, r4, r4, j), np.float32),
            z((n, r2, r2, j), np.float32), z((n, r4, r4), np.uint8), z((n, r2, r2), np.uint8),
            z((n, self.max_people, j, 2), np.int32), z(n, np.int32), z(n, bool))

  def __call__(self, gs, rec_ids):
    """One local batch: stream positions gs [B] and record indices [B] -> batch_arrays(B, S)."""
    gs, rec_ids = np.asarray(gs), np.asarray(rec_ids)
    size = self.size_at(int(gs[0]))
    out = self.batch_arrays(len(gs), size)
    with _OPENCV_IN_WORKERS:
      for i, (g, rec_idx) in enumerate(zip(gs.tolist(), rec_ids.tolist())):
        self.load_into(out, i, g, rec_idx, size)
    return out

  def _decode(self, rec: datasets.ImageRecord) -> np.ndarray:
    entry = self.cache.path(rec) if self.cache else None
    cached = self.cache.get(rec, entry) if entry else None
    if cached is not None:
      return cached
    with open(rec.file_path, 'rb') as f:
      img = image_files.decode_rgb(f.read(), ignore_orientation=True)
    if img is None:
      raise ValueError('OpenCV cannot decode the file')
    if img.shape[:2] != (rec.height, rec.width):
      raise ValueError(f'image is {img.shape[1]}x{img.shape[0]} but the json says '
                       f'{rec.width}x{rec.height}')
    if entry and self.cache:
      self.cache.put(rec, img, entry)
    return img

  def load_into(self, out: tuple[np.ndarray, ...], i: int, g: int, rec_idx: int, size: int):
    """Writes sample (stream position g, record rec_idx) into row i of batch_arrays `out`."""
    image, hm4, hm2, mask4, mask2, joints, dropped, ok = out
    rec = self.source.records[rec_idx]
    r4, r2 = size // 4, size // 2
    center, scale, rot, flip = self.params(g, rec)
    m_in, m4, m2 = (augment.affine_matrix(center, scale, rot, r, flip) for r in (size, r4, r2))
    try:
      img = self._decode(rec)
    except (OSError, ValueError) as e:
      self.source.bad.add('unreadable image', rec.file_path, rec.image_id, str(e))
      return
    cv2.warpAffine(img, m_in, (size, size), dst=image[i], flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ignore = self.source.ignore_mask(rec_idx) if self.has_ignore else None
    keep = None
    if ignore is not None:
      keep = np.where(ignore > 0, np.uint8(0), np.uint8(255))
    elif self.mask_outside_image:
      keep = self._all_valid.get((rec.height, rec.width))
      if keep is None:  # read-only and shared: most data sets have a few image sizes
        keep = self._all_valid[(rec.height, rec.width)] = np.full((rec.height, rec.width), 255,
                                                                  np.uint8)
    border = 0 if self.mask_outside_image else 255
    for m, r, mask in ((m4, r4, mask4), (m2, r2, mask2)):
      if keep is None:
        mask[i] = 1
        continue
      w = cv2.warpAffine(keep, m, (r, r), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=border)
      np.greater(w, 127, out=mask[i], casting='unsafe')  # official: warped / 255 > 0.5
    kp = self.source.keypoints[rec_idx]
    kp4 = augment.transform_keypoints(kp, m4, flip, self.flip_index)
    kp2 = augment.transform_keypoints(kp, m2, flip, self.flip_index)
    joints[i], dropped[i] = targets.encode_joints(kp4, r4, self.max_people,
                                                  return_num_dropped=True)
    targets.render_heatmaps(kp4, r4, self.sigma, out=hm4[i])
    targets.render_heatmaps(kp2, r2, self.sigma, out=hm2[i])
    ok[i] = True


def _index_stream(n: int, cfg, start: int) -> tf.data.Dataset:
  """Endless (global position g, record index) pairs starting at position `start`.

  Epochs are generated in chunks of E = ceil(4096 / n) so that tiny data sets do not pay the
  per-dataset cost of flat_map on every epoch; epoch e's permutation is argsort of stateless
  uniform keys drawn from (seed, chunk) row e % E, a pure function of (seed, n, e).
  """
  # Imported here like in make_train_dataset (configs and fake-data runs skip TensorFlow).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seed = cfg.seed
  per_chunk = -(-4096 // n)
  chunk_len = per_chunk * n

  def chunk(c):
    base = tf.range(n, dtype=tf.int64)
    if cfg.shuffle:
      keys = tf.random.stateless_uniform([per_chunk, n], seed=tf.stack([seed, c]),
                                         dtype=tf.float64, alg='philox')
      ids = tf.argsort(keys, axis=1, stable=True)
    else:
      ids = tf.broadcast_to(base, [per_chunk, n])
    g = c * chunk_len + tf.range(chunk_len, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((g, tf.reshape(tf.cast(ids, tf.int64), [-1])))

  ds = tf.data.Dataset.range(start // chunk_len, 2 ** 62 // chunk_len).flat_map(chunk)
  return ds.skip(start % chunk_len)


def _local_batch(cfg, process_index: int, process_count: int) -> int:
  """This host's share of the global data.batch_size."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} outside 0..{process_count - 1}')
  if cfg.batch_size % process_count:
    raise UserError(f'data.batch_size {cfg.batch_size} is not divisible by process_count '
                    f'{process_count}')
  return cfg.batch_size // process_count


def _load_batch(loader: _Loader, source: datasets.KeypointDataset, cfg, local_batch: int):
  """tf function (positions [B], record indices [B]) -> the batch dict, via the NumPy loader."""
  # Imported here like in make_train_dataset (configs and fake-data runs skip TensorFlow).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image_ids = tf.constant([r.image_id for r in source.records], tf.int64)
  j, b, max_people = source.joint_set.num_joints, local_batch, cfg.max_people
  sizes = loader.sizes
  s = sizes[0] if len(sizes) == 1 else None  # variable-size training: unknown spatial dims
  q4, q2 = (None, None) if s is None else (s // 4, s // 2)

  def load(g, rec):
    img, hm4, hm2, mask4, mask2, joints, dropped, ok = tf.numpy_function(
        loader, [g, rec],
        [tf.uint8, tf.float32, tf.float32, tf.uint8, tf.uint8, tf.int32, tf.int32, tf.bool],
        stateful=False)
    return {
        'image': tf.ensure_shape(img, [b, s, s, 3]),
        'heatmaps4': tf.ensure_shape(hm4, [b, q4, q4, j]),
        'heatmaps2': tf.ensure_shape(hm2, [b, q2, q2, j]),
        'masks4': tf.ensure_shape(mask4, [b, q4, q4]),
        'masks2': tf.ensure_shape(mask2, [b, q2, q2]),
        'joints': tf.ensure_shape(joints, [b, max_people, j, 2]),
        'valid': tf.cast(tf.ensure_shape(ok, [b]), tf.float32),
        'index': g,
        'image_id': tf.gather(image_ids, rec),
        'dropped_people': tf.ensure_shape(dropped, [b]),
    }
  return load


def _finish_batch(cfg):
  """tf function: float masks, and the image normalised on the host if image_dtype 'float32'."""
  # Imported here like in make_train_dataset (configs and fake-data runs skip TensorFlow).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if cfg.image_dtype not in ('float32', 'uint8'):
    raise UserError(f"data.image_dtype must be 'float32' or 'uint8', got {cfg.image_dtype!r}")
  as_bytes = cfg.image_dtype == 'uint8'
  # normalize.normalize_images in TF ops.
  mean, inv_std = (tf.constant(v) for v in normalize.uint8_constants())

  def finish(b):
    if not as_bytes:
      b['image'] = (tf.cast(b['image'], tf.float32) - mean) * inv_std
    b['masks4'] = tf.cast(b['masks4'], tf.float32)
    b['masks2'] = tf.cast(b['masks2'], tf.float32)
    return b
  return finish


def _options(cfg) -> tf.data.Options:
  """Deterministic order; parallelism from the parallel map only."""
  # Imported here like in make_train_dataset (configs and fake-data runs skip TensorFlow).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  opts = tf.data.Options()
  opts.deterministic = True
  if cfg.threads:
    opts.threading.private_threadpool_size = cfg.threads
  # Multi-threaded single ops would only contend with the parallel map.
  opts.threading.max_intra_op_parallelism = 1
  return opts


def make_train_dataset(cfg, *, process_index: int = 0, process_count: int = 1,
                       start_step: int = 0, source: datasets.KeypointDataset | None = None
                       ) -> tf.data.Dataset:
  """Endless batches for this host: dict of image [B,S,S,3] uint8 RGB (cfg.image_dtype 'uint8',
  the default; normalise with normalize.model_input) or float32 normalised RGB ('float32'),
  heatmaps4 [B,S/4,S/4,J], heatmaps2 [B,S/2,S/2,J], masks4 [B,S/4,S/4], masks2 [B,S/2,S/2]
  (float32, 1 = train on this pixel), joints [B,max_people,J,2] int32 (into the S/4 tag map),
  valid [B] float32 (0 = bad sample replaced by zeros), index [B] int64 (global position),
  image_id [B] int64, dropped_people [B] int32 (people beyond max_people).

  B = cfg.batch_size / process_count. Pass `source` (datasets.open_from_config(cfg)) to read its
  bad-data tally (`source.bad.summary()`) afterwards.
  """
  # Imported here (and in the helpers above) so that configs and fake-data runs (GPU benchmarks)
  # work without TensorFlow.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  local_batch = _local_batch(cfg, process_index, process_count)
  source = source or datasets.open_from_config(cfg)
  loader = _Loader(source, cfg, sizes_lib.input_sizes(cfg))
  load, finish = _load_batch(loader, source, cfg, local_batch), _finish_batch(cfg)
  parallel = tf.data.AUTOTUNE if cfg.num_parallel_calls == -1 else cfg.num_parallel_calls
  ds = _index_stream(len(source), cfg, int(start_step) * cfg.batch_size)
  ds = ds.shard(process_count, process_index)
  ds = ds.batch(local_batch, drop_remainder=True)
  ds = ds.map(lambda g, rec: finish(load(g, rec)), num_parallel_calls=parallel,
              deterministic=True)
  return ds.prefetch(cfg.prefetch).with_options(_options(cfg))
