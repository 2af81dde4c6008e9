"""From network outputs to the maps the parser groups: stages, flip test, scales.

As the official lib/core/inference.py (get_multi_stage_outputs, aggregate_results); see
docs/OFFICIAL.md, "Inference and grouping".

The official math (bilinear resize with align_corners=False as torch.nn.functional.interpolate):
`resize_bilinear` follows torch's float32 arithmetic exactly (the parser's lazy tag reads do the
same); the fusion used at inference resizes with OpenCV (same sampling grid, ~10x faster, values
within float rounding). `fuse_outputs_jax` is the same math inside jit, so that only the fused
stride-2 maps leave the device.
"""
from __future__ import annotations

from collections.abc import Sequence
import functools

import cv2
import jax.numpy as jnp
import numpy as np

from litepose_jax.inference.tags import source_index


def resize_bilinear(x, size: tuple[int, int]) -> np.ndarray:
  """[H, W, C] -> [h, w, C] float32, bilinear with align_corners=False (torch's arithmetic)."""
  x = np.asarray(x, np.float32)
  if x.ndim != 3:
    raise ValueError(f'resize_bilinear expects [H, W, C], got {x.shape}')
  h, w = size
  if (h, w) == x.shape[:2]:
    return x.copy()
  y0, y1, ly = source_index(h, x.shape[0])
  x0, x1, lx = source_index(w, x.shape[1])
  one = np.float32(1.0)
  # Columns first, once per source row (the official top and bottom rows are gathers of the
  # same values), in place: the same float32 operations as the textbook form, ~6x faster.
  lx = lx[None, :, None]
  cols = np.take(x, x0, axis=1)
  cols *= one - lx
  part = np.take(x, x1, axis=1)
  part *= lx
  cols += part
  ly = ly[:, None, None]
  out = np.take(cols, y0, axis=0)
  out *= one - ly
  part = np.take(cols, y1, axis=0)
  part *= ly
  out += part
  return out


