"""Fast associative-embedding grouping: the HigherHRNet parser of spec 6.3, vectorised.

`parse_poses(heatmaps [H, W, J], tags [h, w, J, T])` returns (poses [N, J, 3], scores [N]) with
poses holding x, y in heatmap pixels and the heatmap value; missing joints are (0, 0, 0).

Same rules as the official HeatmapParser (NMS by 5x5 max, top-k per joint, matching in the spec's
joint order with a Hungarian assignment, adjust, person score, refine) with these implementation
choices, none of which changes the answer on maps without exact ties:
- NMS and top-k only look at pixels above the detection threshold (the official code takes the
  top-k of the whole NMS'd map and drops values <= threshold afterwards: same candidates), and
  NMS compares each such pixel with its 24 neighbours instead of max-filtering the whole map.
  Equal values are ordered by pixel index (torch.topk leaves their order unspecified).
- The Hungarian step uses scipy's solver on the same 1e10-padded cost matrix instead of munkres:
  the same optimum, but cost = round(d) * 100 - value has exact ties whenever a candidate is
  equally far (after rounding) from several people, and then the two solvers may pick different
  assignments (and so accept or reject different candidates). On well-separated tags (trained
  networks, ground-truth maps) ties do not change the people found.
- People are list entries, not dict entries keyed by their first tag value: the official code merges
  two people whose tags are bitwise equal floats (a collision that real maps never produce).
- Running tag means are float32 sums in assignment order (numpy's mean can differ in the last ulp
  for one-dimensional tags and 8+ joints; only distances within 1 ulp of a rounding edge notice).
- refine is evaluated only for missing joints (the official code computes all J joints and
  discards the detected ones), for all missing (person, joint) pairs at once, and only in 5x5 or
  10x10 tiles whose upper bound can still reach a score that the pair is known to attain (exact
  branch and bound, see `_refine`; the tiles' tag boxes are gathered only for the tiles bounded
  when few are); ties keep the first pixel in row-major order, like np.argmax.
- Tags may be given at a lower resolution than the heatmaps: they are then bilinearly resized
  (align_corners=False, as the official PROJECT2IMAGE) only at the pixels that are read.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

# COCO visiting order; the official code cuts it to the first J entries for any joint count.
COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
_NMS_KERNEL = np.ones((5, 5), np.uint8)
# NMS reads each candidate's neighbours when there are fewer than 1 / _SPARSE_NMS of the map's
# values (measured: ~30-50 ns per candidate against ~0.5-0.9 ns per value for the dense filter).
_SPARSE_NMS = 48


def default_joint_order(num_joints: int) -> tuple[int, ...]:
  """The official grouping order for J joints (the COCO order cut to J entries)."""
  order = tuple(i for i in COCO_JOINT_ORDER[:num_joints])
  if len(order) != num_joints or sorted(order) != list(range(num_joints)):
    raise ValueError(f'no default grouping order for {num_joints} joints; pass joint_order')
  return order


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


def find_peaks(heatmaps: np.ndarray, max_people: int, threshold: float):
  """Per joint the top-`max_people` 5x5 local maxima above `threshold`.

  Returns (pix, val, joint, start) as flat arrays sorted by joint, value (descending) and pixel;
  the candidates of joint j are [start[j], start[j + 1]).
  """
  return _find_peaks(np.ascontiguousarray(heatmaps, np.float32), max_people, threshold)[:4]


def _find_peaks(heatmaps: np.ndarray, max_people: int, threshold: float):
  """find_peaks (pix, val, joint, start) of heatmaps [H, W, J], plus the 5x5 max filter [H, W, J]
  where it was computed (None otherwise)."""
  h, w, j = heatmaps.shape
  flat = heatmaps.reshape(-1)
  idx = np.flatnonzero(flat > threshold)
  pooled = None
  if idx.size * _SPARSE_NMS < flat.size:
    idx = _local_maxima5(flat, h, w, j, idx)
  elif idx.size:
    # Replicated borders give the same maxima as max-pooling with -inf padding.
    pooled = _max_filter5(heatmaps)
    idx = idx[flat[idx] == pooled.reshape(-1)[idx]]
  pix, joint = np.divmod(idx, j)
  val = flat[idx]
  order = np.lexsort((pix, -val, joint))
  pix, val, joint = pix[order], val[order], joint[order]
  start = np.searchsorted(joint, np.arange(j + 1))
  # Keep the first max_people of each joint.
  rank = np.arange(joint.size) - start[joint]
  keep = rank < max_people
  if not keep.all():
    pix, val, joint = pix[keep], val[keep], joint[keep]
    start = np.searchsorted(joint, np.arange(j + 1))
  return pix, val, joint, start, pooled


def _max_filter5(x: np.ndarray) -> np.ndarray:
  """5x5 max filter of [H, W, C] float32 (OpenCV handles at most 512 channels per call)."""
  x = np.ascontiguousarray(x, np.float32)
  if x.shape[2] <= 512:
    return cv2.dilate(x, _NMS_KERNEL, borderType=cv2.BORDER_REPLICATE).reshape(x.shape)
  return np.concatenate([_max_filter5(x[..., i:i + 512]) for i in range(0, x.shape[2], 512)], -1)


# Neighbour offsets of the 5x5 window, nearest first: on smooth maps almost every non-peak has a
# larger direct neighbour, so the first comparisons drop nearly all candidates.
_WINDOW5 = sorted(((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx),
                  key=lambda d: (d[0] * d[0] + d[1] * d[1], d))


def _local_maxima5(flat: np.ndarray, height: int, width: int, num_joints: int,
                   idx: np.ndarray) -> np.ndarray:
  """The entries idx [n] (sorted) of flat [H * W * J] that equal the 5x5 max of their joint's map.

  Same as comparing with a 5x5 max filter with replicated borders (equal to max-pooling with
  -inf padding), but only the candidates are read: a window clipped to the map reads the same
  values as the replicated border. Ties with a neighbour keep the candidate (plateaus stay).
  """
  pix = idx // num_joints
  y, x = np.divmod(pix, width)
  inner = (y >= 2) & (y < height - 2) & (x >= 2) & (x < width - 2)
  # Away from the borders a neighbour is a fixed flat offset: no clipping, one take per offset.
  keep = idx[inner]
  val = flat[keep]
  for dy, dx in _WINDOW5:
    if not keep.size:
      break
    ok = val >= np.take(flat, keep + (dy * width + dx) * num_joints)
    if not ok.all():
      keep, val = keep[ok], val[ok]
  edge = idx[~inner]
  if edge.size:
    # Few candidates lie within 2 pixels of a border: clipped coordinates, no compaction.
    joint = edge % num_joints
    ys = {d: np.clip(y[~inner] + d, 0, height - 1) * width for d in range(-2, 3)}
    xs = {d: np.clip(x[~inner] + d, 0, width - 1) for d in range(-2, 3)}
    val = flat[edge]
    alive = np.ones(edge.size, bool)
    for dy, dx in _WINDOW5:
      alive &= val >= flat[(ys[dy] + xs[dx]) * num_joints + joint]
    keep = np.sort(np.concatenate([keep, edge[alive]]))
  return keep


def _quarter_offsets(flat: np.ndarray, height: int, width: int, num_joints: int, pix: np.ndarray,
                     joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(dx, dy) = +-0.25 toward the larger neighbour (ties: -0.25), + 0.5 (official adjust)."""
  y, x = np.divmod(pix, width)
  at = lambda yy, xx: flat[(yy * width + xx) * num_joints + joint]
  right = at(y, np.minimum(x + 1, width - 1))
  left = at(y, np.maximum(x - 1, 0))
  down = at(np.minimum(y + 1, height - 1), x)
  up = at(np.maximum(y - 1, 0), x)
  dx = np.where(right > left, 0.75, 0.25)
  dy = np.where(down > up, 0.75, 0.25)
  return x + dx, y + dy


