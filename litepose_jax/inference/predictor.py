"""Images -> people in image pixels: resize, network, fusion, grouping, map back.

The official test pipeline (docs/OFFICIAL.md, "Inference and grouping"): transforms.py resizes
and maps back, fusion.py fuses stages / flip / scales, parser.py groups.

A backend is anything with
  joint_set: JointSet
  input_shape: (H, W) when the network only takes that size (a fixed-size TFLite), else None
  max_batch: largest batch one call takes (None: any)
  __call__(images [B, H, W, 3] float32 normalised) -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J])
and optionally `maps(images, flip_index)` returning fused (heatmaps [B, h, w, J], tags [B, h, w, J, T])
(the JAX backend does this inside jit so that only fused stride-2 maps leave the device).
"""
from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import os
import time
from typing import Any

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.inference import fusion
from litepose_jax.inference import litert
from litepose_jax.inference import transforms
from litepose_jax.inference.parser import parse_poses


@dataclasses.dataclass
class Prediction:
  """People found in one image: poses [N, J, 3] (x, y in image pixels, heatmap value), scores [N]."""
  poses: np.ndarray
  scores: np.ndarray
  timings: dict
  # With Predictor(keep_maps=True): the scale-1 (or first) pass's fused maps before grouping,
  # {'heatmaps' [h, w, J], 'tags' [h, w, J, T], 'image_to_map' [2, 3]} (stride-2 size).
  maps: dict | None = None

  def to_coco(self, image_id: int, category_id: int = 1, **extra: Any) -> list[dict]:
    """COCO keypoint result dicts (keypoints flattened x, y, value)."""
    return [{'image_id': int(image_id), 'category_id': int(category_id),
             'keypoints': [round(float(v), 3) for v in pose.reshape(-1)],
             'score': float(score), **extra}
            for pose, score in zip(self.poses, self.scores)]


def _numpy_maps(backend, images: np.ndarray, flip_index):
  """Fused maps from a backend's raw outputs, one image per call when the backend needs that."""
  num_joints = backend.joint_set.num_joints
  step = backend.max_batch or len(images)
  heats, tags = [], []
  for a in range(0, len(images), step):
    chunk = images[a:a + step]
    out4, out2 = (np.asarray(o) for o in backend(chunk))
    if flip_index is not None:
      # cv2.flip: ~10x faster than a contiguous copy of the reversed view.
      flips = [cv2.flip(np.ascontiguousarray(im), 1) for im in chunk]
      mirrored = flips[0][None] if len(flips) == 1 else np.stack(flips)
      f4, f2 = (np.asarray(o) for o in backend(mirrored))
    for i in range(len(chunk)):
      if flip_index is None:
        h, t = fusion.fuse_stages(out4[i], out2[i], num_joints)
      else:
        h, t = fusion.fuse_flip_pair(out4[i], out2[i], f4[i], f2[i], num_joints, flip_index)
      heats.append(h)
      tags.append(t)
  if len(heats) == 1:
    return heats[0][None], tags[0][None]  # views: no copy of the maps
  return np.stack(heats), np.stack(tags)


class JaxBackend:
  """A Flax LitePose module + variables; apply and fusion jitted (compiled once per input shape)."""
  max_batch = None
  input_shape = None

  def __init__(self, module, variables, joint_set: joints_lib.JointSet, size: int):
    self.module, self.variables, self.joint_set, self.size = module, variables, joint_set, size
    self._apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
    self._maps = {}

  @classmethod
  def from_checkpoint(cls, path: str | os.PathLike, size: int | None = None) -> JaxBackend:
    from litepose_jax import checkpoints  # orbax: slow to import, and a .tflite needs none
    module, variables, cfg = checkpoints.load_model(path)
    name = cfg.get('joint_set') or module.num_joints
    try:
      joint_set = joints_lib.get_joint_set(name)
    except ValueError:
      joint_set = joints_lib.get_joint_set(module.num_joints)
    if joint_set.num_joints != module.num_joints:
      raise UserError(f'{path}: joint set {joint_set.name} has {joint_set.num_joints} joints but '
                      f'the model predicts {module.num_joints}')
    return cls(module, variables, joint_set, size or int(module.arch.img_size))

  def __call__(self, images):
    return self._apply(self.variables, images)

  def maps(self, images: np.ndarray, flip_index):
    key = flip_index is not None
    if key not in self._maps:
      j, module = self.joint_set.num_joints, self.module
      fi = tuple(flip_index) if key else None

      def fn(v, x):
        if fi is not None:
          x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
        out4, out2 = module.apply(v, x, train=False)
        return fusion.fuse_outputs_jax(out4, out2, j, fi)
      self._maps[key] = jax.jit(fn)
    heat, tags = self._maps[key](self.variables, images)
    return np.asarray(heat), np.asarray(tags)


