"""Train-state checkpoints (resume, best/): orbax CheckpointManager under WORKDIR/checkpoints/.

Not to be confused with litepose_jax/checkpoints.py, the self-describing model checkpoints
(model.json + variables) that every inference command loads; this module writes those too.

Each step directory holds
  train_state/  the full TrainState (params, batch_stats, optimizer state, EMA, step)
  variables/    the model variables for inference (EMA params when EMA is on)
  model.json    written last (process 0), so litepose_jax.checkpoints.load_model(WORKDIR) and every
                command taking --checkpoint can use a training workdir directly.
Orbax writes a step into a temporary directory and renames it when complete, so a crash mid-save
leaves the previous step as the latest good checkpoint. WORKDIR/best/ holds the variables with the
highest evaluation AP (written to best.tmp and renamed), with best.json beside it.
"""
from __future__ import annotations

import json
import os
import shutil

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp

from litepose_jax import checkpoints
from litepose_jax.errors import UserError
from litepose_jax.training import optim


def to_host(tree):
  """Numpy copy of a tree of (possibly multi-host, replicated) arrays."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x)
  return jax.tree.map(get, tree)


def _state_tree(state: optim.TrainState) -> dict:
  tree = flax.serialization.to_state_dict(state)
  if state.ema_params is None:
    tree.pop('ema_params', None)
  return tree


def _shape_differences(saved, target) -> list[str]:
  """'path: how it differs' for each array that the saved and the target trees disagree on."""
  def shapes(tree):
    return {jax.tree_util.keystr(path): tuple(x.shape)
            for path, x in jax.tree_util.tree_leaves_with_path(tree)}
  old, new = shapes(saved), shapes(target)
  return ([f'{k} only in the checkpoint' for k in sorted(old.keys() - new.keys())]
          + [f'{k} not in the checkpoint' for k in sorted(new.keys() - old.keys())]
          + [f'{k} saved {old[k]}, now {new[k]}' for k in sorted(old.keys() & new.keys())
             if old[k] != new[k]])


class Checkpointer:
  """Periodic keep-N checkpoints, resume, and best-by-AP model export for one workdir."""

  def __init__(self, workdir: str, model_config: dict, keep: int = 3):
    if keep < 1:
      raise UserError(f'keep_checkpoints must be >= 1, got {keep}')
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    self.model_config = dict(model_config)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=False,
                                             cleanup_tmp_directories=True),
        # Explicit handlers (the ones StandardSave uses anyway) make item_metadata readable.
        item_handlers={'train_state': ocp.StandardCheckpointHandler(),
                       'variables': ocp.StandardCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, state: optim.TrainState) -> int:
    """Saves `state` at its step (blocking); returns the step."""
    step = int(jax.device_get(state.step) if jax.process_count() == 1 else to_host(state.step))
    self.manager.save(step, args=ocp.args.Composite(
        train_state=ocp.args.StandardSave(_state_tree(state)),
        # Host numpy copies: the inference checkpoint must not depend on the training topology.
        variables=ocp.args.StandardSave(to_host(state.variables()))), force=True)
    self.manager.wait_until_finished()
    if jax.process_index() == 0:
      step_dir = os.path.join(self.directory, str(step))
      tmp = os.path.join(step_dir, checkpoints.MODEL_JSON + '.tmp')
      with open(tmp, 'w') as f:
        json.dump(dict(self.model_config, step=step), f, indent=2)
      os.replace(tmp, os.path.join(step_dir, checkpoints.MODEL_JSON))
    return step

  def restore(self, state: optim.TrainState, step: int | None = None) -> optim.TrainState:
    """Restores the latest (or given) step into the structure and shardings of `state`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint to restore in {self.directory}')
    target = _state_tree(state)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
        target)
    saved = self.manager.item_metadata(step)['train_state']
    differences = _shape_differences(saved, target)
    if differences:
      raise UserError(
          f'checkpoint {self.directory}/{step} does not match this config (model, optimizer or '
          f'EMA setting changed?): {"; ".join(differences[:3])}'
          + (f' and {len(differences) - 3} more' if len(differences) > 3 else ''))
    restored = self.manager.restore(step, args=ocp.args.Composite(
        train_state=ocp.args.StandardRestore(abstract)))
    tree = dict(restored['train_state'])
    if state.ema_params is None:
      tree['ema_params'] = None
    return flax.serialization.from_state_dict(state, tree)

  def best(self) -> dict | None:
    path = os.path.join(self.workdir, 'best.json')
    if not os.path.isfile(path):
      return None
    with open(path) as f:
      return json.load(f)

  def maybe_save_best(self, state: optim.TrainState, step: int, metric: float,
                      name: str = 'AP') -> bool:
    """Exports the variables to WORKDIR/best when `metric` beats the best so far."""
    best = self.best()
    if best is not None and not metric > best[name]:
      return False
    variables = to_host(state.variables())
    if jax.process_index() == 0:
      tmp = os.path.join(self.workdir, 'best.tmp')
      final = os.path.join(self.workdir, 'best')
      shutil.rmtree(tmp, ignore_errors=True)
      checkpoints.save_model(tmp, variables, dict(self.model_config, step=step, **{name: metric}))
      old = os.path.join(self.workdir, 'best.old')
      shutil.rmtree(old, ignore_errors=True)
      if os.path.exists(final):
        os.replace(final, old)
      os.replace(tmp, final)
      shutil.rmtree(old, ignore_errors=True)
      with open(os.path.join(self.workdir, 'best.json.tmp'), 'w') as f:
        json.dump({'step': step, name: metric}, f)
      os.replace(os.path.join(self.workdir, 'best.json.tmp'), os.path.join(self.workdir, 'best.json'))
    return True

  def close(self) -> None:
    self.manager.close()
