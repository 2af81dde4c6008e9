"""Random affine + horizontal flip as 2x3 matrices shared by image, masks and joints.

The official RandomAffineTransform maps the square of side 200*s around a (translated) centre onto
R x R and rotates about the crop centre; RandomHorizontalFlip then mirrors with x -> R - 1 - x. Here
the flip is folded into the matrix (F @ A), which gives the same pixels as warping then reversing
the columns, and the joints are permuted with the flip index. The pipeline draws the parameters with
a per-sample generator seeded by (seed, stream position), so a sample is a pure function of both.
Official code: lib/dataset/transforms/transforms.py (docs/OFFICIAL.md, "Augmentation").
"""
from __future__ import annotations

import numpy as np


def affine_matrix(center, scale: float, rot_deg: float, res: int, flip: bool = False) -> np.ndarray:
  """[2, 3] float64 forward matrix (source pixels -> R x R crop); NumPy reference."""
  h = 200.0 * scale
  t = np.array([[res / h, 0.0, res * (-center[0] / h + 0.5)],
                [0.0, res / h, res * (-center[1] / h + 0.5)],
                [0.0, 0.0, 1.0]])
  if rot_deg != 0:
    a = -rot_deg * np.pi / 180.0  # the official code negates the angle
    sn, cs = np.sin(a), np.cos(a)
    rot = np.array([[cs, -sn, 0.0], [sn, cs, 0.0], [0.0, 0.0, 1.0]])
    to_c = np.array([[1.0, 0.0, -res / 2], [0.0, 1.0, -res / 2], [0.0, 0.0, 1.0]])
    from_c = np.array([[1.0, 0.0, res / 2], [0.0, 1.0, res / 2], [0.0, 0.0, 1.0]])
    t = from_c @ rot @ to_c @ t
  if flip:
    t = np.array([[-1.0, 0.0, res - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ t
  return t[:2]


def transform_keypoints(kp: np.ndarray, mat: np.ndarray, flip: bool,
                        flip_index) -> np.ndarray:
  """Applies [2, 3] `mat` to kp [P, J, 3] (x, y; visibility kept) and permutes joints if flipped."""
  kp = np.asarray(kp, np.float32)
  xy = kp[..., :2].astype(np.float64) @ mat[:, :2].T + mat[:, 2]
  res = np.concatenate([xy.astype(np.float32), kp[..., 2:]], axis=-1)
  return res[:, list(flip_index)] if flip else res
