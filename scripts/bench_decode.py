"""Decode (grouping) time per image on ground-truth-like LitePose-S maps (448 x 640 input).

Maps: N people rendered with the training-target Gaussians at stride 2 (224 x 320), --missing of
the joints invisible (default 15%, so refine has work), small noise on heatmaps and tags; flip =
two tag maps. 'input' grouping resizes the maps to the 448 x 640 input first (official
PROJECT2IMAGE): either both maps (same work as the official parser) or heatmaps only, tags read
lazily at stride 2.

  python scripts/bench_decode.py [--people 5,15,30] [--repeats 20] [--reference]

Compare with the official parser measured on the same machine type (docs/BENCHMARKS.md): input /
no flip 116/165/271 ms, input / flip 166/311/615 ms, stride-2 / no flip 19/38/69 ms for 5/15/30
people. --reference also times the literal official parser (litepose_jax.reference
.official_parser, the tests' oracle) on the same maps (its NMS on OpenCV, as fast as torch's
max-pool, so that the grouping is what is compared): the same-work ratio on this machine.
Both input-resolution rows are compared with the reference on the resized maps: the lazy row is
the same grouping with the tags read bilinearly at stride 2 instead of resized (what Predictor
does; tests check it equals grouping the resized tags), and the reference's resize is not timed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from litepose_jax.data.targets import render_heatmaps
from litepose_jax.inference.fusion import resize_fast
from litepose_jax.inference.parser import parse_poses


def make_maps(rng, num_people, flip, missing=0.15, h=224, w=320, num_joints=14):
  """(heatmaps [h, w, J], tags [h, w, J, T]) for num_people well separated, partly occluded people."""
  people = np.zeros((num_people, num_joints, 3), np.float32)
  cols = int(np.ceil(np.sqrt(num_people * w / h)))
  rows = int(np.ceil(num_people / cols))
  for p in range(num_people):
    cx = (p % cols + 0.5) * w / cols
    cy = (p // cols + 0.5) * h / rows
    people[p, :, 0] = cx + rng.uniform(-0.4, 0.4, num_joints) * w / cols
    people[p, :, 1] = cy + rng.uniform(-0.4, 0.4, num_joints) * h / rows
  people[..., 2] = rng.random((num_people, num_joints)) >= missing
  heat = render_heatmaps(people, max(h, w))[:h, :w]
  heat += rng.normal(0, 0.01, heat.shape).astype(np.float32)
  tags = rng.normal(0, 0.05, (h, w, num_joints, 2 if flip else 1)).astype(np.float32)
  for p in range(num_people):
    x0, y0 = np.maximum(people[p, :, :2].min(0).astype(int) - 4, 0)
    x1, y1 = people[p, :, :2].max(0).astype(int) + 5
    tags[y0:y1, x0:x1] = 2.0 * (p + 1) + rng.normal(0, 0.05, tags[y0:y1, x0:x1].shape)
  for p, j in zip(*np.nonzero(people[..., 2] > 0)):
    x, y = people[p, j, :2].astype(int)
    # Noisy like a network's: bitwise-equal tags would let the official parser merge people by key.
    patch = tags[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2, j]
    patch[...] = 2.0 * (p + 1) + rng.normal(0, 0.02, patch.shape)
  return heat, tags


# Official parser (docs/BENCHMARKS.md, ms per image) for the rows that do the same work: (maps, flip) -> by
# people count. 'input' is the official PROJECT2IMAGE grouping of both resized maps.
OFFICIAL = {
    ('stride 2 (224x320)', False): {5: 19, 15: 38, 30: 69},
    ('input 448x640, both maps resized', False): {5: 116, 15: 165, 30: 271},
    ('input 448x640, both maps resized', True): {5: 166, 15: 311, 30: 615},
}


def bench(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1000 * float(np.median(times))


def reference_parser():
  """The literal official parser (the tests' oracle), its 5x5 max-pool NMS done by OpenCV."""
  import cv2

  from litepose_jax.reference import official_parser as ref

  def nms(det):  # [J, H, W]; replicated borders give the maxima of -inf padding
    pooled = cv2.dilate(np.ascontiguousarray(det.transpose(1, 2, 0)), np.ones((5, 5), np.uint8),
                        borderType=cv2.BORDER_REPLICATE).reshape(det.shape[1:] + det.shape[:1])
    return det * (pooled.transpose(2, 0, 1) == det)

  ref._nms = nms  # this process only: the oracle's NumPy NMS would dominate the timing
  return ref.reference_parse


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--people', default='5,15,30')
  ap.add_argument('--repeats', type=int, default=20)
  ap.add_argument('--missing', type=float, default=0.15, help='fraction of invisible joints')
  ap.add_argument('--reference', action='store_true',
                  help='also time the literal reference parser on the same maps (slow)')
  args = ap.parse_args()
  reference = reference_parser() if args.reference else None
  rng = np.random.default_rng(0)
  print(f'{"maps":44s} {"people":>6s} {"decode ms":>10s} {"found":>6s} {"official":>9s} '
        f'{"speed-up":>8s}' + (f' {"reference":>9s} {"speed-up":>8s}' if reference else ''))
  for flip in (False, True):
    for n in [int(v) for v in args.people.split(',')]:
      heat, tags = make_maps(rng, n, flip, args.missing)
      big = (448, 640)
      heat_big = resize_fast(heat, big)
      tags_big = resize_fast(tags.reshape(224, 320, -1), big).reshape(*big, *tags.shape[2:])
      # The lazy row is the input-resolution grouping of the row below it without the tag resize:
      # both are compared with the reference on the resized maps.
      cases = [
          ('stride 2 (224x320)', (heat, tags), 'stride 2'),
          ('input 448x640, tags lazily at stride 2', (heat_big, tags), 'input'),
          ('input 448x640, both maps resized', (heat_big, tags_big), 'input'),
      ]
      ref_maps = {'stride 2': (heat, tags), 'input': (heat_big, tags_big)}
      ref_ms = {}
      for name, maps, ref_key in cases:
        ms = bench(lambda maps=maps: parse_poses(*maps), args.repeats)
        found = parse_poses(*maps)[0].shape[0]
        official = OFFICIAL.get((name, flip), {}).get(n)
        line = (f'{name + (", flip" if flip else ""):44s} {n:6d} {ms:10.2f} {found:6d} '
                + (f'{official:9d} {official / ms:7.1f}x' if official else f'{"":9s} {"":8s}'))
        if reference:
          if ref_key not in ref_ms:
            ref_ms[ref_key] = bench(lambda m=ref_maps[ref_key]: reference(*m),
                                    max(args.repeats // 5, 1))
          line += f' {ref_ms[ref_key]:9.1f} {ref_ms[ref_key] / ms:7.1f}x'
        print(line)


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  main()
