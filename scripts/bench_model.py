#!/usr/bin/env python
"""Forward and train-step throughput of a LitePose or HigherHRNet model on the current JAX backend.

Default: LitePose-XS at 128 px, batch 16, float32, the backend's default depthwise impl, i.e.
the CPU bar measured with the official PyTorch code (17.8 img/s for this train step on a 2-core
CPU; docs/BENCHMARKS.md).

  python scripts/bench_model.py                                 # XS@128 b16, forward + train
  python scripts/bench_model.py --impl lax                      # XLA's grouped conv for depthwise
  python scripts/bench_model.py --arch S --size 448 --batch 4 --mode forward
  python scripts/bench_model.py --arch XS --size 256 --batch 32 --dtype bfloat16   # on a GPU
  python scripts/bench_model.py --arch shrink3 --size 128 --batch 8 --mode train --torch

--arch takes the HigherHRNet family too (presets higherhrnet-w16 / -w32 / -w48, shrink1..3, or an
official experiment .yaml); its --torch baseline is litepose_jax/reference/torch_higherhrnet.py.

Train step = jitted Adam (optax, lr 1e-3) on the MSE of both outputs against zero targets, with
the BatchNorm batch_stats update (train=True, mutable=['batch_stats']). Compile time is measured
separately (lower + compile); then `--warmup` untimed steps; then the median of `--steps` timed
steps, each ended by block_until_ready on everything the step returns.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from litepose_jax import host_memory
from litepose_jax import models
from litepose_jax.models import depthwise
from litepose_jax.models import layers

# The official PyTorch code measured on the project's machines (docs/BENCHMARKS.md), img/s:
# (backend, arch, size, batch, mode, dtype).
REFERENCES = {
    ('cpu', 'XS', 128, 16, 'train', 'float32'): (17.8, 'PyTorch CPU, 2 threads'),
    ('cpu', 'XS', 192, 16, 'train', 'float32'): (7.6, 'PyTorch CPU, 2 threads'),
    ('cpu', 'XS', 256, 1, 'forward', 'float32'): (1000 / 31, 'PyTorch CPU, 31 ms'),
    ('cpu', 'S', 448, 1, 'forward', 'float32'): (1000 / 130, 'PyTorch CPU, 130 ms'),
    ('cpu', 'M', 448, 1, 'forward', 'float32'): (1000 / 152, 'PyTorch CPU, 152 ms'),
    ('cpu', 'L', 512, 1, 'forward', 'float32'): (1000 / 286, 'PyTorch CPU, 286 ms'),
    ('cpu', 'S', 448, 4, 'train', 'float32'): (4 / 3.3, 'PyTorch CPU, 3.3 s/step'),
    ('gpu', 'XS', 256, 32, 'train', 'float32'): (526, 'PyTorch H100 fp32'),
    ('gpu', 'S', 448, 32, 'train', 'float32'): (167, 'PyTorch H100 fp32'),
    ('gpu', 'M', 448, 32, 'train', 'float32'): (136, 'PyTorch H100 fp32'),
    ('gpu', 'L', 512, 32, 'train', 'float32'): (90, 'PyTorch H100 fp32'),
    ('gpu', 'XS', 256, 32, 'train', 'bfloat16'): (800, 'PyTorch H100 bf16 autocast'),
    ('gpu', 'S', 448, 32, 'train', 'bfloat16'): (476, 'PyTorch H100 bf16 autocast'),
    ('gpu', 'M', 448, 32, 'train', 'bfloat16'): (381, 'PyTorch H100 bf16 autocast'),
    ('gpu', 'L', 512, 32, 'train', 'bfloat16'): (259, 'PyTorch H100 bf16 autocast'),
    ('gpu', 'XS', 256, 32, 'forward', 'bfloat16'): (2805, 'PyTorch H100 bf16'),
    ('gpu', 'S', 448, 32, 'forward', 'bfloat16'): (1953, 'PyTorch H100 bf16'),
    ('gpu', 'M', 448, 32, 'forward', 'bfloat16'): (1554, 'PyTorch H100 bf16'),
    ('gpu', 'L', 512, 32, 'forward', 'bfloat16'): (1060, 'PyTorch H100 bf16'),
}
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--arch', default='XS',
                 help='LitePose preset XS|S|M|L or official-schema JSON path; or a HigherHRNet '
                      'preset (higherhrnet-w16/-w32/-w48, shrink1..3) or official .yaml')
  p.add_argument('--size', type=int, default=128,
                 help='input height = width in px (multiple of 16)')
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--impl', default='auto', choices=depthwise.IMPLS, help='depthwise conv impl')
  p.add_argument('--conv-impl', default='auto', choices=layers.CONV_IMPLS,
                 help="dense conv / transposed conv impl ('lax' with --impl lax: naive Flax)")
  p.add_argument('--steps', type=int, default=10, help='timed steps (median reported)')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compilation')
  p.add_argument('--dtype', default='float32', choices=sorted(DTYPES))
  p.add_argument('--mode', default='both', choices=('both', 'forward', 'train'))
  p.add_argument('--num-joints', type=int, default=14)
  p.add_argument('--torch', action='store_true',
                 help='also time the reference PyTorch model (litepose_jax/reference/'
                      'torch_litepose.py or torch_higherhrnet.py, needs torch) with the same step '
                      'on this machine, for a same-machine ratio')
  p.add_argument('--compile-cache', default=None,
                 help='directory for JAX\'s persistent compilation cache (GPU autotuning is slow)')
  args = p.parse_args(argv)
  for name in ('size', 'batch', 'steps', 'num_joints'):
    if getattr(args, name) <= 0:
      p.error(f'--{name.replace("_", "-")} must be positive, got {getattr(args, name)}')
  if args.warmup < 0:
    p.error(f'--warmup must be >= 0, got {args.warmup}')
  return args


def _block(tree):
  """Waits for every array in a pytree (outputs, new params, optimizer state, BN stats)."""
  for leaf in jax.tree_util.tree_leaves(tree):
    if isinstance(leaf, jax.Array):
      leaf.block_until_ready()
  return tree


def _time_steps(step, state, n):
  """Runs `state = step(*state)` n times; returns (state, [(wall s, process CPU s)] per step).

  Process CPU time (all threads) is the robust figure on a shared machine: it hardly changes
  when other processes compete for the cores, while wall time does.
  """
  times = []
  for _ in range(n):
    t0, c0 = time.perf_counter(), time.process_time()
    state = _block(step(*state))
    times.append((time.perf_counter() - t0, time.process_time() - c0))
  return state, times


def bench_forward(model, variables, images, args):
  """(compile s, [step s]) of jitted inference (train=False)."""
  fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
  t0 = time.perf_counter()
  compiled = fwd.lower(variables, images).compile()
  compile_s = time.perf_counter() - t0
  run = lambda v, x, _: (v, x, compiled(v, x))
  state, _ = _time_steps(run, (variables, images, None), args.warmup)
  _, times = _time_steps(run, state, args.steps)
  return compile_s, times


def make_train_step(model, tx):
  """Adam step on MSE(out4, 0) + MSE(out2, 0) with the BatchNorm statistics update."""

  def loss_fn(params, batch_stats, images):
    (out4, out2), updates = model.apply({'params': params, 'batch_stats': batch_stats}, images,
                                        train=True, mutable=['batch_stats'])
    loss = jnp.mean(jnp.square(out4)) + jnp.mean(jnp.square(out2))
    return loss, updates['batch_stats']

  def train_step(params, opt_state, batch_stats, images):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, images)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, batch_stats, loss

  return jax.jit(train_step, donate_argnums=(0, 1, 2))


def bench_train(model, variables, images, args):
  """(compile s, [step s]) of the jitted train step."""
  tx = optax.adam(1e-3)
  params, batch_stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)
  step = make_train_step(model, tx)
  t0 = time.perf_counter()
  compiled = step.lower(params, opt_state, batch_stats, images).compile()
  compile_s = time.perf_counter() - t0
  run = lambda p, o, b, _: compiled(p, o, b, images)
  state = (params, opt_state, batch_stats, None)
  state, _ = _time_steps(run, state, args.warmup)
  state, times = _time_steps(run, state, args.steps)
  loss = float(state[3])
  if not np.isfinite(loss):
    raise FloatingPointError(f'train step produced a non-finite loss {loss}')
  return compile_s, times


def torch_model(spec, num_joints: int):
  """The reference PyTorch model of `spec` (LitePose ArchSpec or HigherHRNet HRNetSpec)."""
  # pylint: disable=g-import-not-at-top
  if isinstance(spec, models.HRNetSpec):
    from litepose_jax.reference.torch_higherhrnet import TorchHigherHRNet
    return TorchHigherHRNet(spec.to_extra(), num_joints)
  from litepose_jax.reference.torch_litepose import TorchLitePose
  # pylint: enable=g-import-not-at-top
  return TorchLitePose(spec.to_json_dict(), num_joints)


def bench_torch(spec, args, mode):
  """([step s]) of the reference PyTorch model (LitePose or HigherHRNet) doing the same work.

  On a CUDA machine (when JAX runs on a GPU too) it runs on the GPU in channels-last layout, with
  bf16 autocast for --dtype bfloat16 (the official recipe's AMP); else eager fp32 on the CPU.
  """
  # Imported here: torch is optional and slow to import, and only --torch needs it.
  # pylint: disable=g-import-not-at-top
  try:
    import torch
  except ImportError as e:
    raise SystemExit('error: --torch needs torch (pip install -r requirements-dev.txt)') from e
  # pylint: enable=g-import-not-at-top
  cuda = jax.default_backend() == 'gpu' and torch.cuda.is_available()
  dev = torch.device('cuda' if cuda else 'cpu')
  fmt = torch.channels_last if cuda else torch.contiguous_format
  autocast = torch.autocast('cuda', dtype=torch.bfloat16,
                            enabled=cuda and args.dtype == 'bfloat16')
  torch.backends.cudnn.benchmark = cuda  # as the official training code sets it
  torch.manual_seed(0)
  net = torch_model(spec, args.num_joints).to(dev, memory_format=fmt)
  x = torch.randn(args.batch, 3, args.size, args.size, device=dev).to(memory_format=fmt)
  opt = torch.optim.Adam(net.parameters(), lr=1e-3)

  def train_step():
    with autocast:
      out4, out2 = net(x)
      loss = out4.float().square().mean() + out2.float().square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()

  def forward():
    with torch.no_grad(), autocast:
      net(x)

  net.train(mode == 'train')
  step = train_step if mode == 'train' else forward
  times = []
  for i in range(args.warmup + args.steps):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    if cuda:
      torch.cuda.synchronize()
    if i >= args.warmup:
      times.append((time.perf_counter() - t0, time.process_time() - c0))
  return times


def report(mode, args, arch_name, impl, compile_s, times) -> str:
  """One table line; adds the official PyTorch figure and our ratio to it where there is one."""
  wall = [t for t, _ in times]
  med = statistics.median(wall)
  cpu = statistics.median(c for _, c in times)
  ips = args.batch / med
  backend = jax.default_backend()
  compile_txt = '     -  ' if compile_s is None else f'{compile_s:6.1f} s'
  line = (f'{mode:7s} | {arch_name:>4s}@{args.size:<4d} b{args.batch:<3d} {args.dtype:8s} | '
          f'{backend}:{impl:12s} | compile {compile_txt} | median {med * 1e3:8.1f} ms '
          f'(min {min(wall) * 1e3:.1f}, n={len(wall)}; process CPU {cpu * 1e3:.0f} ms) | '
          f'{ips:8.1f} img/s')
  ref = REFERENCES.get((backend, arch_name, args.size, args.batch, mode, args.dtype))
  if ref is not None:
    line += f' | ref {ref[0]:.1f} img/s ({ref[1]}) | ratio {ips / ref[0]:.2f}x'
  return line


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.compile_cache:
    jax.config.update('jax_compilation_cache_dir', args.compile_cache)
  try:
    spec = models.resolve_model_arch(args.arch)
  except (ValueError, FileNotFoundError) as e:
    print(f'error: --arch: {e}', file=sys.stderr)
    return 2
  # LitePose needs multiples of 16 (backbone stride), a HigherHRNet of its lowest branch's stride.
  multiple = getattr(spec, 'input_multiple', 16)
  if args.size % multiple:
    print(f'error: --size must be a multiple of {multiple} for {spec.name}, got {args.size}',
          file=sys.stderr)
    return 2
  arch_name = args.arch.upper() if args.arch.upper() in models.PRESET_NAMES else spec.name
  impl = depthwise.default_impl() if args.impl == 'auto' else args.impl
  conv_impl = layers.default_conv_impl() if args.conv_impl == 'auto' else args.conv_impl
  impl_name = f'{impl}/{conv_impl}'
  dtype = DTYPES[args.dtype]
  model = models.create_model(spec, args.num_joints, depthwise_impl=impl, dtype=dtype,
                              conv_impl=conv_impl)
  malloc = 'huge pages' if host_memory.hugepage_malloc_active() else 'default (4 KiB pages)'
  print(f'# {jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} '
        f'device(s)), jax {jax.__version__}; impls depthwise/conv = {impl_name} (auto: '
        f'{depthwise.default_impl()}/{layers.default_conv_impl()}); host malloc: {malloc}',
        flush=True)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.standard_normal((args.batch, args.size, args.size, 3), np.float32))
  # Shapes from one image (they do not depend on the batch); numpy draws avoid compiling init.
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), images[:1], train=False))
  variables = jax.tree.map(jnp.asarray, layers.numpy_init(shapes))
  for mode, bench in (('forward', bench_forward), ('train', bench_train)):
    if args.mode not in ('both', mode):
      continue
    compile_s, times = bench(model, variables, images, args)
    print(report(mode, args, arch_name, impl_name, compile_s, times), flush=True)
    if args.torch:
      ref = bench_torch(spec, args, mode)
      ratio = statistics.median(t for t, _ in ref) / statistics.median(t for t, _ in times)
      print(report(mode, args, arch_name, 'torch-spec', None, ref) + f' | JAX / torch {ratio:.2f}x',
            flush=True)
  return 0


if __name__ == '__main__':
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
