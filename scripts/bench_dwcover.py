"""Which split of a 7x7 (or 9x9) depthwise conv into small sub-convs runs fastest under TFLite.

XNNPACK (ai-edge-litert 2.3) runs depthwise kernels of up to 4, 9 or 25 taps with fast
single-pass micro-kernels and a 49-tap one ~25x slower, so the export's depthwise_impl='split'
(litepose_jax/models/depthwise_split.py) sums 'SAME'-padded dilated sub-convs whose taps
partition the 7x7 kernel. This script finds every such partition (exact cover search over the
rectangles that 'SAME' padding can place, stride 1 or stride 2 on even sizes, zero taps allowed
outside the kernel), ranks them with a cost model
(micro-kernel size of each sub-conv plus one ADD per extra sub-conv), and times the best few and
the export's own cover on the LitePose-S block shapes (JAX -> jax2tf -> TFLite; each graph is the
sub-convs + bias + ReLU6 of one block, 2 threads, median).

  python scripts/bench_dwcover.py [--kernel 7|9] [--stride 1|2] [--quantize none int8] [--top 4]
                                  [--max-pieces 7] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from litepose_jax.models import depthwise_split

# The LitePose-S @448 depthwise inputs: (shape, number of such layers) per stage.
S_SHAPES = {1: [((1, 112, 112, 96), 5), ((1, 56, 56, 192), 7), ((1, 28, 28, 288), 9),
                ((1, 28, 28, 720), 10)],
            2: [((1, 224, 224, 96), 1), ((1, 112, 112, 96), 1), ((1, 56, 56, 192), 1)]}
# Relative cost of a sub-conv by micro-kernel size (taps) and of one ADD: fp32 timings at
# 56x56x288 on the 2-core development machine (docs/BENCHMARKS.md); only the ranking uses them.
BUCKETS = ((4, 0.07), (9, 0.09), (25, 0.6))
ADD_COST = 0.07


def axis_sets(k: int, stride: int, size: int) -> dict[tuple[int, ...], tuple[int, int]]:
  """Offsets inside a k-tap axis -> (taps, dilation) of the cheapest 'SAME' conv axis reading
  exactly them (its other taps fall outside the kernel)."""
  out = {}
  for n in range(1, k + 2):
    for d in range(1, k + 2) if n > 1 else (1,):
      offsets = depthwise_split.same_offsets(n, d, size, stride)
      real = tuple(o for o in offsets if -(k // 2) <= o <= k // 2)
      if real and (real not in out or out[real][0] > n):
        out[real] = (n, d)
  return out


def bucket_cost(taps: int) -> float:
  return next((c for size, c in BUCKETS if taps <= size), float('inf'))


def covers(k: int, stride: int, max_pieces: int) -> list[tuple[float, tuple]]:
  """All partitions of the k x k taps into <= max_pieces sub-convs on an even input size,
  cheapest first by the cost model: [(cost, ((rows, row dilation), (cols, col dilation)), ..)]."""
  sets = axis_sets(k, stride, 2 * k)
  pieces = []
  for rows, (nr, dr) in sets.items():
    for cols, (nc, dc) in sets.items():
      if nr * nc <= BUCKETS[-1][0]:
        taps = frozenset((r, c) for r in rows for c in cols)
        pieces.append((taps, bucket_cost(nr * nc), ((nr, dr), (nc, dc))))
  full = [(r, c) for r in range(-(k // 2), k // 2 + 1) for c in range(-(k // 2), k // 2 + 1)]
  found = []

  def search(covered, chosen, cost):
    if len(full) - len(covered) > BUCKETS[-1][0] * (max_pieces - len(chosen)):
      return  # the sub-convs left cannot hold the taps left
    first = next((t for t in full if t not in covered), None)
    if first is None:
      found.append((round(cost + ADD_COST * (len(chosen) - 1), 4), tuple(chosen)))
      return
    for taps, c, spec in pieces:  # every cover holds exactly one piece with the first free tap
      if first in taps and not taps & covered:
        search(covered | taps, chosen + [spec], cost + c)

  search(frozenset(), [], 0.0)
  found.sort()
  return found


def block_fn(cover, k: int, stride: int, channels: int, seed: int = 0):
  """x [1, H, W, C] -> ReLU6(k x k depthwise via the cover's sub-convs + bias)."""
  import jax.numpy as jnp
  rng = np.random.default_rng(seed)
  kernel = rng.normal(0, 0.1, (k, k, 1, channels)).astype(np.float32)
  bias = rng.normal(0, 0.1, channels).astype(np.float32)
  return lambda x: jnp.clip(
      depthwise_split.split_depthwise(x, kernel, stride, bias, (cover,)), 0.0, 6.0)


def to_tflite(fn, shape, quantize: str) -> bytes:
  from jax.experimental import jax2tf
  import tensorflow as tf
  tf_fn = tf.function(jax2tf.convert(fn, native_serialization_platforms=('cpu',),
                                     with_gradient=False),
                      input_signature=[tf.TensorSpec(shape, tf.float32)], autograph=False)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([tf_fn.get_concrete_function()])
  if quantize == 'int8':
    rng = np.random.default_rng(1)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.normal(size=shape).astype(np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  return converter.convert()


def time_ms(model: bytes, shape, threads: int, runs: int) -> float:
  from ai_edge_litert.interpreter import Interpreter
  it = Interpreter(model_content=model, num_threads=threads)
  it.allocate_tensors()
  it.set_tensor(it.get_input_details()[0]['index'],
                np.random.default_rng(2).normal(size=shape).astype(np.float32))
  for _ in range(5):
    it.invoke()
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    it.invoke()
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def describe(cover, k: int, stride: int) -> str:
  """'taps t r[row offsets] x c[column offsets] + ...' of a cover on an even input size."""
  parts = []
  for (nr, dr), (nc, dc) in cover:
    offsets = depthwise_split.same_offsets
    rows = [o for o in offsets(nr, dr, 2 * k, stride) if abs(o) <= k // 2]
    cols = [o for o in offsets(nc, dc, 2 * k, stride) if abs(o) <= k // 2]
    parts.append(f'{nr * nc}t r{rows}x c{cols}')
  return ' + '.join(parts).replace(' ', '')


def main():
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--kernel', type=int, default=7, choices=(7, 9))
  ap.add_argument('--stride', type=int, default=1, choices=(1, 2))
  ap.add_argument('--quantize', nargs='+', default=['none', 'int8'], choices=('none', 'int8'))
  ap.add_argument('--top', type=int, default=4, help='covers timed per piece count')
  ap.add_argument('--max-pieces', type=int, default=7)
  ap.add_argument('--threads', type=int, default=2)
  ap.add_argument('--runs', type=int, default=100)
  args = ap.parse_args()
  k = args.kernel
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  ranked = covers(k, args.stride, args.max_pieces)
  print(f'{len(ranked)} exact covers of {k}x{k} stride {args.stride} with <= {args.max_pieces} '
        'sub-convs')
  chosen = {}
  if (k, args.stride) in depthwise_split.PIECES:
    chosen[tuple(sorted(depthwise_split.PIECES[(k, args.stride)][0]))] = 'export'
  for m in range(2, args.max_pieces + 1):  # the model's best few of each size
    for _, cover in [c for c in ranked if len(c[1]) == m][:args.top]:
      chosen.setdefault(tuple(sorted(cover)), f'{m} pieces')
  shapes = S_SHAPES[args.stride]
  for q in args.quantize:
    print(f'\n{q}: ms per layer at ' + ', '.join('x'.join(map(str, s[1:])) for s, _ in shapes)
          + '; S total = sum over its layers')
    for cover, tag in chosen.items():
      ms = [time_ms(to_tflite(block_fn(cover, k, args.stride, s[-1]), s, q), s, args.threads,
                    args.runs) for s, _ in shapes]
      total = sum(t * n for t, (_, n) in zip(ms, shapes))
      print(f'  {tag:9s} ' + ' '.join(f'{t:6.3f}' for t in ms) + f'  S {total:6.2f}  '
            f'{describe(cover, k, args.stride)}', flush=True)


if __name__ == '__main__':
  main()
