#!/usr/bin/env python
"""Super-net speed: its train step (official and sandwich policies) and the BN recalibration +
inference of one sub-net, each next to the standalone largest network's train step at the same
resolution, timed in the same run.

  python scripts/bench_supernet.py                      # CPU: 128 px, batch 8
  python scripts/bench_supernet.py --size 512 --batch 32 --steps 20   # e.g. on a GPU

All steps are the trainer's own (training/trainer.py make_train_step, Adam, the LitePose loss)
on one fake batch; the super-net's masks change every step (a new sub-net each time, as in
training), so a recompilation would show as a slow step; the script also counts compilations.
Goal (issue 18): official-policy step <= 1.2x the largest standalone step.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import numpy as np

from litepose_jax import config_files
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.data import normalize
from litepose_jax.nas import recalibrate as recal_lib
from litepose_jax.training import cli as train_cli
from litepose_jax.training import input_pipeline
from litepose_jax.training import optim
from litepose_jax.training import supernet
from litepose_jax.training import trainer


def _timed(fn, steps: int, warmup: int) -> float:
  """Median seconds of fn(i) over `steps` calls after `warmup` untimed ones."""
  for i in range(warmup):
    jax.block_until_ready(fn(i))
  times = []
  for i in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn(warmup + i))
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _step_time(config, model, batch, masks_fn, steps, warmup):
  """(median step seconds, compilations) of the trainer's step for `model` on `batch`."""
  schedule = optim.make_schedule(config.optim, 1000, 100000)
  tx = optim.make_optimizer(config.optim, schedule)
  variables = models.init_variables(model, config.data.input_size, 0)
  state = optim.create_state(variables, tx, ema=False)
  step = jax.jit(trainer.make_train_step(model, tx, schedule, config, 14), donate_argnums=(0,))
  box = {'state': state}

  def run(i):
    box['state'], metrics = step(box['state'], batch, masks_fn(i))
    return metrics
  t = _timed(run, steps, warmup)
  return t, step._cache_size()  # pylint: disable=protected-access


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/supernet.py:fake')
  parser.add_argument('--size', type=int, default=128)
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--calib-batches', type=int, default=4)
  train_cli.accept_config_overrides(parser)
  args = parser.parse_args(argv)
  base = config_files.load_config(args.config, args.config_overrides or ())
  base.data.source, base.data.input_size, base.data.input_sizes = 'fake', args.size, ()
  base.data.batch_size = args.batch
  base.supernet.space.resolutions = tuple(sorted({*base.supernet.space.resolutions, args.size}))
  stream, _ = input_pipeline.make_data(base, 0, 1, 0)
  batch = jax.device_put(next(stream))
  dev = jax.devices()[0]
  print(f'{dev.device_kind} ({jax.default_backend()}), {args.size} px, batch {args.batch}, '
        f'median of {args.steps} steps')

  fixed = base.copy_and_resolve_references()
  fixed.supernet.enabled = False
  space = supernet.search_space(base)
  largest = models.create_model(nas.max_arch(space), 14, depthwise_impl=base.model.depthwise_impl,
                                conv_impl=base.model.conv_impl)
  t_ref, _ = _step_time(fixed, largest, batch, lambda i: None, args.steps, args.warmup)
  print(f'  largest standalone step      {t_ref * 1e3:8.1f} ms   1.00x')
  for policy in ('official', 'sandwich'):
    cfg = base.copy_and_resolve_references()
    cfg.supernet.policy = policy
    net = trainer.model_for_training(cfg, 14)
    t, compiles = _step_time(
        cfg, net, batch, lambda i, c=cfg, n=net: supernet.masks_for_jit(
            supernet.step_masks(c, n, i)), args.steps, args.warmup)
    print(f'  super-net step, {policy:9s}    {t * 1e3:8.1f} ms   {t / t_ref:4.2f}x  '
          f'({len(supernet.draw(cfg, 0))} sub-net(s) per step, {compiles} compilation(s))')

  net = nas.create_supernet(14, space, depthwise_impl=base.model.depthwise_impl,
                            conv_impl=base.model.conv_impl)
  variables = models.init_variables(net, args.size, 0)
  images = [np.asarray(normalize.model_input(next(stream)['image']))
            for _ in range(args.calib_batches)]
  forward = jax.jit(lambda v, x, m: net.apply(v, x, m))

  def recal_and_infer(i):
    arch = nas.sample(space, (0, i))
    v = recal_lib.recalibrate(net, variables, arch, images)
    return forward(v, images[0], nas.subnet_masks(net, arch))
  t = _timed(recal_and_infer, args.steps, args.warmup)
  print(f'  recalibrate ({args.calib_batches} batches) + inference of one sub-net '
        f'{t * 1e3:8.1f} ms   {t / t_ref:4.2f}x  ({forward._cache_size()} compilation(s) of '  # pylint: disable=protected-access
        'the inference)')
  return 0


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
