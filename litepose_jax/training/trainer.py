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

from collections.abc import Callable, Iterator
import dataclasses
import os
import signal
import time

import jax
from jax._src import compilation_cache  # no public API resets the cache's directory
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import ml_collections
import numpy as np
import optax
import tqdm

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.nas import sort as nas_sort
from litepose_jax.nas import supernet as nas_supernet
from litepose_jax.training import input_pipeline
from litepose_jax.training import losses
from litepose_jax.training import optim
from litepose_jax.training import summary
from litepose_jax.training import supernet
from litepose_jax.training import train_checkpoints

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
    jax.distributed.initialize(d.coordinator_address, num_processes=d.num_processes,
                               process_id=d.process_id)
  elif d.auto:
    jax.distributed.initialize()  # TPU pods, SLURM / Open MPI clusters detect everything


def model_for_training(config, num_joints: int) -> models.LitePose:
  """The LitePose of config.model (or the super-net of config.supernet), computing in bf16 when
  config.mixed_precision (params fp32)."""
  m = config.model
  dtype = jnp.bfloat16 if config.mixed_precision else jnp.float32
  if supernet.enabled(config):
    supernet.check(config)
    return nas.create_supernet(num_joints, supernet.search_space(config), fusion=m.fusion,
                               depthwise_impl=m.depthwise_impl, dtype=dtype,
                               conv_impl=m.conv_impl)
  return models.create_model(m.arch, num_joints, fusion=m.fusion,
                             kernel_size=m.kernel_size or None, width_mult=m.width_mult,
                             depthwise_impl=m.depthwise_impl, dtype=dtype,
                             conv_impl=m.conv_impl)


def checkpoint_model_config(config, model, info: input_pipeline.DataInfo) -> dict:
  """model.json content for the checkpoints of this run (fp32 inference model)."""
  if supernet.enabled(config):
    return nas.supernet_model_config(model.space, info.num_joints, fusion=config.model.fusion,
                                     joint_set=info.joint_set, input_size=config.data.input_size)
  return checkpoints.model_config(model.arch, info.num_joints, fusion=config.model.fusion,
                                  joint_set=info.joint_set, input_size=config.data.input_size)


def make_train_step(model, tx, schedule, config, num_joints: int) -> Callable:
  """(state, batch, masks) -> (state, metrics): one optimizer step on the global batch.

  masks: None for a fixed network; for a super-net, the channel masks of the step's sub-nets
  (training/supernet.py: step_masks)."""
  lc = config.loss
  ema_decay = config.ema_decay
  supernet_loss = (supernet.make_loss_fn(model, config, num_joints)
                   if supernet.enabled(config) else None)

  def train_step(state: optim.TrainState, batch, masks=None):
    def loss_fn(params):
      if supernet_loss is not None:
        return supernet_loss(params, state.batch_stats, batch, masks)
      (out4, out2), updates = model.apply(
          {'params': params, 'batch_stats': state.batch_stats},
          normalize.model_input(batch['image'], jnp), train=True,
          mutable=['batch_stats'])
      parts = losses.batch_loss(out4, out2, batch, num_joints, lc)
      return parts['total'], (parts, updates['batch_stats'])

    (_, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
      ema = optim.ema_update(ema, params, ema_decay)
    new = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                        opt_state=opt_state, ema_params=ema)
    # The params are fp32 also under mixed precision, so are their gradients: the norm sums in
    # fp32 (optax.tree.norm sums in the leaves' dtype).
    metrics = dict(parts, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
    return new, metrics

  return train_step


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


class _FiniteGuard:
  """Stops the run at the first non-finite metric, before the bad state is checkpointed.

  A step's metrics are fetched one step late (after the next step is dispatched) so that the
  host never waits for the device, except when the loop needs them now anyway (`fetch`).
  """

  def __init__(self, ckpt: train_checkpoints.Checkpointer):
    self.ckpt = ckpt
    self.pending = None  # (step, metrics on device)

  def defer(self, step: int, metrics: dict) -> None:
    """Checks the previous step's metrics and keeps this step's for later."""
    self.flush()
    self.pending = (step, metrics)

  def fetch(self) -> dict:
    """Host copy of the pending step's metrics, checked now."""
    step, metrics = self.pending
    self.pending = None
    host = train_checkpoints.to_host(metrics)
    self._check(step, host)
    return host

  def flush(self) -> None:
    if self.pending is not None:
      self.fetch()

  def _check(self, step: int, metrics: dict) -> None:
    if all(np.isfinite(v) for v in metrics.values()):
      return
    last = self.ckpt.latest_step()
    where = (f'the last good checkpoint is step {last} in {self.ckpt.directory} (resume '
             'restarts there)' if last is not None else 'no checkpoint was saved yet')
    parts = ', '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items()))
    raise NonFiniteLossError(
        f'non-finite loss at step {step} ({parts}); stopped without saving it: {where}. Try a '
        'lower optim.lr, optim.grad_clip_norm > 0, or mixed_precision=False.')