def load_backend(path: str | os.PathLike, size: int | None = None, *, num_threads: int = 2,
                 fixed_input: bool = False):
  """A JAX checkpoint (dir / workdir) or a .tflite file (run on num_threads threads) -> backend.

  fixed_input: a .tflite gets every image fitted into its exported square input (what an app
  with a fixed-size interpreter does) even when its input is resizable; by default a resizable
  .tflite runs at the official test size of each image, like a checkpoint.
  """
  path = os.fspath(path)
  if path.lower().endswith('.tflite'):
    return _TFLiteBackend(litert.TFLiteModel(path, num_threads=num_threads), fixed_input)
  # One backend (and its compiled functions) per checkpoint in a process: repeated commands or
  # predictors on the same model do not recompile.
  from litepose_jax import checkpoints  # orbax: see JaxBackend.from_checkpoint
  ckpt = checkpoints.find_checkpoint(path)
  key = (ckpt, size, os.path.getmtime(os.path.join(ckpt, checkpoints.MODEL_JSON)))
  if key not in _BACKENDS:
    _BACKENDS[key] = JaxBackend.from_checkpoint(ckpt, size)
  return _BACKENDS[key]


_BACKENDS: dict = {}


class _TFLiteBackend:
  """Adapts litert.TFLiteModel to the backend protocol: input_shape None (official resize per
  image) when the graph is resizable and fixed_input is False, else the exported (H, W)."""
  max_batch = 1

  def __init__(self, model, fixed_input: bool = False):
    self.model = model
    exported = tuple(int(v) for v in model.input_shape[1:3])
    self.input_shape = None if model.resizable and not fixed_input else exported
    js = model.joint_set
    self.joint_set = js if isinstance(js, joints_lib.JointSet) else joints_lib.get_joint_set(js)
    self.size = min(exported)

  def __call__(self, images):
    return self.model(np.asarray(images, np.float32))


