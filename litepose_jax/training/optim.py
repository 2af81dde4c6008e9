"""TrainState, the optimizer (Adam, official multi-step schedule, warm-up / cosine options), EMA."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from litepose_jax.errors import UserError

SCHEDULES = ('multistep', 'cosine', 'constant')


class TrainState(flax.struct.PyTreeNode):
  """Everything a resumed run needs besides the data position (which is `step`)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = None  # None unless config.ema_decay > 0

  def variables(self, use_ema: bool = True) -> dict:
    """Model variables {'params', 'batch_stats'}; the EMA params when kept and use_ema."""
    params = self.ema_params if (use_ema and self.ema_params is not None) else self.params
    return {'params': params, 'batch_stats': self.batch_stats}


def make_schedule(optim, steps_per_epoch: int, total_steps: int) -> Callable[[Any], Any]:
  """Learning rate per step (step counts from 0) from config.optim; milestones are in epochs."""
  if optim.schedule not in SCHEDULES:
    raise UserError(f'optim.schedule must be one of {SCHEDULES}, got {optim.schedule!r}')
  if total_steps <= 0:
    raise UserError(f'the run has {total_steps} steps: set total_steps or num_epochs > 0')
  if steps_per_epoch <= 0:
    raise ValueError(f'steps_per_epoch must be positive, got {steps_per_epoch}')
  lr = float(optim.lr)
  warmup = int(round(float(optim.warmup_epochs) * steps_per_epoch))
  if optim.schedule == 'multistep':
    # The official MultiStepLR is stepped once per epoch: the rate drops at epoch boundaries.
    bounds = {int(m) * steps_per_epoch: float(optim.decay_factor) for m in optim.milestones}
    main = optax.piecewise_constant_schedule(lr, bounds)
  elif optim.schedule == 'cosine':
    cos = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1), alpha=float(optim.min_lr_ratio))
    main = lambda step: cos(jnp.maximum(step - warmup, 0))
  else:
    main = optax.constant_schedule(lr)
  if warmup <= 0:
    return main
  return lambda step: main(step) * jnp.minimum(1.0, (step + 1.0) / warmup)


def make_optimizer(optim, schedule) -> optax.GradientTransformation:
  """Adam without weight decay (official), optional global-norm clipping, or AdamW."""
  parts = []
  if optim.grad_clip_norm and optim.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(float(optim.grad_clip_norm)))
  parts.append(optax.scale_by_adam(b1=float(optim.b1), b2=float(optim.b2), eps=float(optim.eps)))
  if optim.name == 'adamw':
    parts.append(optax.add_decayed_weights(float(optim.weight_decay)))
  elif optim.name != 'adam':
    raise UserError(f"optim.name must be 'adam' or 'adamw', got {optim.name!r}")
  elif optim.weight_decay:
    raise UserError('optim.weight_decay is ignored by Adam (as in the official code); use '
                     "optim.name='adamw' to decay weights")
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def create_state(variables: dict, tx: optax.GradientTransformation, ema: bool) -> TrainState:
  """A step-0 TrainState from model variables {'params', 'batch_stats'} (fp32)."""
  params = jax.tree.map(jnp.asarray, variables['params'])
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=jax.tree.map(jnp.asarray, variables.get('batch_stats', {})),
                    opt_state=tx.init(params),
                    ema_params=jax.tree.map(jnp.copy, params) if ema else None)


def ema_update(ema_params, params, decay: float):
  """ema <- decay * ema + (1 - decay) * params."""
  return jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), ema_params, params)