class _TrainLog:
  """Train metrics with images/sec to metrics.jsonl / TensorBoard, and the progress bar."""

  def __init__(self, writer: summary.MetricWriter, bar: tqdm.tqdm, global_batch: int):
    self.writer, self.bar, self.global_batch = writer, bar, global_batch
    self.t0, self.steps = time.time(), 0

  def count(self) -> None:
    self.steps += 1
    self.bar.update(1)

  def write(self, step: int, host: dict) -> dict:
    """Logs host metrics at step; returns them as {'train/<name>': value}."""
    ips = self.steps * self.global_batch / max(time.time() - self.t0, 1e-9)
    logged = {f'train/{k}': float(v) for k, v in host.items()}
    logged['train/images_per_sec'] = ips
    self.writer.scalars(step, logged)
    self.bar.set_postfix({
        'loss': f"{host['total']:.4g}", 'hm': f"{host['heatmap4'] + host['heatmap2']:.3g}",
        'push': f"{host['push']:.2g}", 'pull': f"{host['pull']:.2g}", 'img/s': f'{ips:.1f}'},
                         refresh=False)
    self.t0, self.steps = time.time(), 0
    return logged


@dataclasses.dataclass
class _Run:
  """What one invocation sets up before its first step."""
  config: ml_collections.ConfigDict
  workdir: str
  is_main: bool
  info: input_pipeline.DataInfo
  model: models.LitePose
  global_batch: int
  total_steps: int
  data_sharding: NamedSharding
  train_step: Callable  # (state, global batch, masks) -> (state, metrics), jitted
  step_masks: Callable  # step -> the masks argument of train_step (None for a fixed net)
  forward: Callable  # (variables, images) -> outputs of the inference-mode model, jitted
  ckpt: train_checkpoints.Checkpointer
  evaluator: Callable | None = None  # process 0 with config.eval.enabled only
  writer: summary.MetricWriter | None = None

  def to_global(self, local: dict) -> dict:
    """This host's rows -> the global batch sharded over the mesh."""
    return {k: jax.make_array_from_process_local_data(self.data_sharding, np.asarray(v))
            for k, v in local.items()}

  def evaluate(self, state: optim.TrainState, step: int) -> dict | None:
    """Evaluates, logs eval/* and exports best/ on a new best AP (process 0 only)."""
    if self.evaluator is None:
      return None  # process 0 evaluates; the AP only drives its logs and best/ export
    result = self.evaluator(self.model, train_checkpoints.to_host(state.variables()), step)
    self.writer.scalars(step, {f'eval/{k}': v for k, v in result.items()
                               if isinstance(v, (int, float))})
    if 'AP' in result:
      self.ckpt.maybe_save_best(state, step, float(result['AP']))
    return result

  def image_summary(self, state: optim.TrainState, local: dict, step: int) -> None:
    """Writes image | GT heatmaps | predicted heatmaps panels of up to 3 local images."""
    n = min(3, len(local['image']))
    # Host copies: a process-local forward pass, also when the state spans several hosts.
    out4, _ = self.forward(train_checkpoints.to_host(state.variables()),
                           normalize.model_input(local['image'][:n]))
    panels = summary.prediction_panels(local['image'][:n], local['heatmaps4'][:n],
                                       np.asarray(out4[..., :self.info.num_joints], np.float32))
    self.writer.images(step, 'train/image_gt_pred', panels)


