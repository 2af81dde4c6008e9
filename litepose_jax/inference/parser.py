"""Fast associative-embedding grouping: the HigherHRNet parser of spec 6.3, vectorised.

`parse_poses(heatmaps [H, W, J], tags [h, w, J, T])` returns (poses [N, J, 3], scores [N]) with
poses holding x, y in heatmap pixels and the heatmap value; missing joints are (0, 0, 0).

Same rules as the official HeatmapParser (NMS by 5x5 max, top-k per joint, matching in the spec's
joint order with a Hungarian assignment, adjust, person score, refine) with these implementation
choices, none of which changes the answer on maps without exact ties:
- NMS and top-k only look at pixels above the detection threshold (the official code takes the
  top-k of the whole NMS'd map and drops values <= threshold afterwards: same candidates).
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
  discards the detected ones), and only in 4x4 blocks whose upper bound can still reach the best
  score (exact branch and bound, see `_refine`); ties keep the first pixel in row-major order,
  like np.argmax.
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
    self.flat = tags.reshape(h * w, self.num_joints, self.dim)
    if not self.same:
      self.rows = source_index(height, h)
      self.cols = source_index(width, w)

  def at(self, pix: np.ndarray, joint) -> np.ndarray:
    """Tag vectors [n, T] float32 at flat pixel indices `pix` (y * W + x) of joint(s) `joint`."""
    pix = np.asarray(pix, np.int64)
    if self.same:
      return self.flat[pix, joint]
    y, x = np.divmod(pix, self.width)
    w_src = self.tags.shape[1]
    y0, y1, ly = (a[y] for a in self.rows)
    x0, x1, lx = (a[x] for a in self.cols)
    one = np.float32(1.0)
    ly, lx = ly[:, None], lx[:, None]
    top = (one - lx) * self.flat[y0 * w_src + x0, joint] + lx * self.flat[y0 * w_src + x1, joint]
    bot = (one - lx) * self.flat[y1 * w_src + x0, joint] + lx * self.flat[y1 * w_src + x1, joint]
    return ((one - ly) * top + ly * bot).astype(np.float32)


def find_peaks(heatmaps: np.ndarray, max_people: int, threshold: float):
  """Per joint the top-`max_people` 5x5 local maxima above `threshold`.

  Returns (pix, val, joint, start) as flat arrays sorted by joint, value (descending) and pixel;
  the candidates of joint j are [start[j], start[j + 1]).
  """
  h, w, j = heatmaps.shape
  flat = heatmaps.reshape(-1)
  idx = np.flatnonzero(flat > threshold)
  if idx.size:
    # Replicated borders give the same maxima as max-pooling with -inf padding.
    pooled = _max_filter5(heatmaps).reshape(-1)
    idx = idx[flat[idx] == pooled[idx]]
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
  return pix, val, joint, start


def _max_filter5(x: np.ndarray) -> np.ndarray:
  """5x5 max filter of [H, W, C] float32 (OpenCV handles at most 512 channels per call)."""
  x = np.ascontiguousarray(x, np.float32)
  if x.shape[2] <= 512:
    return cv2.dilate(x, _NMS_KERNEL, borderType=cv2.BORDER_REPLICATE).reshape(x.shape)
  return np.concatenate([_max_filter5(x[..., i:i + 512]) for i in range(0, x.shape[2], 512)], -1)


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


def _scores(hm_vals: np.ndarray, tag_vals: np.ndarray, means: np.ndarray) -> np.ndarray:
  """[P, n] float32 heatmap - round(||tag - mean||), the official refine arithmetic."""
  diff = tag_vals[None, :, :] - means[:, None, :]
  if diff.shape[-1] == 1:
    dist = np.abs(diff[..., 0])  # sqrt(x * x) == |x| exactly in binary floating point
  else:
    dist = np.sqrt((diff * diff).sum(axis=-1))
  return hm_vals[None, :] - np.round(dist)


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

  pix, val, joint, start = find_peaks(hm, max_people, detection_threshold)
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
    _refine(poses, found, person_pix, hm, tag_maps)
  return poses, scores


_BLOCK = 4
# Blocks per person scored exactly first; their best score prunes the rest.
_PROBE_BLOCKS = 64


def _block_edges(n_out: int, block: int, index) -> tuple[np.ndarray, np.ndarray]:
  """Inclusive source-index ranges [lo, hi] read by each output block of `block` pixels."""
  starts = np.arange(0, n_out, block)
  ends = np.minimum(starts + block, n_out) - 1
  if index is None:
    return starts, ends
  i0, i1, _ = index
  return i0[starts], i1[ends]


def _range_reduce(x: np.ndarray, axis: int, lo: np.ndarray, hi: np.ndarray, fn) -> np.ndarray:
  """fn-reduction of x over index ranges [lo[b], hi[b]] along axis -> one entry per range."""
  return np.stack([fn(np.take(x, np.arange(a, b + 1), axis=axis), axis=axis)
                   for a, b in zip(lo, hi)], axis=axis)


class _Blocks:
  """Per 4x4 pixel block and joint: heatmap maximum and the box holding every tag vector."""

  def __init__(self, hm: np.ndarray, tag_maps: TagMaps):
    height, width, num_joints = hm.shape
    b = _BLOCK
    self.nby, self.nbx = -(-height // b), -(-width // b)
    pad = np.full((self.nby * b, self.nbx * b, num_joints), -np.inf, np.float32)
    pad[:height, :width] = hm
    self.hmax = pad.reshape(self.nby, b, self.nbx, b, num_joints).max(axis=(1, 3))
    rows = _block_edges(height, b, None if tag_maps.same else tag_maps.rows)
    cols = _block_edges(width, b, None if tag_maps.same else tag_maps.cols)
    t = tag_maps.tags
    if tag_maps.same:
      # Blocks align with the tag pixels: edge padding keeps the ranges, a reshape reduces them.
      tp = np.pad(t, ((0, self.nby * b - height), (0, self.nbx * b - width), (0, 0), (0, 0)),
                  mode='edge').reshape(self.nby, b, self.nbx, b, num_joints, -1)
      self.tmin, self.tmax = tp.min(axis=(1, 3)), tp.max(axis=(1, 3))
    else:
      self.tmin = _range_reduce(_range_reduce(t, 0, *rows, np.min), 1, *cols, np.min)
      self.tmax = _range_reduce(_range_reduce(t, 0, *rows, np.max), 1, *cols, np.max)
    oy, ox = np.meshgrid(np.arange(b), np.arange(b), indexing='ij')
    self.offsets = (oy.ravel(), ox.ravel())
    self.height, self.width = height, width

  def upper_bounds(self, j: int, means: np.ndarray) -> np.ndarray:
    """[P, nby * nbx] upper bound of heatmap - round(||tag - mean||) within each block."""
    lo = self.tmin[:, :, j].reshape(-1, means.shape[1])
    hi = self.tmax[:, :, j].reshape(-1, means.shape[1])
    m = means[:, None, :]
    gap = np.maximum(np.maximum(lo[None] - m, m - hi[None]), np.float32(0.0))
    dmin = gap[..., 0] if gap.shape[-1] == 1 else np.sqrt((gap * gap).sum(-1))
    # Rounding is monotonic; the margin keeps the bound safe against float32 distance error.
    kmin = np.round(np.maximum(dmin - np.float32(1e-3), np.float32(0.0)))
    # float32 like the scores, so that a block's bound is never below its exact best score.
    return self.hmax[:, :, j].reshape(1, -1) - kmin.astype(np.float32)

  def pixels(self, blocks: np.ndarray, keep_shape: bool = False) -> np.ndarray:
    """Flat pixel indices (y * W + x) inside the given blocks.

    keep_shape: [len(blocks), B * B] with -1 for pixels outside the map; else only valid ones.
    """
    by, bx = np.divmod(np.asarray(blocks), self.nbx)
    y = by[:, None] * _BLOCK + self.offsets[0][None]
    x = bx[:, None] * _BLOCK + self.offsets[1][None]
    ok = (y < self.height) & (x < self.width)
    if keep_shape:
      return np.where(ok, y * self.width + x, -1)
    return y[ok] * self.width + x[ok]


def _person_pixel_max(blocks, rows, cols, flat_hm, tag_maps, means, j, per_block, n=None):
  """Best score and its first pixel per person over the (person row, block) pairs given.

  Returns (best [n], pixel [n]); every person must own at least one pair.
  """
  pix = blocks.pixels(cols, keep_shape=True)  # [pairs, per_block], -1 outside the map
  person = np.repeat(rows, per_block)
  pix = pix.reshape(-1)
  inside = pix >= 0
  person, pix = person[inside], pix[inside]
  tv = tag_maps.at(pix, j)
  diff = tv - means[person]
  if diff.shape[-1] == 1:
    dist = np.abs(diff[:, 0])
  else:
    dist = np.sqrt((diff * diff).sum(axis=-1))
  score = flat_hm[pix, j] - np.round(dist)
  # Pairs arrive grouped by person (np.nonzero order): segment reductions, no sort. Among equal
  # best scores keep the lowest pixel index (np.argmax's row-major tie rule).
  starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
  owners = person[starts]
  seg_max = np.maximum.reduceat(score, starts)
  at_max = score == np.repeat(seg_max, np.diff(np.r_[starts, score.size]))
  big = np.iinfo(np.int64).max
  n = int(rows.max()) + 1 if n is None else n
  best = np.full(n, -np.inf, np.float32)
  best_pix = np.zeros(n, np.int64)
  best[owners] = seg_max
  best_pix[owners] = np.minimum.reduceat(np.where(at_max, pix, big), starts)
  return best, best_pix


def _refine(poses, found, person_pix, hm, tag_maps) -> None:
  """Fills missing joints in place: argmax of heatmap - round(||tag - person mean tag||).

  Exact: each person's maximum is searched only in 4x4 blocks whose upper bound (block heatmap max
  minus the rounded distance from the mean tag to the block's tag box) reaches the best score found
  in the most promising blocks; equal scores keep the first pixel in row-major order.
  """
  height, width, num_joints = hm.shape
  flat_hm = hm.reshape(height * width, num_joints)
  flat = hm.reshape(-1)
  n = poses.shape[0]
  dim = tag_maps.dim
  # Mean tag of each person's detected joints, summed in joint order like np.mean over the list.
  tag_sum = np.zeros((n, dim), np.float32)
  for j in range(num_joints):
    sel = found[:, j]
    if sel.any():
      tag_sum[sel] += tag_maps.at(person_pix[sel, j], j)
  means = (tag_sum / found.sum(axis=1, dtype=np.float32)[:, None]).astype(np.float32)
  blocks = _Blocks(hm, tag_maps)
  per_block = _BLOCK * _BLOCK
  for j in np.flatnonzero((~found).any(axis=0)):
    people = np.flatnonzero(~found[:, j])
    ub = blocks.upper_bounds(j, means[people])
    # Exact scores in each person's most promising blocks give a lower bound on its maximum.
    k = min(_PROBE_BLOCKS, ub.shape[1])
    top = np.argpartition(-ub, k - 1, axis=1)[:, :k]
    best0 = _person_pixel_max(blocks, np.repeat(np.arange(people.size), k), top.reshape(-1),
                              flat_hm, tag_maps, means[people], j, per_block, people.size)[0]
    rows, cols = np.nonzero(ub >= best0[:, None])
    _, best_pix = _person_pixel_max(blocks, rows, cols, flat_hm, tag_maps, means[people], j,
                                    per_block, people.size)
    bval = flat_hm[best_pix, j]
    x, y = _quarter_offsets(flat, height, width, num_joints, best_pix, np.full(best_pix.size, j))
    write = bval > 0
    poses[people[write], j, 0] = x[write]
    poses[people[write], j, 1] = y[write]
    poses[people[write], j, 2] = bval[write]