class Predictor:
  """Callable: RGB uint8 image(s) [H, W, 3] -> Prediction(s) with people in image pixels.

  Args mirror the official TEST options: flip (FLIP_TEST; on by default as there, the commands
  that choose speed pass flip=False), scales (SCALE_FACTOR),
  group_at 'input' (PROJECT2IMAGE, official default) or 'stride2' (group the stride-2 maps: ~4x
  fewer pixels, coordinates quantised to 2 input pixels instead of 1), and the parser thresholds.
  keep_maps attaches each image's fused stride-2 maps to its Prediction (diagnostics).
  """

  def __init__(self, backend, *, size: int | None = None, flip: bool = True,
               scales: Sequence[float] = (1.0,), group_at: str = 'input', max_people: int = 30,
               detection_threshold: float = 0.1, tag_threshold: float = 1.0, adjust: bool = True,
               refine: bool = True, keep_maps: bool = False):
    if group_at not in ('input', 'stride2'):
      raise UserError(f"--group-at must be 'input' or 'stride2', got {group_at!r}")
    scales = tuple(sorted((float(s) for s in scales), reverse=True))
    if not scales or min(scales) <= 0:
      raise UserError(f'--scales must be positive, got {scales}')
    if backend.input_shape is not None and scales != (1.0,):
      raise UserError(f'this model has a fixed input shape {backend.input_shape}: only scale 1 '
                      'is supported')
    self.backend = backend
    self.joint_set = backend.joint_set
    self.size = int(size or backend.size)
    self.flip, self.scales, self.group_at = flip, scales, group_at
    self.keep_maps = keep_maps
    self.parse_kw = dict(max_people=max_people, detection_threshold=detection_threshold,
                         tag_threshold=tag_threshold, adjust=adjust, refine=refine,
                         joint_order=self.joint_set.group_order)

  @classmethod
  def from_path(cls, path: str | os.PathLike, *, size: int | None = None,
                fixed_input: bool = False, **kwargs) -> Predictor:
    """Picks the backend by extension: .tflite -> LiteRT, anything else -> JAX checkpoint
    (fixed_input: see load_backend)."""
    return cls(load_backend(path, size, fixed_input=fixed_input), size=size, **kwargs)

  @property
  def protocol(self) -> str:
    """How images reach the network, in words (for reports next to an AP)."""
    if self.backend.input_shape is None:
      return (f'official: short side to {self.size}, long side to a multiple of 64 '
              '(get_multi_scale_size)')
    h, w = self.backend.input_shape
    return f'fixed input: each image fitted into {h}x{w} (long side to {max(h, w)}), centred'

  def _resize(self, image: np.ndarray, scale: float):
    """(network input [h, w, 3] uint8, centre, scale) for one image at one test scale."""
    if self.backend.input_shape is None:
      return transforms.resize_image(image, self.size, scale, min(self.scales))
    return transforms.fit_image(image, self.backend.input_shape)

  def _maps(self, batch: np.ndarray):
    flip_index = self.joint_set.flip_index if self.flip else None
    if hasattr(self.backend, 'maps'):
      return self.backend.maps(batch, flip_index)
    return _numpy_maps(self.backend, batch, flip_index)

  def __call__(self, images):
    """One image [H, W, 3] -> Prediction; a list of images -> list of Predictions."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
      return self.predict_batch([images])[0]
    return self.predict_batch(list(images))

  def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
    """Images of any sizes; those with the same network input shape share one network call."""
    for i, im in enumerate(images):
      if not (isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[2] == 3):
        raise ValueError(f'image {i} must be an RGB array [H, W, 3], got '
                         f'{getattr(im, "shape", type(im))}')
    n = len(images)
    t_pre = np.zeros(n)
    t_net = np.zeros(n)
    per_scale = [[None] * len(self.scales) for _ in range(n)]  # (heat, tags, centre, scale, size)
    for si, s in enumerate(self.scales):
      groups: dict = {}
      for i, im in enumerate(images):
        t = time.perf_counter()
        resized, center, sc = self._resize(im, s)
        x = normalize.normalize_images(np.asarray(resized))
        t_pre[i] += time.perf_counter() - t
        groups.setdefault(x.shape, []).append((i, x, center, sc))
      for items in groups.values():
        t = time.perf_counter()
        batch = items[0][1][None] if len(items) == 1 else np.stack([it[1] for it in items])
        heat, tags = self._maps(batch)
        dt = (time.perf_counter() - t) / len(items)
        for k, (i, x, center, sc) in enumerate(items):
          t_net[i] += dt
          per_scale[i][si] = (heat[k], tags[k], center, sc, x.shape[:2])
    out = []
    for i in range(n):
      t = time.perf_counter()
      poses, scores = self._decode(per_scale[i], images[i].shape)
      maps = None
      if self.keep_maps:
        si = self.scales.index(1.0) if 1.0 in self.scales else 0
        heat, tags, center, sc, _ = per_scale[i][si]
        maps = {'heatmaps': heat, 'tags': tags, 'image_to_map': transforms.affine_matrix(
            center, sc, (heat.shape[1], heat.shape[0]))}
      out.append(Prediction(poses, scores, {'preprocess': t_pre[i], 'network': t_net[i],
                                            'decode': time.perf_counter() - t}, maps))
    return out

  def _decode(self, items, image_shape):
    heats = [it[0] for it in items]
    tags = [it[1] for it in items]
    # Official: the map back uses the last (smallest) scale's centre and scale.
    _, _, center, scale, _ = items[-1]
    if self.group_at == 'stride2':
      size = heats[0].shape[:2]  # the largest scale's stride-2 maps
    elif self.backend.input_shape is not None:
      size = self.backend.input_shape
    else:
      (base_w, base_h), _, _ = transforms.multi_scale_size(
          image_shape[0], image_shape[1], self.size, 1.0, min(self.scales))
      size = (base_h, base_w)
    return decode_maps(self.scales, heats, tags, size, center, scale, self.parse_kw)


def decode_maps(scales, heats, tags, size: tuple[int, int], center, scale,
                parse_kw: dict, what: str = 'the network') -> tuple[np.ndarray, np.ndarray]:
  """One image's maps per scale -> (poses [P, J, 3] float32 in image pixels, scores [P]).

  heats / tags: per scale, [h, w, J] and [h, w, J, T]; size: (h, w) grouping resolution;
  center / scale: the map back of the network input (transforms.fit_image); parse_kw: parser
  settings. what: names the source in the NaN error.
  """
  if any(np.isnan(h).any() for h in heats):
    # The parser never takes a NaN pixel as a joint: people would vanish without a word.
    raise ValueError(f'{what} returned NaN heatmaps (a diverged or broken model?)')
  heat, tag = fusion.aggregate_scales(scales, heats, tags, size)
  poses, scores = parse_poses(heat, tag, **parse_kw)
  poses = transforms.to_image_coords(poses, center, scale, (size[1], size[0]))
  return poses.astype(np.float32), scores