def _init_from(config, model, fresh: dict) -> dict:
  """Step-0 variables from the checkpoint config.init_from (fine-tuning an extracted sub-net, or
  a super-net started from a trained largest network, its channels sorted by importance)."""
  path = config.init_from
  _, loaded, loaded_cfg = checkpoints.load_model(path)
  if supernet.enabled(config) and nas_supernet.SUPERNET_FIELD not in loaded_cfg:
    s = config.supernet
    print(f'litepose train: super-net initialised from the largest network {path} (channels '
          f'{"sorted by importance" if s.sort_channels else "as they are"}'
          f'{", fresh head" if s.fresh_head else ""})', flush=True)
    return nas_sort.init_supernet_from(loaded, model.space, model.num_joints,
                                       sort=s.sort_channels, fresh_head=s.fresh_head,
                                       seed=config.seed, fusion=model.fusion)
  want = models.variable_shapes(model)
  have = {tuple(str(getattr(p, 'key', p)) for p in path_): tuple(np.shape(v)) for path_, v in
          jax.tree_util.tree_flatten_with_path(dict(loaded))[0]}
  diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
  if diff:
    shown = ', '.join(f'{"/".join(k)}: checkpoint {have.get(k)}, model {want.get(k)}'
                      for k in diff[:5])
    raise UserError(f'config.init_from {path}: its variables do not fit the configured model '
                    f'({len(diff)} differ: {shown}); use the same architecture '
                    '(config.model.arch) as in the checkpoint model.json')
  print(f'litepose train: initialised from {path}', flush=True)
  return jax.tree.map(lambda v, f: np.asarray(v, f.dtype), loaded, fresh)


