"""Training-pipeline throughput in images/second per CPU core (LitePose-S: 448 input, 112/224 maps).

Measures on the real CrowdPose samples (../shared/data/crowdpose_sample or $LITEPOSE_SAMPLE_DATA)
and, if given (--synth-dir) or generatable, on a synthetic CrowdPose-format set. For each data set:
  reference     : a straight re-implementation of the official per-image PyTorch-loader work
                  (imread, affine warps, flip, ToTensor + normalise, heatmaps and joints by Python
                  loops) pinned to one core, so a noisy shared machine still gives a fair ratio
  ours/1 core   : the tf.data pipeline pinned to the same core, 1 thread-pool thread, with the
                  default uint8 images (normalised later on the device) and with float32 images
  ours/cache    : uint8 on one core with data.decoded_cache_dir warm (epochs after the first)
  ours/all cores: the default pipeline on all cores (per-core figure = total / cores)
Ratios are printed against the reference and against the official loader's ~109 images/s on one
core (measured on a quiet machine, docs/BENCHMARKS.md "Data pipeline"; the goal is 1.5x that).

  .venv/bin/python scripts/bench_data.py [--seconds 8] [--synth-dir DIR] [--size 448]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
OFFICIAL = 109.0  # official loader, images/s on one core of a quiet machine


def _sample_root() -> pathlib.Path:
  env = os.environ.get('LITEPOSE_SAMPLE_DATA')
  return pathlib.Path(env) if env else REPO.parent / 'shared' / 'data'


def _cfg(data_dir: str, size: int, batch: int, threads: int, image_dtype: str = 'uint8',
         cache_dir: str = ''):
  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  c = pipeline.default_data_config()
  c.dataset = 'crowdpose'
  c.data_dir = data_dir
  c.split = 'train'
  c.input_size = size
  c.batch_size = batch
  c.threads = threads
  c.image_dtype = image_dtype
  c.decoded_cache_dir = cache_dir
  if threads == 1:
    c.num_parallel_calls = 1
  return c


def bench_ours(data_dir: str, size: int, seconds: float, threads: int,
               image_dtype: str = 'uint8', cache_dir: str = '') -> float:
  """Images per second of make_train_dataset (after a warm-up batch).

  cache_dir: the decoded-image cache; the warm-up covers every image of the small benchmark sets
  (<= 40 images, 3 batches), so the timed batches read the cache instead of decoding.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  batch = 16
  ds = pipeline.make_train_dataset(_cfg(data_dir, size, batch, threads, image_dtype, cache_dir))
  it = iter(ds)
  for _ in range(3 if cache_dir else 1):
    next(it)
  n, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    b = next(it)
    n += int(b['image'].shape[0])
  _ = tf  # keep TF imported for the run's lifetime
  return n / (time.perf_counter() - t0)


