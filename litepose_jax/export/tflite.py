"""jax2tf (native serialization, cpu) -> SavedModel -> TFLiteConverter, with quantisation variants.

The graph is batch 1 with static shapes (a polymorphic batch brings BROADCAST_TO chains and keeps
BN unfolded), input `image` float32 [1, H, W, 3] normalised, and three named outputs
heatmaps4 / tags4 / heatmaps2. Only TFLite builtin ops are allowed (no Flex / custom ops) so
the model runs on XNNPACK and the GPU delegate.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
import glob
import os
import tempfile
from typing import Any
import warnings

import jax
import numpy as np

from litepose_jax.data import image_files
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.export import dynamic_range
from litepose_jax.export import fold
from litepose_jax.inference import sidecar
from litepose_jax.inference import transforms

QUANTIZE_MODES = ('none', 'fp16', 'dynamic', 'int8')
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def preprocess_image(rgb: np.ndarray, size: int) -> np.ndarray:
  """uint8 RGB [h, w, 3] -> [1, size, size, 3] float32 as a fixed-size input is fed
  (`litepose predict --fixed-input`): fitted and centred with black borders
  (transforms.fit_image), then ImageNet-normalised."""
  if rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f'expected an RGB image [h, w, 3], got shape {rgb.shape}')
  fitted, _, _ = transforms.fit_image(rgb, (size, size))
  return normalize.normalize_images(fitted)[None]


def calibration_images(directory: str | os.PathLike | None, size: int, count: int = 16,
                       seed: int = 0, warn: bool = True) -> list[np.ndarray]:
  """[1, size, size, 3] inputs from a folder of images (sorted; the first `count`), or random.

  Without a folder the inputs are random normal (a warning says so): int8 scales from them are
  poor, use real images for a model that is meant to be deployed.
  """
  if directory is None:
    if warn:
      warnings.warn('no calibration images (--calibration): using random-normal inputs; int8 '
                    'scales calibrated on them are poor', stacklevel=2)
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(1, size, size, 3)).astype(np.float32) for _ in range(count)]
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'--calibration folder not found: {directory}')
  files = sorted(f for f in glob.glob(os.path.join(directory, '**', '*'), recursive=True)
                 if f.lower().endswith(IMAGE_EXTS))
  if not files:
    raise UserError(f'--calibration folder {directory} holds no images ({", ".join(IMAGE_EXTS)})')
  images = []
  for f in files[:count]:
    images.append(preprocess_image(image_files.read_rgb(f, 'calibration image'), size))
  return images


def _saved_model(fn: Callable, size: int, directory: str) -> None:
  """jax2tf-converts `fn(images) -> (h4, t4, h2)` and saves it with named outputs."""
  # TensorFlow and jax2tf take seconds to import: only when a model is converted.
  from jax.experimental import jax2tf
  import tensorflow as tf
  tf_fn = jax2tf.convert(fn, native_serialization_platforms=('cpu',), with_gradient=False)

  @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32,
                                               name=sidecar.INPUT_NAME)], autograph=False)
  def serving(image):
    return dict(zip(sidecar.OUTPUT_NAMES, tf_fn(image)))

  module = tf.Module()
  module.serving = serving
  tf.saved_model.save(module, directory, signatures={'serving_default': serving})


def convert(fn: Callable, size: int, quantize: str = 'none',
            representative: Sequence[np.ndarray] | None = None) -> bytes:
  """A pure JAX fn(images [1,S,S,3]) -> (heatmaps4, tags4, heatmaps2) -> .tflite bytes."""
  import tensorflow as tf  # slow import: see _saved_model
  if quantize not in QUANTIZE_MODES:
    raise UserError(f'--quantize must be one of {QUANTIZE_MODES}, got {quantize!r}')
  if size % 16 or size <= 0:
    raise UserError(f'--size must be a positive multiple of 16 (backbone stride), got {size}')
  if quantize == 'int8' and not representative:
    raise ValueError('int8 quantisation needs representative inputs')
  with tempfile.TemporaryDirectory(prefix='litepose_savedmodel_') as tmp:
    _saved_model(fn, size, tmp)
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
    if quantize != 'none':
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == 'fp16':
      converter.target_spec.supported_types = [tf.float16]
    elif quantize == 'int8':
      converter.representative_dataset = lambda: ([x] for x in representative)
      # Full-integer graph; the interface stays float32 (QUANTIZE / DEQUANTIZE at the ends) so
      # every variant is called the same way.
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    else:
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    model = converter.convert()
  if quantize == 'dynamic':
    # XNNPACK cannot take hybrid depthwise convs: unpack their int8 filters at load instead
    # (export/dynamic_range.py), so the whole graph stays on one delegate partition.
    model, _ = dynamic_range.dequantize_depthwise_filters(model)
  return model


def export_fn(module, variables, band_depthwise: bool = True) -> Callable:
  """The BN-folded inference function of a LitePose module, weights closed over."""
  folded = fold.fold_variables(module, variables, band_depthwise)
  return functools.partial(fold.folded_apply, folded)


# Documented parity bounds (max abs error vs the unfolded JAX model, on the calibration inputs,
# relative to the max |JAX output| of the same tensor). fp32 is checked absolutely (1e-3 refusal
# threshold; tests use 1e-4). The quantised bounds are what the tests assert on random XS models.
RELATIVE_BOUNDS = {'fp16': 0.01, 'dynamic': 0.05, 'int8': 0.2}
FLOAT_REFUSE = 1e-3


def parity(model, module, variables, images: Sequence[np.ndarray],
           decode: bool = False) -> dict[str, Any]:
  """JAX (unfolded module.apply) vs TFLite on `images`: max / mean abs error per output.

  decode: also group both outputs into people (litepose_jax.inference) and report the fraction of
  decoded keypoints that move by more than 1 input pixel (meaningful for trained weights only).
  """
  apply = jax.jit(lambda x: module.apply(variables, x, train=False))
  j = module.num_joints
  errs: dict[str, list] = {n: [] for n in sidecar.OUTPUT_NAMES}
  peaks = {n: [] for n in sidecar.OUTPUT_NAMES}
  moved = []
  kp_moved, kp_total = 0, 0
  for x in images:
    o4, o2 = (np.asarray(a) for a in apply(x))
    ref = {'heatmaps4': o4[..., :j], 'tags4': o4[..., j:], 'heatmaps2': o2}
    got = model.raw(x)
    for n in sidecar.OUTPUT_NAMES:
      errs[n].append(np.abs(ref[n] - got[n]))
      peaks[n].append(np.abs(ref[n]).max())
    moved.append(_peak_shift(ref['heatmaps2'][0], got['heatmaps2'][0]))
    if decode:
      m, t = _keypoint_shift((o4, o2), model(x), model.joint_set)
      kp_moved, kp_total = kp_moved + m, kp_total + t
  stats = {}
  for n in sidecar.OUTPUT_NAMES:
    e = np.stack(errs[n])
    stats[n] = {'max_abs': float(e.max()), 'mean_abs': float(e.mean()),
                'max_abs_ref': float(max(peaks[n]))}
  stats['max_abs'] = max(stats[n]['max_abs'] for n in sidecar.OUTPUT_NAMES)
  stats['max_rel'] = max(stats[n]['max_abs'] / max(stats[n]['max_abs_ref'], 1e-12)
                         for n in sidecar.OUTPUT_NAMES)
  stats['peaks_moved_gt_1px'] = float(np.mean(np.concatenate(moved)))
  stats['num_images'] = len(images)
  if decode:
    stats['keypoints_moved_gt_1px'] = kp_moved / kp_total if kp_total else 0.0
    stats['keypoints_decoded'] = kp_total
  return stats


def _keypoint_shift(ref_out, got_out, joint_set) -> tuple[int, int]:
  """(moved, total): JAX-decoded keypoints whose TFLite counterpart is > 1 input px away or lost.

  People are matched by the Hungarian assignment on their mean keypoint distance.
  """
  # The decoder (numba, scipy) adds a second to `litepose export --help`: only when used.
  from scipy.optimize import linear_sum_assignment

  from litepose_jax.inference import fusion
  from litepose_jax.inference import parse_poses

  def people(out):
    heat, tags = fusion.fuse_stages(out[0][0], out[1][0], joint_set.num_joints)
    poses, _ = parse_poses(heat, tags, joint_order=joint_set.group_order)
    return poses  # [N, J, 3], x / y in stride-2 pixels

  ref, got = people(ref_out), people(got_out)
  seen_ref = ref[..., 2] > 0
  total = int(seen_ref.sum())
  if not len(ref) or not len(got):
    return total, total
  both = seen_ref[:, None] & (got[None, ..., 2] > 0)
  dist = 2.0 * np.linalg.norm(ref[:, None, :, :2] - got[None, :, :, :2], axis=-1)  # input px
  cost = np.where(both, dist, 1e6).sum(-1) / np.maximum(both.sum(-1), 1)
  rows, cols = linear_sum_assignment(cost)
  kept = 0
  for r, c in zip(rows, cols):
    kept += int((both[r, c] & (dist[r, c] <= 1.0)).sum())
  return total - kept, total


def _peak_shift(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
  """Per joint: does the strongest heatmap peak ([H, W, J] maps) move by more than 1 px?"""
  h, w, j = ref.shape
  a = np.argmax(ref.reshape(-1, j), axis=0)
  b = np.argmax(got.reshape(-1, j), axis=0)
  ay, ax = np.divmod(a, w)
  by, bx = np.divmod(b, w)
  return np.hypot(ay - by, ax - bx) > 1.0
