"""Tag maps read at pixels of the heatmap grid (bilinear when the tags have a lower resolution).

The official PROJECT2IMAGE grouping resizes the stride-2 tag maps to the input size (bilinear,
align_corners=False) before grouping; TagMaps reads the same values at the few pixels grouping
looks at instead of resizing whole maps. `tag_at` is the one definition of that read (compiled, so
that refine's loops use it too).
"""
from __future__ import annotations

import numba
import numpy as np


def source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(i0, i1, lambda) of a bilinear resize in_size -> out_size, align_corners=False (torch)."""
  scale = np.float32(in_size / out_size)
  src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
  src = np.maximum(src, np.float32(0.0))
  i0 = src.astype(np.int64)
  i1 = np.minimum(i0 + 1, in_size - 1)
  lam = (src - i0.astype(np.float32)).astype(np.float32)
  return i0, i1, lam


@numba.njit(cache=True, nogil=True)
def tag_at(tags, same, rows, rows1, row_w, cols, cols1, col_w, y, x, j, d):
  """Component d of joint j's tag at heatmap pixel (y, x) of tags [h, w, J, T]: stored (same), or
  torch's bilinear resize at that pixel ((rows, rows1, row_w) / (cols, ...) from source_index)."""
  if same:
    return tags[y, x, j, d]
  one = np.float32(1.0)
  ly, lx = row_w[y], col_w[x]
  y0, y1, x0, x1 = rows[y], rows1[y], cols[x], cols1[x]
  top = (one - lx) * tags[y0, x0, j, d] + lx * tags[y0, x1, j, d]
  bot = (one - lx) * tags[y1, x0, j, d] + lx * tags[y1, x1, j, d]
  return (one - ly) * top + ly * bot


@numba.njit(cache=True, nogil=True)
def _tags_at(tags, same, rows, rows1, row_w, cols, cols1, col_w, width, pix, joint):
  out = np.empty((pix.size, tags.shape[3]), np.float32)
  for i in range(pix.size):
    for d in range(tags.shape[3]):
      out[i, d] = tag_at(tags, same, rows, rows1, row_w, cols, cols1, col_w, pix[i] // width,
                         pix[i] % width, joint[i], d)
  return out


class TagMaps:
  """Tag maps [h, w, J, T] read at pixels of an [H, W] grid (bilinear when the sizes differ).

  lerp = (rows, rows1, row_w, cols, cols1, col_w): per heatmap row / column the source indices and
  weight that tag_at takes (identity and 0 when the sizes agree).
  """

  def __init__(self, tags: np.ndarray, height: int, width: int):
    tags = np.asarray(tags, np.float32)
    if tags.ndim == 3:
      tags = tags[..., None]
    if tags.ndim != 4:
      raise ValueError(f'tags must have shape [H, W, J, T] (or [H, W, J]), got {tags.shape}')
    self.tags = np.ascontiguousarray(tags)
    self.height, self.width = height, width
    h, w, self.num_joints, self.dim = tags.shape
    self.same = (h, w) == (height, width)
    if self.same:
      self.rows, self.cols = ((np.arange(n), np.arange(n), np.zeros(n, np.float32))
                              for n in (height, width))
    else:
      self.rows = source_index(height, h)
      self.cols = source_index(width, w)
    self.lerp = (*self.rows, *self.cols)

  def at(self, pix: np.ndarray, joint) -> np.ndarray:
    """Tag vectors [n, T] float32 at flat pixel indices `pix` [n] (y * W + x) of joint(s) `joint`."""
    pix = np.asarray(pix, np.int64).reshape(-1)
    joint = np.ascontiguousarray(np.broadcast_to(np.asarray(joint, np.int64), pix.shape))
    return _tags_at(self.tags, self.same, *self.lerp, self.width, pix, joint)
