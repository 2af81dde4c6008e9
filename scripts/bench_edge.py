"""Export LitePose XS / S / M / L to TFLite (fp32, fp16, dynamic, int8) and time them with LiteRT.

  python scripts/bench_edge.py [--archs XS S M L] [--quantize none fp16 dynamic int8]
                               [--threads 2] [--runs 30] [--calibration DIR] [--image IMG]
                               [--out-dir DIR]

Weights are random (BN statistics included): latency does not depend on them, accuracy does, so
these models are for timing only. Prints one markdown row per model: network latency (median and
min) and, for the arches in --e2e-archs, end to end for one image (`litepose bench`: what
`litepose predict` does, grouping at the input resolution unless --group-at stride2)
without and with flip test. The bars (official PyTorch, network only, 2 threads, on the CPU of
the official figures in docs/BENCHMARKS.md): XS 31 ms, S 130 ms, M 152 ms, L 286 ms. Machines
differ and shared ones are noisy, so --torch also times the reference PyTorch model
(litepose_jax/reference/torch_litepose.py, eager fp32, needs torch) interleaved run by run with
each arch's TFLite models: a same-machine, same-load ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

PYTORCH_MS = {'XS': 31, 'S': 130, 'M': 152, 'L': 286}


def interleaved_vs_torch(module, size: int, paths: dict, threads: int, runs: int,
                         image=None) -> str:
  """One line: medians (ms) of the reference PyTorch model and of each .tflite, timed
  alternately (with `image`, also each model's end to end with flip test: the bar is one PyTorch
  pass)."""
  import numpy as np
  try:
    import torch
  except ImportError as e:
    raise SystemExit('error: --torch needs torch (pip install -r requirements-dev.txt)') from e
  from litepose_jax.inference import litert
  from litepose_jax.reference.torch_litepose import TorchLitePose
  torch.set_num_threads(threads)
  net = TorchLitePose(module.arch.to_json_dict(), module.num_joints).eval()
  x = torch.randn(1, 3, size, size)
  models = {q: litert.TFLiteModel(path, num_threads=threads) for q, path in paths.items()}
  inputs = {q: np.random.default_rng(0).normal(size=m.input_shape).astype(np.float32)
            for q, m in models.items()}
  calls = {'torch': lambda: net(x)}
  calls.update({q: (lambda m=m, q=q: m.raw(inputs[q])) for q, m in models.items()})
  if image is not None:
    from litepose_jax.inference import predictor
    for q, path in paths.items():
      pred = predictor.Predictor(predictor.load_backend(path, num_threads=threads), flip=True)
      calls[f'{q} e2e flip'] = lambda pred=pred: pred(image)
  times = {name: [] for name in calls}
  with torch.no_grad():
    for i in range(-(-runs // 2) + 1):
      for name, call in calls.items():
        # Three calls per turn, the first untimed: the other runtime's worker threads keep
        # spinning for a while after its last call and would slow this one's first call.
        for j in range(3):
          t0 = time.perf_counter()
          call()
          if i and j:  # round 0 warms up
            times[name].append((time.perf_counter() - t0) * 1e3)
  ref = statistics.median(times['torch'])
  parts = [f'PyTorch (reference, eager) {ref:.1f} ms'] + [
      f'{q} {statistics.median(times[q]):.1f} ms ({statistics.median(times[q]) / ref:.2f}x)'
      for q in calls if q != 'torch']
  return ', '.join(parts)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--archs', nargs='+', default=['XS', 'S', 'M', 'L'])
  p.add_argument('--quantize', nargs='+', default=['none', 'fp16', 'dynamic', 'int8'])
  p.add_argument('--threads', type=int, default=2)
  p.add_argument('--runs', type=int, default=30)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--calibration', default=None, help='image folder for int8 calibration')
  p.add_argument('--image', default=None, help='image for the end-to-end timing')
  p.add_argument('--e2e-archs', nargs='*', default=['S'])
  p.add_argument('--group-at', choices=('input', 'stride2'), default='input',
                 help='end to end: where the grouping runs (official: input)')
  p.add_argument('--out-dir', default=None, help='keep the .tflite files here')
  p.add_argument('--torch', action='store_true',
                 help='also time the reference PyTorch model interleaved with the TFLite ones')
  args = p.parse_args(argv)

  from litepose_jax import checkpoints
  from litepose_jax import joints
  from litepose_jax.data import image_files
  from litepose_jax.export import bench
  from litepose_jax.export import cli
  from litepose_jax.export import fold
  from litepose_jax.models import create_model

  image = image_files.read_rgb(args.image, '--image') if args.image else None
  out_dir = args.out_dir or tempfile.mkdtemp(prefix='litepose_bench_edge_')
  os.makedirs(out_dir, exist_ok=True)
  js = joints.CROWDPOSE
  rows, same_load = [], []
  header = ('| model | input | quant | size MB | network median (min) ms | PyTorch ms | '
            'e2e ms | e2e flip ms |')
  print(header)
  print('|---|---|---|---|---|---|---|---|')
  for arch in args.archs:
    module = create_model(arch, js.num_joints, depthwise_impl='lax')
    size = module.arch.img_size
    variables = fold.random_variables(module, size)
    cfg = checkpoints.model_config(module.arch, js.num_joints, joint_set=js.name)
    paths = {}
    for q in args.quantize:
      path = paths[q] = os.path.join(out_dir, f'litepose-{arch}-{size}-{q}.tflite')
      cli.export_model(module, variables, path, size=size, quantize=q,
                       calibration=args.calibration, model_cfg=cfg, joint_set=js,
                       source=f'random init {arch}', random_init=True, threads=args.threads,
                       log=lambda s, tag=f'{arch} {q}': print(f'  [{tag}] {s}', file=sys.stderr))
      r = bench.benchmark(path, args.threads, args.runs, args.warmup, image,
                          e2e=arch in args.e2e_archs, group_at=args.group_at)
      net = r['network']
      e2e = f'{r["e2e"]["median"]:.1f}' if 'e2e' in r else '-'
      e2e_flip = f'{r["e2e_flip"]["median"]:.1f}' if 'e2e' in r else '-'
      row = (f'| {arch} | {size} | {q} | {os.path.getsize(path) / 1e6:.2f} | '
             f'{net["median"]:.1f} ({net["min"]:.1f}) | {PYTORCH_MS.get(arch, "-")} | {e2e} | '
             f'{e2e_flip} |')
      rows.append(row)
      print(row, flush=True)
    if args.torch:
      same_load.append(f'{arch} @{size}: ' + interleaved_vs_torch(
          module, size, paths, args.threads, args.runs,
          image if arch in args.e2e_archs and image is not None else None))
  if same_load:
    print('\nsame machine, interleaved (median; network only unless "e2e"):')
    print('\n'.join(same_load))
  print(f'\nmodels in {out_dir}; {args.threads} thread(s), {args.runs} runs; random weights')
  return 0


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
