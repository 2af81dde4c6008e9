"""refine of the HigherHRNet parser (spec 6.3) as an exact branch and bound over map tiles.

For every missing (person, joint) pair the official code scores every pixel of the joint's map:
heatmap - round(||tag - person mean tag||), and keeps the argmax. Here all pairs are solved at once
and only where they can win: 5x5 (or 10x10 on large maps) tiles carry their heatmap maximum and the
box holding every tag vector read in them, which bound the score of each pixel inside from above
and the score of the tile's best pixel from below. Only tiles whose upper bound reaches a pair's
best lower bound are scored pixel by pixel, there only where the heatmap reaches that bound; ties
keep the first pixel in row-major order, like np.argmax. The answer equals the dense argmax.
"""
from __future__ import annotations

import numpy as np

from litepose_jax.inference.tags import TagMaps

# Refine works on 5x5 tiles (small enough that a tile's maximum bounds its pixels tightly),
# grouped 2x2 on large maps so that the per-person bounds stay cheap.
TILE = _TILE = 5
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


def _norm_of_parts(parts: list[np.ndarray]) -> np.ndarray:
  """_norm of non-negative components given one array each (same arithmetic, no stacked copy)."""
  if len(parts) == 1:
    return parts[0]
  total = parts[0] * parts[0]
  for p in parts[1:]:
    total = total + p * p
  return np.sqrt(total)


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


def block_max(hm: np.ndarray) -> np.ndarray:
  """Maxima of the 5x5 blocks of hm [H, W, J] -> [ceil(H / 5), ceil(W / 5), J] (edge blocks: the
  pixels inside the map)."""
  # Rows first: the row pass works on contiguous rows and leaves a fifth of the map for the
  # column pass.
  rows = _range_reduce(hm, 0, *_tile_ranges(hm.shape[0], _TILE), np.maximum)
  return _range_reduce(rows, 1, *_tile_ranges(hm.shape[1], _TILE), np.maximum)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
  """(row, column) offsets of the cells of an n x n grid, row-major."""
  return tuple(a.reshape(-1) for a in np.meshgrid(np.arange(n), np.arange(n), indexing='ij'))


# Offsets (row, column) of the pixels of a 5x5 block, and of the 5x5 blocks of a 1x1 / 2x2 tile.
BLOCK_OFFSETS = _grid(_TILE)
_SUB_TILES = {1: _grid(1), 2: _grid(2)}


class _Tiles:
  """Per tile and joint: heatmap maximum and the box holding every tag vector read in the tile."""

  def __init__(self, hm: np.ndarray, tag_maps: TagMaps, hmax5: np.ndarray | None = None,
               pooled: np.ndarray | None = None):
    height, width, num_joints = hm.shape
    k = 2 if height * width > _LARGE_MAP else 1
    self.size = size = _TILE * k
    self.height, self.width = height, width
    ny5, nx5 = -(-height // _TILE), -(-width // _TILE)
    exact5 = np.ones(ny5, bool), np.ones(nx5, bool)
    if hmax5 is not None:
      self.hmax5 = hmax5
    elif pooled is not None:
      # The NMS max filter at the block centres. Edge blocks are read at the last row/column: a
      # superset of the block, still an upper bound, but not a pixel of the block (not exact).
      r5 = np.minimum(np.arange(ny5) * _TILE + _TILE // 2, height - 1)
      c5 = np.minimum(np.arange(nx5) * _TILE + _TILE // 2, width - 1)
      self.hmax5 = pooled[r5][:, c5]
      exact5 = r5 == np.arange(ny5) * _TILE + _TILE // 2, c5 == np.arange(nx5) * _TILE + _TILE // 2
    else:
      self.hmax5 = block_max(hm)
    self.ny, self.nx = -(-height // size), -(-width // size)
    exact_r, exact_c = exact5
    hmax = self.hmax5
    if k > 1:
      hmax = _range_reduce(hmax, 0, *_tile_ranges(ny5, k), np.maximum)
      hmax = _range_reduce(hmax, 1, *_tile_ranges(nx5, k), np.maximum)
      exact_r = _range_reduce(exact_r, 0, *_tile_ranges(ny5, k), np.minimum)
      exact_c = _range_reduce(exact_c, 0, *_tile_ranges(nx5, k), np.minimum)
    self.hmax = np.ascontiguousarray(hmax.reshape(-1, num_joints).T)  # [J, tiles]
    # Tiles whose maximum is a pixel of their own (the lower bound needs one).
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
    self.offsets = BLOCK_OFFSETS
    self.sub = _SUB_TILES[k]

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
    dmin, dmax = _norm_of_parts(near), _norm_of_parts(far)
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


def refine(found: np.ndarray, person_pix: np.ndarray, hm: np.ndarray, tag_maps: TagMaps,
           hmax5: np.ndarray | None = None,
           pooled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Best pixel of each missing (person, joint) pair: argmax of heatmap - round(||tag - mean tag||).

  found, person_pix [N, J]: detected joints and their flat pixel indices (y * W + x); hm [H, W, J];
  hmax5 / pooled: block_max(hm) / the 5x5 max filter of hm when the peak search computed one
  (else None). Returns (person
  [Q], joint [Q], pixel [Q]) for the Q missing pairs, the mean tag taken over each person's
  detected joints (the module docstring has the method).
  """
  num_joints = hm.shape[2]
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

  tiles = _Tiles(hm, tag_maps, hmax5, pooled)
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
  return qp, qj, best_pix
