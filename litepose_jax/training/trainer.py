"""The training loop: `train_and_evaluate(config, workdir)`.

One code path for every layout: the train step is `jax.jit` over a 1-D device Mesh ('data') with
the batch sharded on its first axis and the state replicated, so XLA computes BatchNorm statistics
over the global batch and all-reduces the gradients. Each host feeds its own rows of the global
batch (`jax.make_array_from_process_local_data`); multi-host runs call jax.distributed.initialize()
first (see `initialize_distributed`).

Resume: the data stream is a pure function of the step, so restoring the latest checkpoint (state,
optimizer, step) and restarting the stream at that step reproduces the uninterrupted run.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Callable

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import tqdm

from litepose_jax import checkpoints as model_ckpt
from litepose_jax import models
from litepose_jax.data import normalize
from litepose_jax.training import checkpointing
from litepose_jax.training import data as data_lib
from litepose_jax.training import losses
from litepose_jax.training import optim
from litepose_jax.training import summary

DEFAULT_CACHE = os.path.join('~', '.cache', 'litepose_jax', 'jax_cache')


class NonFiniteLossError(RuntimeError):
  """The loss became NaN / Inf; the run stopped without saving the bad state."""


def enable_compilation_cache(path: str = '') -> str:
  """Turns on JAX's persistent compilation cache (a second run skips the XLA compile)."""
  path = os.path.expanduser(path or os.environ.get('LITEPOSE_JAX_CACHE', '') or DEFAULT_CACHE)
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  # The cache is set up at the first compile of the process; a later directory needs a reset.
  from jax._src import compilation_cache  # pylint: disable=g-import-not-at-top
  if compilation_cache.is_initialized():
    compilation_cache.reset_cache()
  return path


def initialize_distributed(config) -> None:
  """jax.distributed.initialize from config.distributed (explicit address, or auto on pods)."""
  d = config.distributed
  if d.coordinator_address:
    if jax.config.jax_platforms in (None, '', 'cpu') and d.cpu_collectives:
      # CPU-only multi-process runs (tests, this machine) need a CPU collectives backend.
      jax.config.update('jax_cpu_collectives_implementation', d.cpu_collectives)
    jax.distributed.initialize(d.coordinator_address, num_processes=int(d.num_processes),
                               process_id=int(d.process_id))
  elif d.auto:
    jax.distributed.initialize()  # TPU pods, SLURM / Open MPI clusters detect everything


def model_from_config(config, num_joints: int):
  m = config.model
  dtype = jnp.bfloat16 if config.mixed_precision else jnp.float32
  return models.create_model(m.arch, num_joints, fusion=m.fusion,
                             kernel_size=m.kernel_size or None, width_mult=m.width_mult,
                             depthwise_impl=m.depthwise_impl, dtype=dtype,
                             conv_impl=m.get('conv_impl', 'auto'))


def checkpoint_model_config(config, model, info: data_lib.DataInfo) -> dict:
  """model.json content for the checkpoints of this run (fp32 inference model)."""
  return model_ckpt.model_config(model.arch, info.num_joints, fusion=config.model.fusion,
                                 joint_set=info.joint_set,
                                 input_size=int(config.data.input_size))


def make_train_step(model, tx, schedule, config, num_joints: int) -> Callable:
  """(state, batch) -> (state, metrics): one optimizer step on the global batch."""
  lc = config.loss
  ema_decay = float(config.ema_decay)

  def train_step(state: optim.TrainState, batch):
    def loss_fn(params):
      (out4, out2), updates = model.apply(
          {'params': params, 'batch_stats': state.batch_stats},
          normalize.model_input(batch['image'], jnp), train=True,
          mutable=['batch_stats'])
      parts = losses.litepose_loss(out4, out2, batch, num_joints=num_joints,
                                   heatmap_factors=tuple(lc.heatmap_factors),
                                   push_factor=lc.push_factor, pull_factor=lc.pull_factor,
                                   ae_type=lc.ae_type)
      parts = {k: jnp.mean(v) for k, v in parts.items()}  # the official trainer averages
      return parts['total'], (parts, updates['batch_stats'])

    (_, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    ema = state.ema_params
    if ema is not None:
      ema = optim.ema_update(ema, params, ema_decay)
    new = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                        opt_state=opt_state, ema_params=ema)
    metrics = dict(parts, grad_norm=optax_global_norm(grads), lr=schedule(state.step))
    return new, metrics

  return train_step