def resize_fast(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """[H, W, C] -> [h, w, C] float32 with OpenCV (same sampling grid, float rounding may differ).

  Returns x itself (no copy) when it already has the size.
  """
  x = np.ascontiguousarray(x, np.float32)
  h, w = size
  if (h, w) == x.shape[:2]:
    return x
  # OpenCV takes at most 512 channels per call.
  chunks = [cv2.resize(x[..., i:i + 512], (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
            for i in range(0, x.shape[2], 512)]
  return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, -1)


def _resize_jax(x, size):
  """[B, H, W, C] -> [B, h, w, C] bilinear align_corners=False via gathers (no antialiasing)."""
  h, w = size
  if (h, w) == tuple(x.shape[1:3]):
    return x
  y0, y1, ly = source_index(h, x.shape[1])
  x0, x1, lx = source_index(w, x.shape[2])
  lx = jnp.asarray(lx)[None, None, :, None]
  ly = jnp.asarray(ly)[None, :, None, None]
  rows0, rows1 = x[:, y0], x[:, y1]
  top = (1 - lx) * rows0[:, :, x0] + lx * rows0[:, :, x1]
  bot = (1 - lx) * rows1[:, :, x0] + lx * rows1[:, :, x1]
  return (1 - ly) * top + ly * bot


def _check_outputs(out4: np.ndarray, out2: np.ndarray, num_joints: int) -> None:
  if out4.shape[-1] != 2 * num_joints or out2.shape[-1] != num_joints:
    raise ValueError(f'expected {2 * num_joints} and {num_joints} output channels, got '
                     f'{out4.shape[-1]} and {out2.shape[-1]}')


def fuse_stages(out4: np.ndarray, out2: np.ndarray, num_joints: int):
  """(out4 [H/4, W/4, 2J], out2 [H/2, W/2, J]) -> (heatmaps [H/2, W/2, J], tags [H/2, W/2, J, 1]).

  out4 is resized to out2's size; heatmaps are the mean of both stages, tags come from out4.
  """
  out4 = np.asarray(out4, np.float32)
  out2 = np.asarray(out2, np.float32)
  _check_outputs(out4, out2, num_joints)
  size = out2.shape[:2]
  heat = resize_fast(out4[..., :num_joints], size)
  heat += out2  # in place: fresh multi-MB arrays cost page faults, not just copies
  heat *= np.float32(0.5)
  return heat, resize_fast(out4[..., num_joints:], size)[..., None]


@functools.lru_cache(maxsize=16)
def _mirror_index(width: int, perm: tuple[int, ...]) -> np.ndarray:
  """Flat index into one [W * C] row: position (x, c) reads (W - 1 - x, perm[c])."""
  c = len(perm)
  return ((width - 1 - np.arange(width))[:, None] * c + np.asarray(perm)[None, :]).reshape(-1)


def unflip(x: np.ndarray, perm: Sequence[int]) -> np.ndarray:
  """Maps [H, W, C] of the width-flipped image back to the original frame: x[:, ::-1][..., perm].

  One gather per row (2-4x faster than flipping, then permuting channels).
  """
  x = np.ascontiguousarray(x, np.float32)
  h, w, c = x.shape
  if len(perm) != c:
    raise ValueError(f'permutation of {len(perm)} channels for maps with {c}')
  return np.take(x.reshape(h, w * c), _mirror_index(w, tuple(int(i) for i in perm)),
                 axis=1).reshape(h, w, c)


def fuse_flip_pair(out4, out2, out4_flip, out2_flip, num_joints: int, flip_index: Sequence[int]):
  """Official flip-test maps of an image and its width-flipped copy: out4 [H/4, W/4, 2J],
  out2 [H/2, W/2, J] each -> (heatmaps [H/2, W/2, J], tags [H/2, W/2, J, 2]).

  Heatmaps are the mean of both stages of both passes, tags the stride-4 tags of the image and of
  the unflipped mirror, stacked. The linear steps are reordered so that the flipped maps are
  unflipped and summed at stride 4 before one resize: the official values up to float rounding.
  """
  out4, out2, out4_flip, out2_flip = (np.asarray(a, np.float32)
                                      for a in (out4, out2, out4_flip, out2_flip))
  _check_outputs(out4, out2, num_joints)
  _check_outputs(out4_flip, out2_flip, num_joints)
  j = num_joints
  idx = np.asarray(flip_index)
  back4 = unflip(out4_flip, np.concatenate([idx, j + idx]))
  size = out2.shape[:2]
  heat = resize_fast(out4[..., :j] + back4[..., :j], size)
  heat += out2
  heat += unflip(out2_flip, idx)
  heat *= np.float32(0.25)
  tags4 = np.empty((*out4.shape[:2], j, 2), np.float32)
  tags4[..., 0] = out4[..., j:]
  tags4[..., 1] = back4[..., j:]
  tags = resize_fast(tags4.reshape(*out4.shape[:2], 2 * j), size).reshape(*size, j, 2)
  return heat, tags


def fuse_outputs_jax(out4, out2, num_joints: int, flip_index: Sequence[int] | None = None):
  """Batched network outputs -> (heatmaps [B, h, w, J], tags [B, h, w, J, T]) inside jit.

  With `flip_index`, the batch holds B images followed by their B width-flipped copies and the
  result is the official flip-test aggregate (T = 2); otherwise T = 1.
  """
  up = _resize_jax(out4.astype(jnp.float32), out2.shape[1:3])
  heat = (up[..., :num_joints] + out2.astype(jnp.float32)) / 2
  tags = up[..., num_joints:, None]
  if flip_index is None:
    return heat, tags
  b = heat.shape[0] // 2
  idx = jnp.asarray(np.asarray(flip_index))
  heat_f = heat[b:, :, ::-1][..., idx]
  tags_f = tags[b:, :, ::-1][:, :, :, idx]
  return (heat[:b] + heat_f) / 2, jnp.concatenate([tags[:b], tags_f], axis=-1)


def aggregate_scales(scales: Sequence[float], heatmaps: Sequence[np.ndarray],
                     tags: Sequence[np.ndarray], size: tuple[int, int], *, fast: bool = True):
  """Multi-scale aggregation (official aggregate_results): -> (heatmaps [h, w, J], tags).

  Heatmaps of every scale are resized to `size` and averaged. Tags come from scale 1 only, as in
  the official code (from every scale when 1 is absent, where the official code would fail); a
  single tag map is returned at its own resolution, which the parser resizes lazily.
  """
  if not (len(scales) == len(heatmaps) == len(tags)) or not scales:
    raise ValueError('need one heatmap and one tag map per scale')
  resize = resize_fast if fast else resize_bilinear
  heat = resize(heatmaps[0], size)
  if len(heatmaps) > 1:
    # One map alone is its own mean: no extra pass over the (input-size) map.
    for hm in heatmaps[1:]:
      heat = heat + resize(hm, size)
    heat /= np.float32(len(heatmaps))
  keep = [t for s, t in zip(scales, tags) if s == 1 or len(scales) == 1] or list(tags)
  if len(keep) == 1:
    return heat, keep[0]
  flat = [resize(t.reshape(t.shape[0], t.shape[1], -1), size).reshape(*size, *t.shape[2:])
          for t in keep]
  return heat, np.concatenate(flat, axis=-1)