def parse_poses(heatmaps, tags, *, max_people: int = 30, detection_threshold: float = 0.1,
                tag_threshold: float = 1.0, adjust: bool = True, refine: bool = True,
                joint_order: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Groups joints into people: heatmaps [H, W, J], tags [h, w, J, T] -> poses [N, J, 3], scores [N].

  Poses hold x, y in heatmap pixels and the heatmap value (0 for missing joints). Tags at a lower
  resolution than the heatmaps are treated as bilinearly resized to the heatmap size.
  """
  hm = np.ascontiguousarray(heatmaps, np.float32)
  if hm.ndim != 3:
    raise ValueError(f'heatmaps must have shape [H, W, J], got {hm.shape}')
  height, width, num_joints = hm.shape
  tag_maps = TagMaps(tags, height, width)
  if tag_maps.num_joints != num_joints:
    raise ValueError(f'tags have {tag_maps.num_joints} joints but heatmaps have {num_joints}')
  if max_people <= 0:
    raise ValueError(f'max_people must be positive, got {max_people}')
  if detection_threshold < 0:
    raise ValueError(f'detection_threshold must be >= 0, got {detection_threshold}')
  order = tuple(joint_order) if joint_order is not None else default_joint_order(num_joints)
  if sorted(order) != list(range(num_joints)):
    raise ValueError(f'joint_order must be a permutation of 0..{num_joints - 1}, got {order}')
  dim = tag_maps.dim

  pix, val, joint, start, pooled = _find_peaks(hm, max_people, detection_threshold)
  cand_tags = tag_maps.at(pix, joint) if pix.size else np.zeros((0, dim), np.float32)

  # Grouping (match_by_tag). Each candidate can start a person: num candidates bounds N.
  cap = max(int(pix.size), 1)
  person_pix = np.full((cap, num_joints), -1, np.int64)
  person_val = np.zeros((cap, num_joints), np.float32)
  tag_sum = np.zeros((cap, dim), np.float32)
  tag_cnt = np.zeros(cap, np.float32)
  n = 0
  for j in order:
    lo, hi = start[j], start[j + 1]
    if hi == lo:
      continue
    c_pix, c_val, c_tag = pix[lo:hi], val[lo:hi], cand_tags[lo:hi]
    new = np.ones(hi - lo, bool)
    if n:
      g = min(n, max_people)
      means = tag_sum[:g] / tag_cnt[:g, None]
      diff = c_tag[:, None, :].astype(np.float64) - means[None, :, :].astype(np.float64)
      dist = np.sqrt((diff * diff).sum(axis=-1))
      cost = np.round(dist) * 100.0 - c_val[:, None].astype(np.float64)
      if cost.shape[0] > g:
        # Pad like the official code: solvers break exact cost ties by matrix layout, so the
        # same matrix keeps our choice among equally cheap assignments reproducible.
        cost = np.concatenate([cost, np.full((cost.shape[0], cost.shape[0] - g), 1e10)], 1)
      rows, cols = linear_sum_assignment(cost)
      real = cols < g
      rows, cols = rows[real], cols[real]
      ok = dist[rows, cols] < tag_threshold
      rows, cols = rows[ok], cols[ok]
      person_pix[cols, j] = c_pix[rows]
      person_val[cols, j] = c_val[rows]
      tag_sum[cols] += c_tag[rows]
      tag_cnt[cols] += 1
      new[rows] = False
    k = int(new.sum())
    person_pix[n:n + k, j] = c_pix[new]
    person_val[n:n + k, j] = c_val[new]
    tag_sum[n:n + k] = c_tag[new]
    tag_cnt[n:n + k] = 1
    n += k

  person_pix, person_val = person_pix[:n], person_val[:n]
  found = person_pix >= 0
  poses = np.zeros((n, num_joints, 3), np.float32)
  pi, ji = np.nonzero(found)
  flat = hm.reshape(-1)
  if adjust:
    x, y = _quarter_offsets(flat, height, width, num_joints, person_pix[pi, ji], ji)
  else:
    y, x = np.divmod(person_pix[pi, ji], width)
  poses[pi, ji, 0] = x
  poses[pi, ji, 1] = y
  poses[..., 2] = person_val
  scores = poses[..., 2].mean(axis=1, dtype=np.float64).astype(np.float32)

  if refine and n and not found.all():
    _refine(poses, found, person_pix, hm, tag_maps, pooled)
  return poses, scores


# Refine works on 5x5 tiles (small enough that a tile's maximum bounds its pixels tightly),
# grouped 2x2 on large maps so that the per-person bounds stay cheap.
_TILE = 5
_LARGE_MAP = 100_000
# Tag boxes are gathered per (joint, tile) while their pixels number less than 1 / _GATHER_COST of
# the map (measured: ~25 ns per gathered pixel against ~1 ns per pixel for whole-map passes; more
# than 25 because with many joints to fill, pairs often leave the hottest tiles and the whole-map
# passes follow anyway).
_GATHER_COST = 48
# Pixels of the candidate tiles scored in one go (bounds the memory of flat, plateau-like maps).
_CHUNK_PIXELS = 1 << 21


def _norm(v: np.ndarray, axis: int) -> np.ndarray:
  """Euclidean norm over `axis` of non-negative or signed float32 vectors, the official arithmetic
  (sum of squares, then sqrt; |x| for one component, which sqrt(x * x) equals exactly)."""
  if v.shape[axis] == 1:
    return np.abs(np.take(v, 0, axis=axis))
  if v.shape[axis] == 2:
    a, b = np.take(v, 0, axis=axis), np.take(v, 1, axis=axis)
    return np.sqrt(a * a + b * b)
  return np.sqrt((v * v).sum(axis=axis))


def _range_reduce(x: np.ndarray, axis: int, lo: np.ndarray, hi: np.ndarray, fn) -> np.ndarray:
  """fn-reduction (np.minimum / np.maximum) of x over index ranges [lo[b], hi[b]] along axis."""
  n, size = x.shape[axis], int(lo[1] - lo[0]) if lo.size > 1 else 1
  if size > 0 and np.array_equal((lo, hi), _tile_ranges(n, size)):
    # Consecutive tiles: strided views instead of gathered copies.
    at = lambda o: (slice(None),) * (axis % x.ndim) + (slice(o, None, size),)
    out = x[at(0)].copy()
    for o in range(1, size):
      part = x[at(o)]
      view = out[(slice(None),) * (axis % x.ndim) + (slice(0, part.shape[axis]),)]
      fn(view, part, out=view)
    return out
  out = np.take(x, lo, axis=axis)
  for o in range(1, int((hi - lo).max(initial=0)) + 1):
    fn(out, np.take(x, np.minimum(lo + o, hi), axis=axis), out=out)
  return out


def _tile_ranges(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Inclusive [first, last] pixel of each tile of `size` pixels along an axis of n pixels."""
  lo = np.arange(0, n, size)
  return lo, np.minimum(lo + size, n) - 1


class _Tiles:
  """Per tile and joint: heatmap maximum and the box holding every tag vector read in the tile."""

  def __init__(self, hm: np.ndarray, tag_maps: TagMaps, pooled: np.ndarray | None):
    height, width, num_joints = hm.shape
    k = 2 if height * width > _LARGE_MAP else 1
    self.size = size = _TILE * k
    self.height, self.width = height, width
    r5 = np.minimum(np.arange(-(-height // _TILE)) * _TILE + _TILE // 2, height - 1)
    c5 = np.minimum(np.arange(-(-width // _TILE)) * _TILE + _TILE // 2, width - 1)
    if pooled is not None:
      # The NMS max filter at the tile centres. Edge tiles are read at the last row/column: a
      # superset of the tile, still an upper bound, but not a pixel of the tile (not exact).
      self.hmax5 = pooled[r5][:, c5]
      exact5 = (r5 == np.arange(r5.size) * _TILE + _TILE // 2,
                c5 == np.arange(c5.size) * _TILE + _TILE // 2)
    else:
      # Block maxima, rows first: the row pass works on contiguous rows and leaves a fifth of the
      # map for the column pass.
      hmax5 = _range_reduce(hm, 0, *_tile_ranges(height, _TILE), np.maximum)
      self.hmax5 = _range_reduce(hmax5, 1, *_tile_ranges(width, _TILE), np.maximum)
      exact5 = np.ones(r5.size, bool), np.ones(c5.size, bool)
    self.ny, self.nx = -(-height // size), -(-width // size)
    hmax = _range_reduce(self.hmax5, 0, *_tile_ranges(self.hmax5.shape[0], k), np.maximum)
    hmax = _range_reduce(hmax, 1, *_tile_ranges(self.hmax5.shape[1], k), np.maximum)
    self.hmax = np.ascontiguousarray(hmax.reshape(-1, num_joints).T)  # [J, tiles]
    # Tiles whose maximum is a pixel of their own (the lower bound needs one).
    exact_r = _range_reduce(exact5[0], 0, *_tile_ranges(r5.size, k), np.minimum)
    exact_c = _range_reduce(exact5[1], 0, *_tile_ranges(c5.size, k), np.minimum)
    self.exact = (exact_r[:, None] & exact_c[None]).reshape(-1)
    rows, cols = _tile_ranges(height, size), _tile_ranges(width, size)
    if not tag_maps.same:
      # Bilinear tags are convex combinations of the source pixels that the tile reads.
      rows = tag_maps.rows[0][rows[0]], tag_maps.rows[1][rows[1]]
      cols = tag_maps.cols[0][cols[0]], tag_maps.cols[1][cols[1]]
    self.tag_rows, self.tag_cols = rows, cols
    self.tag_maps = tag_maps
    # Tag boxes are filled on demand (ensure_boxes): refine usually bounds only the hottest tiles
    # of the joints that have missing pairs.
    ntiles = self.ny * self.nx
    self.tag_lo = np.empty((num_joints, tag_maps.dim, ntiles), np.float32)  # [J, T, tiles]
    self.tag_hi = np.empty_like(self.tag_lo)
    self.known = np.zeros((num_joints, ntiles), bool)
    self.all_known = False
    # Interpolated tags can leave the source box by float32 rounding: a margin on the distance.
    self.margin = np.float32(0.0 if tag_maps.same else 1e-3)
    self.dim = tag_maps.dim
    oy, ox = np.meshgrid(np.arange(_TILE), np.arange(_TILE), indexing='ij')
    self.offsets = (oy.reshape(-1), ox.reshape(-1))
    sy, sx = np.meshgrid(np.arange(k), np.arange(k), indexing='ij')
    self.sub = (sy.reshape(-1), sx.reshape(-1))

  def ensure_boxes(self, joints: np.ndarray, tiles: np.ndarray) -> None:
    """Computes the tag boxes of joints [n] x tiles [n, m] (tiles of each joint) not yet known."""
    if self.all_known:
      return
    jj = np.broadcast_to(joints[:, None], tiles.shape)
    need = ~self.known[jj, tiles]
    jj, tt = jj[need], tiles[need]
    if not jj.size:
      return
    tag_maps = self.tag_maps
    t = tag_maps.tags
    (r_lo, r_hi), (c_lo, c_hi) = self.tag_rows, self.tag_cols
    ty, tx = np.divmod(tt, self.nx)
    ylo, yhi, xlo, xhi = r_lo[ty], r_hi[ty], c_lo[tx], c_hi[tx]
    sy, sx = int((yhi - ylo).max()) + 1, int((xhi - xlo).max()) + 1
    if jj.size * sy * sx * _GATHER_COST > t.size // tag_maps.dim:
      # Many boxes: strided range reductions over the whole map are cheaper than gathers.
      for fn, out in ((np.minimum, self.tag_lo), (np.maximum, self.tag_hi)):
        r = _range_reduce(_range_reduce(t, 0, r_lo, r_hi, fn), 1, c_lo, c_hi, fn)
        out[...] = r.reshape(-1, self.known.shape[0], tag_maps.dim).transpose(1, 2, 0)
      self.all_known = True
      return
    # Few boxes: read their pixels (offsets past a tile's last row/column repeat it).
    ys = np.minimum(ylo[:, None] + np.arange(sy), yhi[:, None])
    xs = np.minimum(xlo[:, None] + np.arange(sx), xhi[:, None])
    src = ys[:, :, None] * t.shape[1] + xs[:, None, :]  # [n, sy, sx]
    base = ((src * tag_maps.num_joints + jj[:, None, None]) * tag_maps.dim).reshape(jj.size, -1)
    # [n, T, px]: the reductions run along the contiguous last axis (fast inner loops).
    vals = np.take(tag_maps.tags_1d, base[:, None, :] + np.arange(tag_maps.dim)[:, None])
    self.tag_lo[jj, :, tt] = vals.min(axis=2)
    self.tag_hi[jj, :, tt] = vals.max(axis=2)
    self.known[jj, tt] = True

  def bounds(self, joints: np.ndarray, tiles: np.ndarray, means: np.ndarray):
    """(upper bound of heatmap - round(||tag - mean||) within each tile, lower bound of the
    tile's best score, -inf where unknown) for joints [P, 1], tiles [P, n], means [P, T]."""
    ntiles = self.hmax.shape[1]
    at = joints * ntiles + tiles  # flat [J, tiles] index: 1-D takes beat 3-index gathers
    lo_flat, hi_flat = self.tag_lo.reshape(-1), self.tag_hi.reshape(-1)
    zero = np.float32(0.0)
    near, far = [], []  # per tag component: distance to the box's nearest and farthest point
    for t in range(self.dim):
      idx = at + (joints * (self.dim - 1) + t) * ntiles
      m = means[:, t:t + 1]
      lo = np.take(lo_flat, idx) - m
      hi = np.take(hi_flat, idx) - m
      near.append(np.maximum(np.maximum(lo, -hi), zero))
      far.append(np.maximum(-lo, hi))
    dmin = _norm(np.stack(near), axis=0) if self.dim > 1 else near[0]
    dmax = _norm(np.stack(far), axis=0) if self.dim > 1 else far[0]
    # round() and float32 arithmetic are monotonic and the box holds every tag read in the tile:
    # no pixel scores above hmax - round(dmin), and the tile's maximum pixel scores at least
    # hmax - round(dmax).
    kmin = np.round(np.maximum(dmin - self.margin, zero))
    kmax = np.round(dmax + self.margin)
    hmax = np.take(self.hmax, at)
    return hmax - kmin, np.where(np.take(self.exact, tiles), hmax - kmax, -np.inf)

  def pixels(self, tiles: np.ndarray, joints: np.ndarray, low: np.ndarray):
    """Pixels of the tiles [n] (joints [n]) in 5x5 sub-tiles whose maximum reaches low [n].

    Returns (which [m], pix [m, 25], inside [m, 25]): the tile entry of each sub-tile, its flat
    pixel indices (outside the map: the sub-tile's first pixel, so that all can be read) and which
    are inside the map.
    """
    k = self.size // _TILE
    ty, tx = np.divmod(tiles, self.nx)
    sy = (ty[:, None] * k + self.sub[0][None]).reshape(-1)
    sx = (tx[:, None] * k + self.sub[1][None]).reshape(-1)
    which = np.repeat(np.arange(tiles.size), k * k)
    ny5, nx5 = self.hmax5.shape[:2]
    ok = (sy < ny5) & (sx < nx5)
    which, sy, sx = which[ok], sy[ok], sx[ok]
    ok = self.hmax5[sy, sx, joints[which]] >= low[which]
    which, sy, sx = which[ok], sy[ok], sx[ok]
    y = sy[:, None] * _TILE + self.offsets[0][None]
    x = sx[:, None] * _TILE + self.offsets[1][None]
    inside = (y < self.height) & (x < self.width)
    return which, np.where(inside, y * self.width + x, (y[:, :1] * self.width + x[:, :1])), inside


def _best_pixels(tiles, flat, tag_maps, means, qj, low, rows, cols) -> np.ndarray:
  """Per pair in rows (sorted, each present): first pixel of the best score in its tiles cols."""
  num_joints = flat.size // (tiles.height * tiles.width)
  # Inside the tiles only pixels whose heatmap reaches the bound can score above it: tags (the
  # costly reads, bilinear for low-resolution maps) are read for those alone.
  which, pix, inside = tiles.pixels(cols, qj[rows], low[rows])
  rows = rows[which]
  hm_vals = np.take(flat, pix * num_joints + qj[rows][:, None])
  r, c = np.nonzero(inside & (hm_vals >= low[rows][:, None]))
  who, pix, hm_vals = rows[r], pix[r, c], hm_vals[r, c]
  diff = tag_maps.at(pix, qj[who]) - means[who]
  score = hm_vals - np.round(_norm(diff, axis=1))
  # Every pair keeps a pixel (the maximum of its bound's tile): segment reductions give the best
  # score, then the lowest pixel index holding it (np.argmax's rule).
  seg = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
  top = np.maximum.reduceat(score, seg)
  hit = np.where(score == np.repeat(top, np.diff(np.r_[seg, who.size])), pix,
                 np.iinfo(np.int64).max)
  return np.minimum.reduceat(hit, seg)


def _refine(poses, found, person_pix, hm, tag_maps, pooled) -> None:
  """Fills missing joints in place: argmax of heatmap - round(||tag - person mean tag||).

  Exact branch and bound over tiles, for all missing (person, joint) pairs at once: a tile's upper
  bound is its heatmap maximum minus the rounded distance from the mean tag to the tile's tag box,
  its lower bound the same with the farthest box corner (its maximum pixel scores at least that).
  Pixels are scored only in tiles whose upper bound reaches the pair's best lower bound, and there
  only where the heatmap reaches it; equal scores keep the first pixel in row-major order, like
  np.argmax.
  """
  height, width, num_joints = hm.shape
  flat = hm.reshape(-1)
  dim = tag_maps.dim
  # Mean tag of each person's detected joints, summed in joint order like np.mean over the list
  # (adding the zeros of missing joints changes no sum).
  fp, fj = np.nonzero(found)
  per_joint = np.zeros((num_joints, found.shape[0], dim), np.float32)
  per_joint[fj, fp] = tag_maps.at(person_pix[fp, fj], fj)
  tag_sum = per_joint[0].copy()
  for j in range(1, num_joints):
    tag_sum += per_joint[j]
  means = (tag_sum / found.sum(axis=1, dtype=np.float32)[:, None]).astype(np.float32)

  tiles = _Tiles(hm, tag_maps, pooled)
  ntiles = tiles.hmax.shape[1]
  qp, qj = np.nonzero(~found)  # the missing (person, joint) pairs
  qm = means[qp]
  # Tiles by decreasing heatmap maximum, in growing sets (the hottest 1/32, 1/4, then all): a pair
  # whose best lower bound in a set exceeds the maximum of every tile outside it is settled there.
  low = np.full(qp.size, -np.inf, np.float32)
  rows, cols = [], []
  todo = np.arange(qp.size)
  for frac in (32, 4, 1):
    hot = max(ntiles // frac, 1)
    if hot == ntiles:
      cand = np.broadcast_to(np.arange(ntiles), (todo.size, ntiles))
      level = np.full(num_joints, -np.inf, np.float32)
    else:
      part = np.argpartition(tiles.hmax, ntiles - hot, axis=1)[:, ntiles - hot:]
      level = np.take_along_axis(tiles.hmax, part, axis=1).min(axis=1)
      cand = part[qj[todo]]
    joints = np.unique(qj[todo])
    tiles.ensure_boxes(joints, part[joints] if hot < ntiles else
                       np.broadcast_to(np.arange(ntiles), (joints.size, ntiles)))
    ub, lb = tiles.bounds(qj[todo][:, None], cand, qm[todo])
    low[todo] = np.maximum(low[todo], lb.max(axis=1))
    done = low[todo] > level[qj[todo]]
    r, c = np.nonzero((ub >= low[todo][:, None]) & done[:, None])
    rows.append(todo[r])
    cols.append(cand[r, c])
    todo = todo[~done]
    if not todo.size:
      break
  rows, cols = np.concatenate(rows), np.concatenate(cols)
  order = np.argsort(rows, kind='stable')
  rows, cols = rows[order], cols[order]
  # Pairs in chunks of about _CHUNK_PIXELS tile pixels (plateaus can keep whole maps).
  best_pix = np.empty(qp.size, np.int64)
  ends = np.searchsorted(rows, np.arange(qp.size), 'right')  # pair q: rows[starts[q]:ends[q]]
  starts = np.r_[0, ends[:-1]]
  budget = max(_CHUNK_PIXELS // tiles.size ** 2, 1)
  start = 0
  while start < qp.size:
    stop = max(int(np.searchsorted(ends, starts[start] + budget, 'right')), start + 1)
    sl = slice(starts[start], ends[stop - 1])
    best_pix[start:stop] = _best_pixels(tiles, flat, tag_maps, means[qp], qj, low, rows[sl],
                                        cols[sl])
    start = stop
  bval = flat[best_pix * num_joints + qj]
  x, y = _quarter_offsets(flat, height, width, num_joints, best_pix, qj)
  write = bval > 0
  qp, qj = qp[write], qj[write]
  poses[qp, qj, 0] = x[write]
  poses[qp, qj, 1] = y[write]
  poses[qp, qj, 2] = bval[write]
