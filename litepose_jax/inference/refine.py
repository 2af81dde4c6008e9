"""refine of the HigherHRNet parser (official lib/core/group.py) as an exact branch and bound
over map tiles.

For every missing (person, joint) pair the official code scores every pixel of the joint's map:
heatmap - round(||tag - person mean tag||), and keeps the argmax. Here a compiled loop (numba)
visits, per pair, the 5x5 (or 10x10 on large maps) tiles hottest first: each tile's heatmap
maximum bounds the score of its pixels from above without reading a tag, and once it falls below
the best score the pair is known to reach, no later tile can win. Tiles that pass get the box
holding every tag vector read in them (computed once per joint and tile, on demand), which bounds
the score from above and the score of the tile's best pixel from below. The first tile of the
person's own tag region raises that bound to about its maximum, so a pair usually stops early
(45-90 of 2,880 tiles visited per pair on bench_decode's stride-2 maps). Pixels are scored only where the heatmap reaches the bounds; ties keep the first
pixel in row-major order, like np.argmax. The answer equals the dense argmax (same float32
arithmetic).
"""
from __future__ import annotations

import numba
import numpy as np

from litepose_jax.inference.peaks import BLOCK
from litepose_jax.inference.peaks import block_max
from litepose_jax.inference.tags import TagMaps
from litepose_jax.inference.tags import tag_at

# Refine works on the peak search's 5x5 blocks (small enough that a tile's maximum bounds its
# pixels tightly), grouped 2x2 on large maps so that the per-pair tile order stays short.
TILE = BLOCK
_LARGE_MAP = 100_000
# Hottest-first order by counting sort into value buckets (a full sort per joint costs more than
# the few extra tiles a coarse order visits).
_BUCKETS = 256