def optax_global_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


class _Preemption:
  """SIGTERM / SIGINT set a flag; the loop saves a checkpoint and returns at the next step."""

  def __init__(self):
    self.requested = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)

  def agreed(self) -> bool:
    """True on every host when any host got a signal (a collective when multi-host)."""
    flag = self.requested is not None
    if jax.process_count() > 1:
      flag = bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
    return flag


def _check_finite(step: int, metrics: dict, ckpt: checkpointing.Checkpointer) -> None:
  if all(np.isfinite(v) for v in metrics.values()):
    return
  last = ckpt.latest_step()
  where = (f'the last good checkpoint is step {last} in {ckpt.directory} (resume restarts there)'
           if last is not None else 'no checkpoint was saved yet')
  parts = ', '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items()))
  raise NonFiniteLossError(
      f'non-finite loss at step {step} ({parts}); stopped without saving it: {where}. Try a '
      'lower optim.lr, optim.grad_clip_norm > 0, or mixed_precision=False.')


def _save_config(config, workdir: str) -> None:
  path = os.path.join(workdir, 'config.json')
  with open(path + '.tmp', 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(path + '.tmp', path)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       max_steps: int | None = None, data_fn: Callable | None = None,
                       devices=None) -> dict:
  """Trains (resuming from WORKDIR/checkpoints if present), evaluates, checkpoints.

  max_steps: stop after this many steps of this invocation (the schedule still spans the full
  run; tests use it to simulate an interruption). data_fn replaces data.make_data. devices:
  the data-parallel devices (default: all devices of all processes).
  Returns {'step', 'preempted', 'metrics' (last logged), 'eval' (last evaluation or None)}.
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  enable_compilation_cache(config.get('compilation_cache_dir', ''))
  pidx, pcount = jax.process_index(), jax.process_count()
  is_main = pidx == 0
  if is_main:
    _save_config(config, workdir)

  devices = np.array(jax.devices() if devices is None else devices)
  mesh = Mesh(devices, ('data',))
  repl = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P('data'))
  global_batch = int(config.data.batch_size)
  if global_batch % len(devices):
    raise ValueError(f'data.batch_size {global_batch} must be divisible by the {len(devices)} '
                     'devices (data-parallel)')

  make = data_fn or data_lib.make_data
  # The data position is the step: the stream is reopened at the restored step below (opening
  # is lazy, nothing is read before the first batch is requested).
  stream, info = make(config, pidx, pcount, 0)
  model = model_from_config(config, info.num_joints)
  steps_per_epoch = max(info.num_images // global_batch, 1)
  total_steps = int(config.total_steps) or int(config.num_epochs) * steps_per_epoch
  schedule = optim.make_schedule(config.optim, steps_per_epoch, total_steps)
  tx = optim.make_optimizer(config.optim, schedule)

  variables = models.init_variables(model, int(config.data.input_size), int(config.seed))
  state = optim.create_state(variables, tx, ema=float(config.ema_decay) > 0)
  state = jax.device_put(state, repl)
  ckpt = checkpointing.Checkpointer(workdir, checkpoint_model_config(config, model, info),
                                    int(config.keep_checkpoints))
  if ckpt.latest_step() is not None:
    state = ckpt.restore(state)
  start = int(checkpointing.to_host(state.step))
  end = total_steps if max_steps is None else min(total_steps, start + int(max_steps))
  if start:
    stream, _ = make(config, pidx, pcount, start)

  train_step = jax.jit(make_train_step(model, tx, schedule, config, info.num_joints),
                       in_shardings=(repl, data_sharding), out_shardings=(repl, repl),
                       donate_argnums=(0,))
  eval_model = model_from_config(config, info.num_joints)
  forward = jax.jit(lambda v, x: eval_model.apply(v, x, train=False))

  writer = summary.MetricWriter(workdir, enabled=is_main, resume_step=start)
  evaluator = None
  if config.eval.enabled:
    from litepose_jax.training import evaluate  # pylint: disable=g-import-not-at-top
    evaluator = evaluate.make_evaluator(config, info, workdir) if is_main else None

  def to_global(local):
    return {k: jax.make_array_from_process_local_data(data_sharding, np.asarray(v))
            for k, v in local.items()}

  def run_eval(step):
    if evaluator is None or not is_main:
      return None  # process 0 evaluates; the AP only drives its logs and best/ export
    result = evaluator(eval_model, checkpointing.to_host(state.variables()), step)
    writer.scalars(step, {f'eval/{k}': v for k, v in result.items()
                          if isinstance(v, (int, float))})
    if 'AP' in result:
      ckpt.maybe_save_best(state, step, float(result['AP']))
    return result

  if is_main:
    print(f'litepose train: {model.arch.name} {info.num_joints} joints, {info.num_images} '
          f'images, global batch {global_batch} on {len(devices)} devices / {pcount} processes, '
          f'steps {start}..{end} of {total_steps}, workdir {workdir}', flush=True)
  last_logged, last_eval, preempted = {}, None, False
  pending = None  # (step, metrics on device): checked one step late to keep dispatch async
  t_log, n_log = time.time(), 0
  bar = tqdm.tqdm(total=end, initial=start, disable=not (is_main and config.progress),
                  unit='step', dynamic_ncols=True)
  try:
    with _Preemption() as preemption:
      step, due_eval = start, False
      every = lambda n: bool(n) and step % int(n) == 0
      while step < end:
        local = next(stream)
        batch = to_global(local)
        t_step = step
        state, metrics = train_step(state, batch)
        step += 1
        if pending is not None:
          _check_finite(pending[0], checkpointing.to_host(pending[1]), ckpt)
        pending = (t_step, metrics)
        n_log += 1
        bar.update(1)
        due_ckpt = every(config.checkpoint_every) or step == end
        due_log = every(config.log_every) or step == end
        due_eval = every(config.eval_every)
        stop = preemption.agreed()
        if due_log or due_ckpt or due_eval or stop:
          host = checkpointing.to_host(metrics)
          _check_finite(t_step, host, ckpt)
          pending = None
        if due_log:
          now = time.time()
          ips = n_log * global_batch / max(now - t_log, 1e-9)
          last_logged = {f'train/{k}': float(v) for k, v in host.items()}
          last_logged['train/images_per_sec'] = ips
          writer.scalars(step, last_logged)
          bar.set_postfix({'loss': f"{host['total']:.4g}", 'hm': f"{host['heatmap4'] + host['heatmap2']:.3g}",
                           'push': f"{host['push']:.2g}", 'pull': f"{host['pull']:.2g}",
                           'img/s': f'{ips:.1f}'}, refresh=False)
          t_log, n_log = time.time(), 0
        if every(config.image_summary_every):
          n = min(3, len(local['image']))
          # Host copies: a process-local forward pass, also when the state spans several hosts.
          out4, _ = forward(checkpointing.to_host(state.variables()),
                            normalize.model_input(local['image'][:n]))
          panels = summary.prediction_panels(local['image'][:n], local['heatmaps4'][:n],
                                             np.asarray(out4[..., :info.num_joints], np.float32))
          writer.images(step, 'train/image_gt_pred', panels)
        if due_ckpt or stop:
          ckpt.save(state)
        if due_eval:
          last_eval = run_eval(step)
        if stop:
          preempted = True
          if is_main:
            bar.write(f'litepose train: {preemption.requested or "preemption"} received: saved '
                      f'step {step} to {ckpt.directory}; rerun the same command to resume')
          break
      if pending is not None:
        _check_finite(pending[0], checkpointing.to_host(pending[1]), ckpt)
      if not preempted and step == total_steps and config.eval.enabled and not due_eval:
        last_eval = run_eval(step)
  finally:
    bar.close()
    writer.close()
    ckpt.close()
  return {'step': step, 'preempted': preempted, 'metrics': last_logged, 'eval': last_eval,
          'state': state}
