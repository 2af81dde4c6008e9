"""`litepose bench`: LiteRT latency of an exported model, network only and end to end.

  litepose bench --tflite model.tflite [--threads 2] [--runs 50] [--image IMG]

Network: one `image` -> outputs invoke, min / median / max over --runs after --warmup runs.
End to end for one image: what an app with a fixed-size interpreter does (inference.Predictor
with fixed_input, `litepose predict --fixed-input`): preprocess (fit into the exported input,
normalise), network, stage fusion, grouping and the map back to image pixels, without and with
flip test (a second invoke on the mirrored input; heatmaps averaged, tags
stacked, as the official test). Grouping runs at the input resolution like the official code
(PROJECT2IMAGE) unless --group-at stride2. The median of each Predictor stage is printed too
(its 'network' includes stage fusion and the flip combination; 'decode' is grouping and the map
back).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
import statistics
import time

import numpy as np

from litepose_jax.data import image_files
from litepose_jax.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--tflite', required=True, help='exported .tflite (with its sidecar json)')
  parser.add_argument('--threads', type=int, default=2, help='LiteRT (XNNPACK) threads')
  parser.add_argument('--runs', type=int, default=50, help='timed runs per measurement')
  parser.add_argument('--warmup', type=int, default=5, help='untimed runs first')
  parser.add_argument('--image', default=None,
                      help='image for the end-to-end timing (default: a synthetic 640x480 image)')
  parser.add_argument('--no-e2e', action='store_true', help='network latency only')
  parser.add_argument('--group-at', choices=('input', 'stride2'), default='input',
                      help='end to end: group at the input resolution (official) or on the '
                           'stride-2 maps')


def time_ms(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
  """min / median / max wall time of fn() in milliseconds."""
  if runs < 1 or warmup < 0:
    raise UserError(f'--runs must be >= 1 and --warmup >= 0, got {runs} and {warmup}')
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    fn()
    times.append((time.perf_counter() - t0) * 1e3)
  return {'min': min(times), 'median': statistics.median(times), 'max': max(times)}


def benchmark(path: str, threads: int = 2, runs: int = 50, warmup: int = 5,
              image: np.ndarray | None = None, e2e: bool = True,
              group_at: str = 'input') -> dict:
  """Latency figures (ms) of the .tflite at `path`; see the module docstring."""
  # JAX and the decoder take seconds to import: not for `litepose bench --help`.
  from litepose_jax.inference import predictor as predictor_lib
  # One interpreter for both figures: the Predictor's backend wraps the same LiteRT model. The
  # exported size for both, so that the two figures describe the same deployment.
  backend = predictor_lib.load_backend(path, num_threads=threads, fixed_input=True)
  model = backend.model
  size = model.input_shape[1]
  x = np.random.default_rng(0).normal(size=model.input_shape).astype(np.float32)
  result = {'path': path, 'threads': threads, 'runs': runs, 'size': size,
            'quantization': model.meta.get('quantization'),
            'delegate_partitions': model.delegate_partitions(),
            'network': time_ms(lambda: model.raw(x), runs, warmup)}
  if not e2e:
    return result
  if image is None:
    image = (np.random.default_rng(1).uniform(0, 255, (480, 640, 3))).astype(np.uint8)
  result['group_at'] = group_at
  for key, flip in (('e2e', False), ('e2e_flip', True)):
    predict = predictor_lib.Predictor(backend, flip=flip, group_at=group_at)
    stages = []
    result[key] = time_ms(lambda p=predict, s=stages: s.append(p(image).timings), runs, warmup)
    result[key + '_stages'] = {name: 1e3 * statistics.median(t[name] for t in stages[warmup:])
                               for name in stages[0]}
  return result


def _fmt(t: dict) -> str:
  return f'{t["median"]:7.1f} ms median (min {t["min"]:.1f}, max {t["max"]:.1f})'


def run(args: argparse.Namespace) -> int:
  if args.threads < 1:
    raise UserError(f'--threads must be >= 1, got {args.threads}')
  image = image_files.read_rgb(args.image, '--image') if args.image else None
  r = benchmark(args.tflite, args.threads, args.runs, args.warmup, image, not args.no_e2e,
                args.group_at)
  print(f'{args.tflite}: {r["size"]}x{r["size"]}, {r["quantization"]}, {r["threads"]} thread(s), '
        f'{r["runs"]} runs')
  parts = r['delegate_partitions']
  if parts != 1:
    print(f'  warning: XNNPACK runs this graph in {parts} partitions; the ops between them run '
          "on TFLite's own, slower kernels (a graph from `litepose export` is one partition)")
  print(f'  network            {_fmt(r["network"])}')
  if 'e2e' in r:
    where = 'input resolution' if r['group_at'] == 'input' else 'stride-2 maps'
    for key, name in (('e2e', 'end to end'), ('e2e_flip', 'end to end, flip')):
      parts = ', '.join(f'{k} {v:.1f}' for k, v in r[key + '_stages'].items())
      print(f'  {name:18s} {_fmt(r[key])}   [{parts} ms; grouping at the {where}]')
  return 0