def _tile_ranges(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Inclusive [first, last] pixel of each tile of `size` pixels along an axis of n pixels."""
  lo = np.arange(0, n, size)
  return lo, np.minimum(lo + size, n) - 1


def tile_maxima(hm: np.ndarray, hmax5: np.ndarray | None = None) -> tuple[int, np.ndarray]:
  """(tile size, heatmap maximum per joint and tile [J, tiles], tiles row-major) of hm [H, W, J];
  hmax5: block_max(hm) when already computed."""
  height, width, num_joints = hm.shape
  if hmax5 is None:
    hmax5 = block_max(hm)
  if height * width > _LARGE_MAP:
    # 2x2 blocks per tile (edge tiles may hold one block row or column).
    ny, nx = -(-hmax5.shape[0] // 2), -(-hmax5.shape[1] // 2)
    padded = np.full((2 * ny, 2 * nx, num_joints), -np.inf, np.float32)
    padded[:hmax5.shape[0], :hmax5.shape[1]] = hmax5
    hmax5 = padded.reshape(ny, 2, nx, 2, num_joints).max(axis=(1, 3))
    return 2 * TILE, np.ascontiguousarray(hmax5.reshape(-1, num_joints).T)
  return TILE, np.ascontiguousarray(hmax5.reshape(-1, num_joints).T, np.float32)


@numba.njit(cache=True, nogil=True)
def _tag_box(tags, src_rows, src_cols, ty, tx, j, lo, hi):
  """lo / hi [T] <- min / max of joint j's tags over the source pixels of tile (ty, tx)."""
  for d in range(tags.shape[3]):
    lo[d] = hi[d] = tags[src_rows[ty, 0], src_cols[tx, 0], j, d]
  for y in range(src_rows[ty, 0], src_rows[ty, 1] + 1):
    for x in range(src_cols[tx, 0], src_cols[tx, 1] + 1):
      for d in range(tags.shape[3]):
        v = tags[y, x, j, d]
        lo[d] = min(lo[d], v)
        hi[d] = max(hi[d], v)


@numba.njit(cache=True, nogil=True)
def _hottest_first(values, num_buckets, order, starts, bucket_max):
  """Counting sort of tiles by decreasing value into buckets of equal width: order [tiles] lists
  the tiles of bucket b at order[starts[b]:starts[b + 1]]; bucket_max [b] is the largest value
  of bucket b (-inf when empty), so buckets come in decreasing value."""
  top, bottom = values.max(), values.min()
  span = top - bottom
  scale = num_buckets / span if span > 0 and np.isfinite(span) else 0.0
  bucket = np.empty(values.size, np.int64)
  starts[:] = 0
  bucket_max[:] = -np.inf
  for t in range(values.size):
    x = (top - values[t]) * scale
    # NaN or out-of-range positions land in the last bucket (no undefined float -> int cast).
    b = int(x) if 0 <= x < num_buckets else num_buckets - 1
    bucket[t] = b
    starts[b + 1] += 1
    bucket_max[b] = max(bucket_max[b], values[t])
  for b in range(num_buckets):
    starts[b + 1] += starts[b]
  fill = starts[:-1].copy()
  for t in range(values.size):
    order[fill[bucket[t]]] = t
    fill[bucket[t]] += 1


@numba.njit(cache=True, nogil=True)
def _refine_pairs(hm, tags, same, rows, rows1, row_w, cols, cols1, col_w, size, hmax,
                  src_rows, src_cols, margin, person_pix, num_buckets):
  """(person [Q], joint [Q], best pixel [Q]) of the missing pairs of person_pix [N, J]. Tiles are
  visited hottest first (num_buckets value buckets per joint). See refine()."""
  # A numba kernel, longer than the ~80 lines of the rest of the package on purpose: the person
  # means, the tile order and the bound-and-scan loop share their arrays inside one compiled call,
  # and read top to bottom in the order refine()'s docstring describes them.
  height, width = hm.shape[0], hm.shape[1]
  num_joints, ntiles = hmax.shape
  dim = tags.shape[3]
  # Mean tag of each person's detected joints, summed in joint order like np.mean over the list.
  num_people = person_pix.shape[0]
  person_mean = np.zeros((num_people, dim), np.float32)
  num_pairs = 0
  for p in range(num_people):
    count = 0
    for j in range(num_joints):
      pix = person_pix[p, j]
      if pix < 0:
        num_pairs += 1
        continue
      count += 1
      for d in range(dim):
        person_mean[p, d] += tag_at(tags, same, rows, rows1, row_w, cols, cols1, col_w,
                                     pix // width, pix % width, j, d)
    for d in range(dim):
      person_mean[p, d] /= np.float32(count)
  pair_person = np.empty(num_pairs, np.int64)
  pair_joint = np.empty(num_pairs, np.int64)
  q = 0
  for p in range(num_people):
    for j in range(num_joints):
      if person_pix[p, j] < 0:
        pair_person[q], pair_joint[q] = p, j
        q += 1
  nx = src_cols.shape[0]
  box_lo = np.empty((num_joints, ntiles, dim), np.float32)
  box_hi = np.empty((num_joints, ntiles, dim), np.float32)
  known = np.zeros((num_joints, ntiles), np.bool_)
  order = np.empty((num_joints, ntiles), np.int64)
  starts = np.empty((num_joints, num_buckets + 1), np.int64)
  bucket_max = np.empty((num_joints, num_buckets), np.float32)
  sorted_joint = np.zeros(num_joints, np.bool_)
  zero, neg_inf = np.float32(0.0), np.float32(-np.inf)
  out = np.empty(pair_joint.size, np.int64)
  for q in range(pair_joint.size):
    j = pair_joint[q]
    mean = person_mean[pair_person[q]]
    if not sorted_joint[j]:
      _hottest_first(hmax[j], num_buckets, order[j], starts[j], bucket_max[j])
      sorted_joint[j] = True
    best, best_pix = neg_inf, np.int64(height * width)
    low = neg_inf
    for b in range(num_buckets):
      if bucket_max[j, b] < low or bucket_max[j, b] < best:
        if starts[j, b + 1] > starts[j, b]:
          break  # every later tile is colder: none can reach the bound
        continue
      for i in range(starts[j, b], starts[j, b + 1]):
        t = order[j, i]
        top = hmax[j, t]
        if top < low or top < best:
          continue
        if not known[j, t]:
          _tag_box(tags, src_rows, src_cols, t // nx, t % nx, j, box_lo[j, t], box_hi[j, t])
          known[j, t] = True
        # Distances from the mean to the box's nearest and farthest points (official norm order).
        near2, far2, near1, far1 = zero, zero, zero, zero
        for d in range(dim):
          lo = box_lo[j, t, d] - mean[d]
          hi = box_hi[j, t, d] - mean[d]
          a = max(max(lo, -hi), zero)
          c = max(-lo, hi)
          near1, far1 = a, c
          near2 += a * a
          far2 += c * c
        if dim > 1:
          near1, far1 = np.sqrt(near2), np.sqrt(far2)
        # round() and float32 arithmetic are monotonic and the box holds every tag read in the
        # tile: no pixel scores above top - round(near), its maximum pixel at least
        # top - round(far).
        low = max(low, top - np.rint(far1 + margin))
        upper = top - np.rint(max(near1 - margin, zero))
        if upper < low or upper < best:
          continue
        ty, tx = t // nx, t % nx
        for y in range(ty * size, min(ty * size + size, height)):
          for x in range(tx * size, min(tx * size + size, width)):
            h = hm[y, x, j]
            if h < low or h < best:
              continue
            if dim == 1:  # |v| is sqrt(v * v) exactly, and ~5% faster at 30 people
              dist = abs(tag_at(tags, same, rows, rows1, row_w, cols, cols1, col_w, y, x, j, 0)
                         - mean[0])
            else:
              total = zero
              for d in range(dim):
                v = (tag_at(tags, same, rows, rows1, row_w, cols, cols1, col_w, y, x, j, d)
                     - mean[d])
                total += v * v
              dist = np.sqrt(total)
            score = h - np.rint(dist)
            pix = y * width + x
            if score > best or (score == best and pix < best_pix):
              best, best_pix = score, pix
    out[q] = best_pix
  return pair_person, pair_joint, out


def refine(person_pix: np.ndarray, hm: np.ndarray, tag_maps: TagMaps,
           hmax5: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Best pixel of each missing (person, joint) pair: argmax of heatmap - round(||tag - mean tag||).

  person_pix [N, J]: flat pixel indices (y * W + x) of the detected joints, -1 where missing;
  hm [H, W, J]; hmax5: block_max(hm) when the peak search computed it. Returns (person [Q],
  joint [Q], pixel [Q]) for the Q missing pairs in row-major order, the mean tag taken over each
  person's detected joints (the module docstring has the method).
  """
  height, width, _ = hm.shape
  size, hmax = tile_maxima(hm, hmax5)
  rows, cols = _tile_ranges(height, size), _tile_ranges(width, size)
  # The source pixels each tile reads (bilinear tags are convex combinations of them).
  rows = tag_maps.rows[0][rows[0]], tag_maps.rows[1][rows[1]]
  cols = tag_maps.cols[0][cols[0]], tag_maps.cols[1][cols[1]]
  return _refine_pairs(
      hm, tag_maps.tags, tag_maps.same, *tag_maps.lerp, size, hmax, np.stack(rows, 1),
      np.stack(cols, 1),
      # Interpolated tags can leave the source box by float32 rounding: a margin on the distance.
      np.float32(0.0 if tag_maps.same else 1e-3), np.ascontiguousarray(person_pix, np.int64),
      _BUCKETS)
