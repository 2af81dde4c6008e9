"""Training targets: Gaussian heatmaps and associative-embedding joint indices.

NumPy only: the tf.data pipeline calls these inside its per-batch numpy_function (GIL released in
the heavy parts); a TF-op version measured 3-7x slower there and was removed. Tests check them
against hand-computed values.

Rules (official HeatmapGenerator / JointsGenerator in lib/dataset/target_generators;
docs/OFFICIAL.md, "Targets and loss"):
- A joint counts iff visibility > 0 and its truncated integer position (int(x), int(y), truncation
  toward zero as Python's int()) lies inside [0, R).
- Heatmaps: a fixed (2r+1) x (2r+1) Gaussian patch, r = int(3 * sigma + 1) (15 x 15 for sigma 2),
  exp(-(dx^2 + dy^2) / (2 sigma^2)) for integer offsets, peak 1.0 at the integer position, clipped at
  the borders and combined across people by element-wise max.
- Joints: row p = person p; the kept joints of a person fill slots 0, 1, ... in joint order with
  (k * R^2 + y * R + x, 1); unused slots are (0, 0). People beyond `max_people` are dropped (counted).
"""
from __future__ import annotations

import numpy as np


def gaussian_patch(sigma: float = 2.0) -> np.ndarray:
  """The [2r+1, 2r+1] float32 Gaussian pasted at every joint (r = int(3 sigma + 1))."""
  r = int(3 * sigma + 1)
  d = np.arange(-r, r + 1, dtype=np.float64)
  g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2.0 * sigma ** 2))
  return g.astype(np.float32)


def _check_keypoints(keypoints) -> np.ndarray:
  kp = np.asarray(keypoints, dtype=np.float32)
  if kp.ndim != 3 or kp.shape[-1] != 3:
    raise ValueError(f'keypoints must have shape [P, J, 3] (x, y, visibility), got {kp.shape}')
  return kp


def kept_joints(keypoints, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(keep [P, J] bool, xi [P, J] int, yi [P, J] int): which joints produce targets at size R."""
  kp = _check_keypoints(keypoints)
  with np.errstate(invalid='ignore'):
    finite = np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1])
    xi = np.where(finite, np.trunc(np.where(finite, kp[..., 0], 0)), -1).astype(np.int64)
    yi = np.where(finite, np.trunc(np.where(finite, kp[..., 1], 0)), -1).astype(np.int64)
  keep = (kp[..., 2] > 0) & finite & (xi >= 0) & (yi >= 0) & (xi < size) & (yi < size)
  return keep, xi, yi


def render_heatmaps(keypoints, size: int, sigma: float = 2.0,
                    out: np.ndarray | None = None) -> np.ndarray:
  """Heatmaps [size, size, J] float32 for keypoints [P, J, 3] given in target-map pixels.

  out: a zeroed C-contiguous [size, size, J] float32 array to render into (the pipeline passes
  rows of its batch arrays); it is returned.
  """
  kp = _check_keypoints(keypoints)
  num_joints = kp.shape[1]
  shape = (size, size, num_joints)
  if out is None:
    out = np.zeros(shape, np.float32)
  elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
    raise ValueError(f'out must be a C-contiguous float32 array of shape {shape}, got '
                     f'{out.dtype} {out.shape}')
  keep, xi, yi = kept_joints(kp, size)
  g = gaussian_patch(sigma)
  r = g.shape[0] // 2
  # One clipped patch per kept joint, max-combined in place. A loop over slices beats a
  # vectorised np.maximum.at scatter by ~10x here (ufunc.at is slow per element).
  for p, j in zip(*np.nonzero(keep)):
    x, y = int(xi[p, j]), int(yi[p, j])
    x0, y0, x1, y1 = max(x - r, 0), max(y - r, 0), min(x + r + 1, size), min(y + r + 1, size)
    view = out[y0:y1, x0:x1, j]
    np.maximum(view, g[y0 - y + r:y1 - y + r, x0 - x + r:x1 - x + r], out=view)
  return out


def encode_joints(keypoints, size: int, max_people: int = 30,
                  return_num_dropped: bool = False):
  """AE joint indices [max_people, J, 2] int32 (index into a flattened (J, R, R) tag map, flag).

  With `return_num_dropped`, also returns how many people beyond `max_people` had at least one
  kept joint (they are dropped, never an error).
  """
  kp = _check_keypoints(keypoints)
  num_people, num_joints = kp.shape[:2]
  out = np.zeros((max_people, num_joints, 2), np.int32)
  keep, xi, yi = kept_joints(kp, size)
  dropped = int(keep[max_people:].any(axis=1).sum()) if num_people > max_people else 0
  keep = keep[:max_people]
  slot = np.cumsum(keep, axis=1) - 1
  pp, jj = np.nonzero(keep)
  out[pp, slot[pp, jj], 0] = jj * size * size + yi[pp, jj] * size + xi[pp, jj]
  out[pp, slot[pp, jj], 1] = 1
  return (out, dropped) if return_num_dropped else out
