"""Tag maps read at pixels of the heatmap grid (bilinear when the tags have a lower resolution).

The official PROJECT2IMAGE grouping resizes the stride-2 tag maps to the input size (bilinear,
align_corners=False) before grouping; TagMaps reads the same values at the few pixels grouping
looks at instead of resizing whole maps.
"""
from __future__ import annotations

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


class TagMaps:
  """Tag maps [h, w, J, T] read at pixels of an [H, W] grid (bilinear when the sizes differ)."""

  def __init__(self, tags: np.ndarray, height: int, width: int):
    tags = np.asarray(tags, np.float32)
    if tags.ndim == 3:
      tags = tags[..., None]
    if tags.ndim != 4:
      raise ValueError(f'tags must have shape [H, W, J, T] (or [H, W, J]), got {tags.shape}')
    self.tags = tags
    self.height, self.width = height, width
    h, w, self.num_joints, self.dim = tags.shape
    self.same = (h, w) == (height, width)
    self.tags_1d = np.ascontiguousarray(tags).reshape(-1)
    if not self.same:
      self.rows = source_index(height, h)
      self.cols = source_index(width, w)

  def at(self, pix: np.ndarray, joint) -> np.ndarray:
    """Tag vectors [n, T] float32 at flat pixel indices `pix` (y * W + x) of joint(s) `joint`."""
    pix = np.asarray(pix, np.int64)
    if self.same:
      return self._read(pix, joint)
    y, x = np.divmod(pix, self.width)
    w_src = self.tags.shape[1]
    y0, y1, ly = (a[y] for a in self.rows)
    x0, x1, lx = (a[x] for a in self.cols)
    one = np.float32(1.0)
    ly, lx = ly[:, None], lx[:, None]
    top = (one - lx) * self._read(y0 * w_src + x0, joint) + lx * self._read(y0 * w_src + x1, joint)
    bot = (one - lx) * self._read(y1 * w_src + x0, joint) + lx * self._read(y1 * w_src + x1, joint)
    return ((one - ly) * top + ly * bot).astype(np.float32)

  def _read(self, src: np.ndarray, joint) -> np.ndarray:
    """Stored tag vectors [n, T] at source pixels `src` (1-D takes: faster than 2-D indexing)."""
    base = (src * self.num_joints + joint) * self.dim
    if self.dim == 1:
      return np.take(self.tags_1d, base)[:, None]
    return np.take(self.tags_1d, base[:, None] + np.arange(self.dim))
