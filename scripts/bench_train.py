#!/usr/bin/env python
"""Training throughput (images/s) and compile time of a config's train step on all local devices.

Runs the trainer's own step (LitePose loss, Adam + schedule, EMA / clipping / bf16 as configured,
jit over a data-parallel Mesh with the batch sharded) on in-memory fake batches, so the figure is
the model + optimizer speed without the input pipeline.

  python scripts/bench_train.py --config configs/litepose_s.py:fake --config.data.batch_size=32
  python scripts/bench_train.py --config configs/litepose_s.py:fake --config.mixed_precision=true \
      --config.data.batch_size=256        # e.g. on one H100
  python scripts/bench_train.py --config configs/litepose_xs.py:fake --config.data.input_size=64 \
      --config.data.batch_size=4 --steps 3   # CPU smoke test

Compile time is lower + compile of the step (with the persistent compilation cache off, so it
is the real cost; pass --cache to measure a warm second run). Then --warmup untimed steps and the
median of --steps timed steps, each ended by block_until_ready.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from litepose_jax import config_files
from litepose_jax import models
from litepose_jax.training import cli as train_cli
from litepose_jax.training import input_pipeline
from litepose_jax.training import optim
from litepose_jax.training import trainer


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/litepose_xs.py:fake')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--cache', action='store_true', help='use the persistent compilation cache')
  train_cli.accept_config_overrides(parser)
  args = parser.parse_args(argv)
  config = config_files.load_config(args.config, args.config_overrides or ())
  if config.data.source != 'fake':
    config.data.source = 'fake'  # model speed only; scripts/bench_data.py measures the pipeline
  if args.cache:
    trainer.enable_compilation_cache(config.compilation_cache_dir)
  devices = np.array(jax.devices())
  mesh = Mesh(devices, ('data',))
  repl, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  stream, info = input_pipeline.make_data(config, 0, 1, 0)
  model = trainer.model_for_training(config, info.num_joints)
  schedule = optim.make_schedule(config.optim, 1000, 100000)
  tx = optim.make_optimizer(config.optim, schedule)
  variables = models.init_variables(model, config.data.input_size, 0)
  state = jax.device_put(optim.create_state(variables, tx, ema=config.ema_decay > 0), repl)
  step = jax.jit(trainer.make_train_step(model, tx, schedule, config, info.num_joints),
                 in_shardings=(repl, shard), out_shardings=(repl, repl), donate_argnums=(0,))
  batch = jax.device_put(next(stream), shard)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(args.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  times = []
  for _ in range(args.steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  med = statistics.median(times)
  b = config.data.batch_size
  print(f'{model.arch.name} @{config.data.input_size} batch {b} '
        f'{"bf16" if config.mixed_precision else "fp32"} on {len(devices)} x '
        f'{devices[0].device_kind} ({jax.default_backend()}): compile {compile_s:.1f} s, '
        f'step {med * 1e3:.1f} ms (median of {args.steps}), {b / med:.1f} images/s, '
        f'loss {float(metrics["total"]):.4f}')
  return 0


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
