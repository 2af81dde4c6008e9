#!/usr/bin/env python
"""Build (or load) the LiteRT latency model of a search space and print how well it predicts.

  python scripts/bench_latency.py [--threads 2] [--num-fit 24] [--num-val 8] [--runs 20]
                                  [--out DIR | --cache-dir DIR] [--space official|tiny]

The model (litepose_jax/search/latency.py) is fitted on --num-fit measured sub-nets (exported
to fp32 TFLite, timed with LiteRT / XNNPACK on --threads threads in alternation with a reference
sub-net, median of --runs ratios times the reference's quiet latency: robust to other processes)
and validated on --num-val other random sub-nets. Printed: one row per validation sub-net (its
architecture, true GMACs, measured and predicted ms, relative error), the mean and max error
(goal: within 10%), the fit's own errors, the time spent building, the reference and the errors
against the raw (unpaired) medians. Measurements are cached in
--cache-dir (default: OUT/latency_cache with --out, else workdirs/latency_cache, git-ignored), so
a rerun prints the same table at once and a killed run resumes. --space tiny (64 / 96 px, one
block per stage) is for a quick check of the script itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

SPACES = ('official', 'tiny')


def _space(name: str):
  """The search space named by --space."""
  from litepose_jax import nas
  if name == 'official':
    return nas.OFFICIAL
  # The tests' tiny space (tests/search/helpers.py): the official widths, one block per stage.
  return nas.SearchSpace(resolutions=(64, 96), depths=(1, 1, 1, 1),
                         supernet_depths=(1, 2, 1, 1))


def summary(arch: dict) -> str:
  """'448 C0 24 F 64/48/32 C 32/64/96/160': resolution, stem, deconv and stage widths."""
  stages = '/'.join(str(s['channel']) for s in arch['backbone_setting'])
  deconvs = '/'.join(str(w) for w in arch['deconv_setting'])
  return f'{arch["img_size"]} C0 {arch["input_channel"]} F {deconvs} C {stages}'


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--threads', type=int, default=2, help='LiteRT (XNNPACK) threads')
  p.add_argument('--num-fit', type=int, default=24, help='measured sub-nets the model is fitted on')
  p.add_argument('--num-val', type=int, default=8, help='other sub-nets it is validated on')
  p.add_argument('--runs', type=int, default=20, help='timed runs per sub-net (median)')
  p.add_argument('--warmup', type=int, default=3, help='untimed runs first')
  p.add_argument('--seed', type=int, default=0, help='seed of the random sub-nets')
  p.add_argument('--joints', type=int, default=14, help='number of joints (14 CrowdPose)')
  p.add_argument('--space', choices=SPACES, default='official',
                 help='official (256-512 px) or tiny (64 / 96 px, for a smoke test)')
  p.add_argument('--out', default=None, help='output folder (the cache goes in OUT/latency_cache)')
  p.add_argument('--cache-dir', default=None, help='latency cache folder (overrides --out)')
  p.add_argument('--no-progress', action='store_true', help='no progress bar')
  args = p.parse_args(argv)

  from litepose_jax.errors import UserError
  from litepose_jax.search import costs
  from litepose_jax.search import latency

  cache_dir = args.cache_dir or os.path.join(args.out or 'workdirs', 'latency_cache')
  space = _space(args.space)
  try:
    t0 = time.perf_counter()
    model = latency.build_latency_model(
        space, args.joints, threads=args.threads, cache_dir=cache_dir, num_fit=args.num_fit,
        num_val=args.num_val, seed=args.seed, runs=args.runs, warmup=args.warmup,
        progress=not args.no_progress)
    build_s = time.perf_counter() - t0
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  v = model.validation
  print(f'machine: {model.machine}')
  print(f'space: {args.space}, {args.joints} joints; fitted on {args.num_fit} sub-nets, '
        f'validated on {v["n"]} others; median of {args.runs} runs each\n')
  print('| sub-net (img, stem, deconvs, stages) | true GMACs | measured ms | predicted ms | '
        'error |')
  print('|---|---|---|---|---|')
  for pt in sorted(v['points'], key=lambda q: q['measured_ms']):
    err = (pt['predicted_ms'] - pt['measured_ms']) / pt['measured_ms']
    gmacs = costs.arch_costs(pt['arch'], args.joints)['macs_true'] / 1e9
    print(f'| {summary(pt["arch"])} | {gmacs:.3f} | {pt["measured_ms"]:.2f} | '
          f'{pt["predicted_ms"]:.2f} | {100 * err:+.1f}% |')
  print(f'\nvalidation: mean relative error {100 * v["mean_rel_err"]:.1f}%, '
        f'max {100 * v["max_rel_err"]:.1f}% (goal: within 10%)')
  fit = model.fit
  if 'mean_rel_err' in fit:
    print(f'fit: mean relative error {100 * fit["mean_rel_err"]:.1f}%, '
          f'max {100 * fit["max_rel_err"]:.1f}%')
  print('coefficients: ' + ', '.join(f'{n} {c:.3g}' for n, c in zip(model.features, model.coef)))
  measured = fit.get('measure_s')
  what = (f'{measured:.0f} s measuring' if measured else 'nothing measured (cached)')
  print(f'build: {build_s:.0f} s ({what}); the {args.num_fit + args.num_val} measurements took '
        f'{fit.get("measure_total_s", 0):.0f} s in all; cache in {cache_dir}')
  ref = model.reference
  print(f'scale: paired with {summary(ref["arch"])}, quiet latency {ref["ms"]:.2f} ms; against '
        f'the raw medians: mean error {100 * v["raw_mean_rel_err"]:.1f}%, '
        f'max {100 * v["raw_max_rel_err"]:.1f}%')
  return 0


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
