"""`litepose bench`: LiteRT latency of an exported model, network only and end to end.

  litepose bench --tflite model.tflite [--threads 2] [--runs 50] [--image IMG]

Network: one `image` -> outputs invoke, min / median / max over --runs after --warmup runs.
End to end for one image: preprocess (letterbox + normalise) + network + decode (stage fusion and
grouping from litepose_jax.inference), without and with flip test (a second invoke on the
mirrored input; heatmaps averaged, tags stacked, as the official test).
Decoding uses litepose_jax.inference when it is installed; otherwise end to end is reported as
preprocess + network only, and the output says so.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

from litepose_jax.export import tflite as tflite_lib


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--tflite', required=True, help='exported .tflite (with its sidecar json)')
  parser.add_argument('--threads', type=int, default=2, help='LiteRT (XNNPACK) threads')
  parser.add_argument('--runs', type=int, default=50, help='timed runs per measurement')
  parser.add_argument('--warmup', type=int, default=5, help='untimed runs first')
  parser.add_argument('--image', default=None,
                      help='image for the end-to-end timing (default: a synthetic 640x480 image)')
  parser.add_argument('--no-e2e', action='store_true', help='network latency only')


def time_ms(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
  """min / median / max wall time of fn() in milliseconds."""
  if runs < 1 or warmup < 0:
    raise ValueError(f'--runs must be >= 1 and --warmup >= 0, got {runs} and {warmup}')
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    fn()
    times.append((time.perf_counter() - t0) * 1e3)
  return {'min': min(times), 'median': statistics.median(times), 'max': max(times)}


def _decoder(model):
  """decode(out4, out2, flipped=None) -> (poses, scores) via litepose_jax.inference, or None.

  Official test-time aggregation: stride-4 maps resized to stride 2 and averaged with the
  stride-2 heatmaps; with a flip pass, heatmaps averaged and tags stacked; then the grouping.
  """
  try:
    from litepose_jax.inference import fusion, parse_poses
  except ImportError:
    return None
  js = model.joint_set

  def decode(out4, out2, flipped=None):
    heat, tags = fusion.fuse_stages(out4[0], out2[0], js.num_joints)
    if flipped is not None:
      heat_f, tags_f = fusion.fuse_stages(flipped[0][0], flipped[1][0], js.num_joints)
      heat, tags = fusion.combine_flip(heat, tags, heat_f, tags_f, js.flip_index)
    return parse_poses(heat, tags, joint_order=js.group_order)
  return decode


def benchmark(path: str, threads: int = 2, runs: int = 50, warmup: int = 5,
              image: np.ndarray | None = None, e2e: bool = True) -> dict:
  """Latency figures (ms) of the .tflite at `path`; see the module docstring."""
  from litepose_jax.export import runtime
  model = runtime.TFLiteModel(path, num_threads=threads)
  size = model.input_shape[1]
  x = np.random.default_rng(0).normal(size=model.input_shape).astype(np.float32)
  result = {'path': path, 'threads': threads, 'runs': runs, 'size': size,
            'quantization': model.meta.get('quantization'),
            'network': time_ms(lambda: model.raw(x), runs, warmup)}
  if not e2e:
    return result
  if image is None:
    image = (np.random.default_rng(1).uniform(0, 255, (480, 640, 3))).astype(np.uint8)
  decode = _decoder(model)
  result['decoded'] = decode is not None

  def pipeline(flip: bool):
    inp = tflite_lib.preprocess_image(image, size)
    out4, out2 = model(inp)
    flipped = model(np.ascontiguousarray(inp[:, :, ::-1])) if flip else None
    if decode is not None:
      decode(out4, out2, flipped)

  result['e2e'] = time_ms(lambda: pipeline(False), runs, warmup)
  result['e2e_flip'] = time_ms(lambda: pipeline(True), runs, warmup)
  return result


def _fmt(t: dict) -> str:
  return f'{t["median"]:7.1f} ms median (min {t["min"]:.1f}, max {t["max"]:.1f})'


def run(args: argparse.Namespace) -> int:
  if args.threads < 1:
    raise ValueError(f'--threads must be >= 1, got {args.threads}')
  from litepose_jax.data import images as image_files  # pylint: disable=g-import-not-at-top
  image = image_files.read_rgb(args.image, '--image') if args.image else None
  r = benchmark(args.tflite, args.threads, args.runs, args.warmup, image, not args.no_e2e)
  print(f'{args.tflite}: {r["size"]}x{r["size"]}, {r["quantization"]}, {r["threads"]} thread(s), '
        f'{r["runs"]} runs')
  print(f'  network            {_fmt(r["network"])}')
  if 'e2e' in r:
    what = ('preprocess + network + decode' if r['decoded'] else
            'preprocess + network (no decoder: litepose_jax.inference not available)')
    print(f'  end to end         {_fmt(r["e2e"])}   [{what}]')
    print(f'  end to end, flip   {_fmt(r["e2e_flip"])}')
  return 0
