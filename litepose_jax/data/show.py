"""A grid of augmented training samples with skeletons and heatmaps drawn on top (for the eye)."""
from __future__ import annotations

import cv2
import numpy as np

from litepose_jax.data import datasets
from litepose_jax.data import normalize
from litepose_jax.data import pipeline

_COLORS = {'left': (0, 200, 255), 'right': (255, 120, 0), 'center': (80, 255, 80)}  # BGR


def _decode_joints(joints: np.ndarray, size: int) -> list[np.ndarray]:
  """AE joint indices [M, J', 2] -> per person [J, 3] (x, y, visible) in S/4 map pixels."""
  people = []
  num_joints = joints.shape[1]
  for row in joints:
    kp = np.zeros((num_joints, 3), np.float32)
    for idx, flag in row:
      if flag:
        j, rest = divmod(int(idx), size * size)
        y, x = divmod(rest, size)
        kp[j] = (x, y, 1)
    if kp[:, 2].any():
      people.append(kp)
  return people


def draw_sample(batch: dict, i: int, joint_set) -> np.ndarray:
  """One tile [S, S, 3] uint8 BGR: image, heatmap overlay (S/2 maps) and skeleton from the joints."""
  img = normalize.to_uint8(batch['image'][i])[..., ::-1].copy()
  size = img.shape[0]
  hm = batch['heatmaps2'][i].max(axis=-1)
  hm = cv2.resize(hm, (size, size), interpolation=cv2.INTER_LINEAR)
  heat = cv2.applyColorMap((np.clip(hm, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
  alpha = (0.6 * np.clip(hm, 0, 1))[..., None]
  out = (img * (1 - alpha) + heat * alpha).astype(np.uint8)
  mask = cv2.resize(batch['masks4'][i], (size, size), interpolation=cv2.INTER_NEAREST)
  out[mask < 0.5] = (out[mask < 0.5] * 0.4).astype(np.uint8)  # masked-out pixels darker
  r4 = batch['heatmaps4'].shape[1]
  scale = size / r4
  for kp in _decode_joints(batch['joints'][i], r4):
    pts = (kp[:, :2] + 0.5) * scale
    for a, b in joint_set.skeleton:
      if kp[a, 2] and kp[b, 2]:
        cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]),
                 _COLORS[joint_set.side(b)], 2, cv2.LINE_AA)
    for j in range(len(kp)):
      if kp[j, 2]:
        cv2.circle(out, tuple(int(v) for v in pts[j]), 5, _COLORS[joint_set.side(j)], 1,
                   cv2.LINE_AA)
  if batch['valid'][i] < 0.5:
    cv2.putText(out, 'BAD SAMPLE', (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2)
  return out


def make_grid(cfg, num: int = 8, cols: int = 4) -> tuple[np.ndarray, str]:
  """(grid image uint8 BGR, bad-data summary) of the first `num` samples of the stream."""
  cfg = cfg.copy_and_resolve_references()
  cfg.batch_size = num
  source = datasets.open_from_config(cfg)
  ds = pipeline.make_train_dataset(cfg, source=source)
  batch = next(iter(ds.as_numpy_iterator()))
  tiles = [draw_sample(batch, i, source.joint_set) for i in range(num)]
  rows = -(-num // cols)
  s = tiles[0].shape[0]
  grid = np.zeros((rows * s, min(cols, num) * s, 3), np.uint8)
  for k, t in enumerate(tiles):
    r, c = divmod(k, cols)
    grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = t
  return grid, source.bad.summary()
