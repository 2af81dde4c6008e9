"""Fast associative-embedding grouping: the HigherHRNet parser (official lib/core/group.py).

`parse_poses(heatmaps [H, W, J], tags [h, w, J, T])` returns (poses [N, J, 3], scores [N]) with
poses holding x, y in heatmap pixels and the heatmap value; missing joints are (0, 0, 0).

Same rules as the official HeatmapParser (NMS by 5x5 max, top-k per joint, matching in the official
joint order with a Hungarian assignment, adjust, person score, refine) with these implementation
choices, none of which changes the answer on maps without exact ties:
- NMS and top-k only look at pixels above the detection threshold (the official code takes the
  top-k of the whole NMS'd map and drops values <= threshold afterwards: same candidates), and
  NMS compares each such pixel with its 24 neighbours instead of max-filtering the whole map
  (compiled, inference/peaks.py). Equal values are ordered by pixel index (torch.topk leaves
  their order unspecified).
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
  discards the detected ones), and only in 5x5 or 10x10 tiles whose upper bound can still reach
  a score that the pair is known to attain (exact branch and bound, compiled, in
  inference/refine.py); ties keep the first pixel in row-major order, like np.argmax.
- Tags may be given at a lower resolution than the heatmaps: they are then bilinearly resized
  (align_corners=False, as the official PROJECT2IMAGE) only at the pixels that are read.
"""
from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

from litepose_jax import joints
from litepose_jax.inference import peaks as peaks_lib
from litepose_jax.inference import refine as refine_lib
from litepose_jax.inference.tags import TagMaps


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


@numba.njit(cache=True, nogil=True)
def _match_cost(c_tag, c_val, tag_sum, tag_cnt, g):
  """(distance [m, g], cost [m, max(m, g)]) of m candidates (tags c_tag [m, T], values c_val [m])
  to the first g people (tag sums / counts): the official float64 arithmetic on float32 means,
  cost = round(distance) * 100 - value, padded with 1e10 columns like the official code (solvers
  break exact cost ties by matrix layout, so the same matrix keeps the choice reproducible)."""
  m, dim = c_tag.shape
  dist = np.empty((m, g))
  cost = np.full((m, max(m, g)), 1e10)
  mean = np.empty(dim)
  for p in range(g):
    for d in range(dim):
      mean[d] = np.float64(tag_sum[p, d] / tag_cnt[p])  # float32 mean, then float64
    for i in range(m):
      total = 0.0
      for d in range(dim):
        diff = np.float64(c_tag[i, d]) - mean[d]
        total += diff * diff
      dist[i, p] = np.sqrt(total)
      cost[i, p] = np.rint(dist[i, p]) * 100.0 - np.float64(c_val[i])
  return dist, cost


@numba.njit(cache=True, nogil=True)
def _assign(j, rows, cols, dist, tag_threshold, c_pix, c_val, c_tag, person_pix, person_val,
            tag_sum, tag_cnt, n):
  """Adds joint j's candidates to the people: the assigned pairs (rows -> cols) closer than
  tag_threshold join their person, every other candidate starts a new one. Returns the count."""
  new = np.ones(c_pix.size, np.bool_)
  for k in range(rows.size):
    r, c = rows[k], cols[k]
    if c < dist.shape[1] and dist[r, c] < tag_threshold:
      person_pix[c, j] = c_pix[r]
      person_val[c, j] = c_val[r]
      tag_sum[c] += c_tag[r]
      tag_cnt[c] += 1
      new[r] = False
  for r in range(c_pix.size):
    if new[r]:
      person_pix[n, j] = c_pix[r]
      person_val[n, j] = c_val[r]
      tag_sum[n] = c_tag[r]
      tag_cnt[n] = 1
      n += 1
  return n


def parse_poses(heatmaps, tags, *, max_people: int = 30, detection_threshold: float = 0.1,
                tag_threshold: float = 1.0, adjust: bool = True, refine: bool = True,
                joint_order: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Groups joints into people: heatmaps [H, W, J], tags [h, w, J, T] -> poses [N, J, 3], scores [N].

  Poses hold x, y in heatmap pixels and the heatmap value (0 for missing joints). Tags at a lower
  resolution than the heatmaps are treated as bilinearly resized to the heatmap size. inf / NaN at
  a detected peak raise ValueError (NaN heatmap pixels are never above the threshold).
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
  order = tuple(joint_order) if joint_order is not None else joints.default_group_order(num_joints)
  if sorted(order) != list(range(num_joints)):
    raise ValueError(f'joint_order must be a permutation of 0..{num_joints - 1}, got {order}')
  dim = tag_maps.dim

  pix, val, joint, start, hmax5 = peaks_lib.find_peaks(hm, max_people, detection_threshold)
  cand_tags = tag_maps.at(pix, joint) if pix.size else np.zeros((0, dim), np.float32)
  if not (np.isfinite(val).all() and np.isfinite(cand_tags).all()):
    # The assignment cannot rank infinite or NaN costs; such maps come from a broken network.
    raise ValueError('heatmaps or tags hold inf / NaN at the detected peaks: the network outputs '
                     'are not valid (a diverged or broken model?)')

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
    if n:
      g = min(n, max_people)
      dist, cost = _match_cost(c_tag, c_val, tag_sum, tag_cnt, g)
      rows, cols = linear_sum_assignment(cost)
    else:
      dist = np.zeros((0, 0))
      rows = cols = np.zeros(0, np.int64)
    n = _assign(j, rows, cols, dist, np.float64(tag_threshold), c_pix, c_val, c_tag, person_pix,
                person_val, tag_sum, tag_cnt, n)

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
    qp, qj, best_pix = refine_lib.refine(person_pix, hm, tag_maps, hmax5)
    bval = flat[best_pix * num_joints + qj]
    x, y = _quarter_offsets(flat, height, width, num_joints, best_pix, qj)
    write = bval > 0  # the official code writes a refined joint only where the heatmap is positive
    qp, qj = qp[write], qj[write]
    poses[qp, qj, 0] = x[write]
    poses[qp, qj, 1] = y[write]
    poses[qp, qj, 2] = bval[write]
  return poses, scores
