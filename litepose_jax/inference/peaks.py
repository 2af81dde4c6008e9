"""Peak search of the HigherHRNet parser (official lib/core/group.py): NMS by 5x5 max and top-k
per joint, compiled.

The official code max-pools each whole heatmap (5x5, stride 1), keeps the pixels equal to their
pooled value, takes the top k of every joint map and drops values <= the detection threshold. The
same candidates come from one pass that records the maxima of the 5x5 blocks of the map (refine
reuses them as tile bounds) and a neighbour check of the pixels above the threshold inside the
blocks that reach it: a window clipped to the map reads the same values as max-pooling with -inf
padding. Equal values are ordered by pixel index (torch.topk leaves their order unspecified).
"""
from __future__ import annotations

import numba
import numpy as np

BLOCK = 5  # the NMS window and the block side
# Window offsets nearest first: on smooth maps almost every non-peak has a larger direct
# neighbour, so the first comparisons dismiss nearly all pixels.
_WINDOW = sorted(((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx),
                 key=lambda d: (d[0] * d[0] + d[1] * d[1], d))
_WINDOW_DY = np.array([d[0] for d in _WINDOW], np.int64)
_WINDOW_DX = np.array([d[1] for d in _WINDOW], np.int64)
_DIRECT = 4  # the first four offsets are the direct neighbours (compared first, branch-free)
assert sorted(_WINDOW[:_DIRECT]) == [(-1, 0), (0, -1), (0, 1), (1, 0)]


@numba.njit(cache=True, nogil=True)
def block_max(hm: np.ndarray) -> np.ndarray:
  """Maxima of the 5x5 blocks of hm [H, W, J] -> [ceil(H / 5), ceil(W / 5), J] (edge blocks: the
  pixels inside the map)."""
  height, width, num_joints = hm.shape
  ny, nx = -(-height // BLOCK), -(-width // BLOCK)
  out = np.empty((ny, nx, num_joints), hm.dtype)
  rows = hm.reshape(height, width * num_joints)
  band = np.empty(width * num_joints, hm.dtype)
  for by in range(ny):
    # The rows of a band first (whole contiguous rows), then the columns of each block.
    band[:] = rows[by * BLOCK]
    for y in range(by * BLOCK + 1, min(by * BLOCK + BLOCK, height)):
      row = rows[y]
      for i in range(band.size):
        band[i] = max(band[i], row[i])
    for bx in range(nx):
      for j in range(num_joints):
        out[by, bx, j] = band[bx * BLOCK * num_joints + j]
      for x in range(bx * BLOCK + 1, min(bx * BLOCK + BLOCK, width)):
        for j in range(num_joints):
          out[by, bx, j] = max(out[by, bx, j], band[x * num_joints + j])
  return out


@numba.njit(cache=True, nogil=True)
def _local_maxima(hm, hmax5, threshold):
  """(flat index into [H, W, J], value) of the pixels above threshold that equal the maximum of
  their 5x5 window (clipped to the map), read in the blocks whose maximum passes the threshold."""
  height, width, num_joints = hm.shape
  found = 0
  idx = np.empty(64, np.int64)
  val = np.empty(64, hm.dtype)
  for by in range(hmax5.shape[0]):
    for bx in range(hmax5.shape[1]):
      for j in range(num_joints):
        if not hmax5[by, bx, j] > threshold:
          continue
        for y in range(by * BLOCK, min(by * BLOCK + BLOCK, height)):
          up, down = max(y - 1, 0), min(y + 1, height - 1)
          for x in range(bx * BLOCK, min(bx * BLOCK + BLOCK, width)):
            v = hm[y, x, j]
            # Direct neighbours first, without branches (clamped reads compare v with itself at
            # the borders): nearly every non-peak has a larger one on smooth maps.
            left, right = max(x - 1, 0), min(x + 1, width - 1)
            if not ((v > threshold) & (v >= hm[up, x, j]) & (v >= hm[down, x, j])
                    & (v >= hm[y, left, j]) & (v >= hm[y, right, j])):
              continue
            peak = True
            for k in range(_DIRECT, _WINDOW_DY.size):
              yy, xx = y + _WINDOW_DY[k], x + _WINDOW_DX[k]
              if 0 <= yy < height and 0 <= xx < width and not v >= hm[yy, xx, j]:
                peak = False
                break
            if peak:
              if found == idx.size:
                idx = np.concatenate((idx, np.empty(idx.size, np.int64)))
                val = np.concatenate((val, np.empty(val.size, hm.dtype)))
              idx[found] = (y * width + x) * num_joints + j
              val[found] = v
              found += 1
  return idx[:found], val[:found]


def find_peaks(heatmaps: np.ndarray, max_people: int, threshold: float):
  """Per joint the top-`max_people` 5x5 local maxima above `threshold` of heatmaps [H, W, J].

  Returns (pix, val, joint, start, hmax5): flat arrays sorted by joint, value (descending) and
  pixel (the candidates of joint j are [start[j], start[j + 1])), and block_max(heatmaps).
  """
  hm = np.ascontiguousarray(heatmaps, np.float32)
  num_joints = hm.shape[2]
  hmax5 = block_max(hm)
  # float32 threshold: numpy and torch compare float32 maps with the threshold cast to float32.
  idx, val = _local_maxima(hm, hmax5, np.float32(threshold))
  pix, joint = np.divmod(idx, num_joints)
  order = np.lexsort((pix, -val, joint))
  pix, val, joint = pix[order], val[order], joint[order]
  start = np.searchsorted(joint, np.arange(num_joints + 1))
  # Keep the first max_people of each joint.
  rank = np.arange(joint.size) - start[joint]
  keep = rank < max_people
  if not keep.all():
    pix, val, joint = pix[keep], val[keep], joint[keep]
    start = np.searchsorted(joint, np.arange(num_joints + 1))
  return pix, val, joint, start, hmax5