def bench_reference(data_dir: str, size: int, seconds: float) -> float:
  """Images per second of the official loader's per-image work, re-implemented plainly."""
  import cv2  # pylint: disable=g-import-not-at-top

  from litepose_jax.data import augment  # pylint: disable=g-import-not-at-top
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)
  src = datasets.open_dataset('crowdpose', data_dir, 'train')
  flip_index = list(src.joint_set.flip_index)
  rng = np.random.default_rng(0)
  sigma, r = 2, 7
  d = np.arange(15) - 7
  g = np.exp(-(d[:, None] ** 2 + d[None] ** 2) / (2 * sigma ** 2))
  mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
  std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
  n, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    i = n % len(src)
    rec, kp = src.records[i], src.keypoints[i]
    img = cv2.cvtColor(cv2.imread(rec.file_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = min(h, w) / 200 * rng.uniform(0.75, 1.5)
    rot = rng.uniform(-30, 30)
    m = int(40 * s)
    c = (w / 2 + rng.integers(-m, m), h / 2 + rng.integers(-m, m))
    flip = rng.random() < 0.5
    outs = []
    for res in (size // 4, size // 2):
      mat = augment.affine_matrix(c, s, rot, res)
      mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), mat, (res, res)) / 255 > 0.5
      j = kp.copy()
      j[..., :2] = kp[..., :2] @ mat[:, :2].T + mat[:, 2]
      if flip:
        mask = mask[:, ::-1]
        j = j[:, flip_index]
        j[..., 0] = res - j[..., 0] - 1
      hms = np.zeros((len(flip_index), res, res), np.float32)
      joints = np.zeros((30, len(flip_index), 2))
      for p, person in enumerate(j):
        tot = 0
        for k, (x, y, v) in enumerate(person):
          x, y = int(x), int(y)
          if v <= 0 or x < 0 or y < 0 or x >= res or y >= res:
            continue
          x0, y0 = max(0, x - r), max(0, y - r)
          x1, y1 = min(res, x + r + 1), min(res, y + r + 1)
          hms[k, y0:y1, x0:x1] = np.maximum(hms[k, y0:y1, x0:x1],
                                            g[y0 - y + r:y1 - y + r, x0 - x + r:x1 - x + r])
          joints[p, tot] = (k * res * res + y * res + x, 1)
          tot += 1
      outs.append((hms, mask, joints))
    im = cv2.warpAffine(img, augment.affine_matrix(c, s, rot, size), (size, size))
    if flip:
      im = im[:, ::-1]
    t = (np.ascontiguousarray(im.transpose(2, 0, 1)).astype(np.float32) / 255 - mean) / std
    n += 1
    del t, outs
  return n / (time.perf_counter() - t0)


def _child(args) -> None:
  if args.pin:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
  if args.mode == 'ref':
    v = bench_reference(args.data_dir, args.size, args.seconds)
  elif args.mode == 'ours-cache':
    with tempfile.TemporaryDirectory() as cache:
      v = bench_ours(args.data_dir, args.size, args.seconds, 1 if args.pin else 0, cache_dir=cache)
  else:
    v = bench_ours(args.data_dir, args.size, args.seconds, 1 if args.pin else 0,
                   'float32' if args.mode == 'ours-f32' else 'uint8')
  print(f'RESULT {v:.2f}')


def _run(mode: str, data_dir: str, size: int, seconds: float, pin: bool) -> float:
  cmd = [sys.executable, __file__, '--child', mode, '--data-dir', data_dir, '--size', str(size),
         '--seconds', str(seconds)] + (['--pin'] if pin else [])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  if pin:
    env.update(OMP_NUM_THREADS='1', TF_NUM_INTRAOP_THREADS='1', TF_NUM_INTEROP_THREADS='1')
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  line = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT')]
  if not line:
    raise RuntimeError(f'benchmark child failed:\n{out.stdout}\n{out.stderr}')
  return float(line[-1].split()[1])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--seconds', type=float, default=8.0)
  p.add_argument('--size', type=int, default=448)
  p.add_argument('--synth-dir', default='', help='synthetic CrowdPose-format folder (json/, images/);'
                 ' default: generate a small one with `litepose data synth` in a temp folder')
  p.add_argument('--no-synth', action='store_true')
  p.add_argument('--child', choices=('ours', 'ours-f32', 'ours-cache', 'ref'), help=argparse.SUPPRESS)
  p.add_argument('--data-dir', help=argparse.SUPPRESS)
  p.add_argument('--pin', action='store_true', help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    args.mode = args.child
    _child(args)
    return
  sets = [('real CrowdPose samples', str(_sample_root() / 'crowdpose_sample'))]
  tmp = None
  if not args.no_synth:
    synth = args.synth_dir
    if not synth:
      tmp = tempfile.TemporaryDirectory()
      synth = tmp.name
      r = subprocess.run([sys.executable, '-m', 'litepose_jax.cli', 'data', 'synth', '--out', synth,
                          '--num-images', '40', '--size', '640', '--quiet'], capture_output=True, text=True,
                         cwd=REPO, check=False)
      if r.returncode:
        print(f'(synthetic data skipped: `litepose data synth` failed: {r.stderr.strip()[-300:]})')
        synth = ''
    if synth:
      sets.append(('synthetic', synth))
  cores = len(os.sched_getaffinity(0))
  print(f'LitePose-S pipeline, input {args.size}, {cores} cores available; images/s per core')
  for name, d in sets:
    ref = _run('ref', d, args.size, args.seconds, True)
    one = _run('ours', d, args.size, args.seconds, True)
    one32 = _run('ours-f32', d, args.size, args.seconds, True)
    cached = _run('ours-cache', d, args.size, args.seconds, True)
    allc = _run('ours', d, args.size, args.seconds, False)
    vs = lambda v, ref=ref: f'({v / ref:.2f}x reference, {v / OFFICIAL:.2f}x official)'
    print(f'{name}:\n  reference (official-style work), 1 core: {ref:7.1f}\n'
          f'  ours, uint8 images (default), 1 core:   {one:7.1f} {vs(one)}\n'
          f'  ours, float32 images,         1 core:   {one32:7.1f} {vs(one32)}\n'
          f'  ours, uint8, decoded cache warm, 1 core: {cached:7.1f} {vs(cached)}\n'
          f'  ours, uint8, all {cores} cores:           {allc:7.1f} total = {allc / cores:.1f} per core')
  if tmp:
    tmp.cleanup()


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  main()