def _save_config(config, workdir: str) -> None:
  path = os.path.join(workdir, 'config.json')
  with open(path + '.tmp', 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(path + '.tmp', path)


def _setup(config, workdir: str, info: input_pipeline.DataInfo,
           devices) -> tuple[_Run, optim.TrainState]:
  """The run (model, optimizer, jitted step, checkpointer) and its step-0 state."""
  devices = np.array(jax.devices() if devices is None else devices)
  mesh = Mesh(devices, ('data',))
  repl = NamedSharding(mesh, PartitionSpec())
  data_sharding = NamedSharding(mesh, PartitionSpec('data'))
  global_batch = config.data.batch_size
  if global_batch % len(devices):
    raise UserError(f'data.batch_size {global_batch} must be divisible by the {len(devices)} '
                    'devices (data-parallel)')
  model = model_for_training(config, info.num_joints)
  steps_per_epoch = max(info.num_images // global_batch, 1)
  total_steps = config.total_steps or config.num_epochs * steps_per_epoch
  schedule = optim.make_schedule(config.optim, steps_per_epoch, total_steps)
  tx = optim.make_optimizer(config.optim, schedule)
  ckpt = train_checkpoints.Checkpointer(workdir, checkpoint_model_config(config, model, info),
                                        config.keep_checkpoints)
  variables = models.init_variables(model, config.data.input_size, config.seed)
  if config.get('init_from') and ckpt.latest_step() is None:
    variables = _init_from(config, model, variables)
  state = optim.create_state(variables, tx, ema=config.ema_decay > 0)
  if supernet.enabled(config):
    def step_masks(step):
      # Every host computes the same masks from (seed, step); numpy arguments of the jitted
      # step are replicated (an explicit device_put to the global sharding hung multi-host).
      return supernet.masks_for_jit(supernet.step_masks(config, model, step))
  else:
    def step_masks(step):
      del step
  train_step = jax.jit(make_train_step(model, tx, schedule, config, info.num_joints),
                       in_shardings=(repl, data_sharding, repl), out_shardings=(repl, repl),
                       donate_argnums=(0,))
  run = _Run(
      config=config, workdir=workdir, is_main=jax.process_index() == 0, info=info, model=model,
      global_batch=global_batch, total_steps=total_steps, data_sharding=data_sharding,
      train_step=train_step, step_masks=step_masks,
      forward=jax.jit(lambda v, x: model.apply(v, x, train=False)), ckpt=ckpt)
  if (config.eval.enabled or info.holdout is not None) and run.is_main:
    # Imported here: the evaluation stack (COCO API, decoder) adds ~0.8 s to the start of every
    # run, which fake-data runs and benchmarks do not need.
    from litepose_jax.training import eval_impl  # pylint: disable=g-import-not-at-top
    if info.holdout is not None:  # written even without evaluation: what was never trained on
      eval_impl.write_holdout(workdir, info.holdout, config.data.seed,
                              resuming=run.ckpt.latest_step() is not None)
    if config.eval.enabled:
      run.evaluator = eval_impl.make_evaluator(config, info, workdir)
  return run, jax.device_put(state, repl)


@dataclasses.dataclass
class _Progress:
  """Where the loop is, and what it last logged and evaluated."""
  step: int
  preempted: bool = False
  logged: dict = dataclasses.field(default_factory=dict)
  evaluation: dict | None = None
  evaluated_step: int | None = None


def _every(n: int, step: int) -> bool:
  """Whether a periodic action with period n (0: never) is due after `step` steps."""
  return bool(n) and step % n == 0


def _train_loop(run: _Run, state, stream: Iterator[dict], end: int, log: _TrainLog,
                progress: _Progress, preemption: _Preemption):
  """Steps until `end` or a preemption; returns the state (progress is updated in place)."""
  cfg = run.config
  guard = _FiniteGuard(run.ckpt)
  while progress.step < end:
    local = next(stream)
    state, metrics = run.train_step(state, run.to_global(local), run.step_masks(progress.step))
    progress.step += 1
    step = progress.step
    guard.defer(step - 1, metrics)
    log.count()
    due_ckpt = _every(cfg.checkpoint_every, step) or step == end
    due_log = _every(cfg.log_every, step) or step == end
    due_eval = _every(cfg.eval_every, step)
    stop = preemption.agreed()
    if due_log or due_ckpt or due_eval or stop:
      host = guard.fetch()
    if due_log:
      progress.logged = log.write(step, host)
    if _every(cfg.image_summary_every, step):
      run.image_summary(state, local, step)
    if due_ckpt or stop:
      run.ckpt.save(state)
    if due_eval:
      progress.evaluation, progress.evaluated_step = run.evaluate(state, step), step
    if stop:
      progress.preempted = True
      if run.is_main:
        log.bar.write(f'litepose train: {preemption.requested or "preemption"} received: saved '
                      f'step {step} to {run.ckpt.directory}; rerun the same command to resume')
      break
  guard.flush()
  return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       max_steps: int | None = None, data_fn: Callable | None = None,
                       devices=None) -> dict:
  """Trains (resuming from WORKDIR/checkpoints if present), evaluates, checkpoints.

  max_steps: stop after this many steps of this invocation (the schedule still spans the full
  run; tests use it to simulate an interruption). data_fn replaces input_pipeline.make_data. devices:
  the data-parallel devices (default: all devices of all processes).
  Returns {'step', 'preempted', 'metrics' (last logged), 'eval' (last evaluation or None),
  'state', 'data' (DataInfo: skipped images, zero-weighted samples, dropped people)}.
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  enable_compilation_cache(config.compilation_cache_dir)
  pidx, pcount = jax.process_index(), jax.process_count()
  if pidx == 0:
    _save_config(config, workdir)
  make_data = data_fn or input_pipeline.make_data
  # The data position is the step: the stream is reopened at the restored step below (opening
  # is lazy, nothing is read before the first batch is requested).
  stream, info = make_data(config, pidx, pcount, 0)
  run, state = _setup(config, workdir, info, devices)
  if run.ckpt.latest_step() is not None:
    state = run.ckpt.restore(state)
  start = int(train_checkpoints.to_host(state.step))
  end = run.total_steps if max_steps is None else min(run.total_steps, start + int(max_steps))
  if start:
    # The reopened stream's info holds the tally of what this invocation trains on.
    stream, info = make_data(config, pidx, pcount, start)
  run.writer = summary.MetricWriter(workdir, enabled=run.is_main, resume_step=start)
  if run.is_main:
    held = f' ({len(info.holdout)} more held out)' if info.holdout is not None else ''
    print(f'litepose train: {run.model.arch.name} {info.num_joints} joints, {info.num_images} '
          f'images{held}, global batch {run.global_batch} on {run.data_sharding.mesh.size} devices / '
          f'{pcount} processes, steps {start}..{end} of {run.total_steps}, workdir {workdir}',
          flush=True)
  bar = tqdm.tqdm(total=end, initial=start, disable=not (run.is_main and config.progress),
                  unit='step', dynamic_ncols=True)
  progress = _Progress(step=start)
  try:
    with _Preemption() as preemption:
      state = _train_loop(run, state, stream, end, _TrainLog(run.writer, bar, run.global_batch),
                          progress, preemption)
      # The final evaluation, unless the last step already had one.
      if (not progress.preempted and progress.step == run.total_steps and config.eval.enabled
          and progress.evaluated_step != progress.step):
        progress.evaluation = run.evaluate(state, progress.step)
  finally:
    bar.close()
    run.writer.close()
    run.ckpt.close()
  if run.is_main and info.source is not None:
    # Each bad sample warns once (the first few only); the total is said here, once.
    where = f' (process 0 of {pcount})' if pcount > 1 else ''
    print(f'litepose train: steps {start}..{progress.step}{where}: '
          f'{info.summary(config.data.max_people)}', flush=True)
  return {'step': progress.step, 'preempted': progress.preempted, 'metrics': progress.logged,
          'eval': progress.evaluation, 'state': state, 'data': info,
          'train_step_compiles': run.train_step._cache_size()}  # pylint: disable=protected-access
