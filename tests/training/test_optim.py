"""Schedules, the optimizer options and EMA."""
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax import config_files
from litepose_jax.errors import UserError
from litepose_jax.training import optim

XS = str(pathlib.Path(__file__).resolve().parents[2] / 'configs' / 'litepose_xs.py')


def _optim(**kw):
  o = config_files.load_config(XS).optim
  o.update(kw)
  return o


def test_official_multistep_drops_at_epoch_boundaries():
  sched = optim.make_schedule(_optim(), steps_per_epoch=10, total_steps=5000)
  lrs = {s: float(sched(s)) for s in (0, 3499, 3500, 4799, 4800, 4999)}
  assert lrs[0] == pytest.approx(4e-3) and lrs[3499] == pytest.approx(4e-3)
  assert lrs[3500] == pytest.approx(4e-4) and lrs[4799] == pytest.approx(4e-4)
  assert lrs[4800] == pytest.approx(4e-5) and lrs[4999] == pytest.approx(4e-5)


def test_warmup_and_cosine():
  sched = optim.make_schedule(_optim(schedule='cosine', warmup_epochs=1.0, min_lr_ratio=0.1),
                              steps_per_epoch=10, total_steps=110)
  assert float(sched(0)) == pytest.approx(4e-3 * 0.1)
  assert float(sched(4)) == pytest.approx(4e-3 * 0.5)
  assert float(sched(10)) == pytest.approx(4e-3)  # cosine starts after the warm-up
  assert float(sched(60)) == pytest.approx(4e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)
  assert float(sched(110)) == pytest.approx(4e-4, rel=1e-5)
  with pytest.raises(UserError, match='optim.schedule'):
    optim.make_schedule(_optim(schedule='step'), 10, 100)
  with pytest.raises(UserError, match='total_steps or num_epochs'):
    optim.make_schedule(_optim(), 10, 0)


def test_adam_has_no_weight_decay_and_clipping_works():
  params = {'w': jnp.ones((3,))}
  grads = {'w': jnp.array([3.0, 4.0, 0.0])}
  const = lambda step: 1.0
  tx = optim.make_optimizer(_optim(), const)
  upd, _ = tx.update(grads, tx.init(params), params)
  # First Adam step: -lr * g / (|g| + eps) -> -1 where g != 0 and 0 (no decay term) where g == 0.
  np.testing.assert_allclose(np.asarray(upd['w']), [-1.0, -1.0, 0.0], atol=5e-5)  # f32 bias correction
  tx = optim.make_optimizer(_optim(name='adamw', weight_decay=0.5), const)
  upd, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(upd['w']), [-1.5, -1.5, -0.5], atol=5e-5)
  with pytest.raises(UserError, match='weight_decay is ignored by Adam'):
    optim.make_optimizer(_optim(weight_decay=1e-4), const)
  # Clipping to norm 1 scales (3, 4) to (0.6, 0.8) before Adam; with b2 = 0 and eps = 1 the update
  # is g / (|g| + 1), which is not scale-free, so it shows the clipped values.
  tx = optim.make_optimizer(_optim(grad_clip_norm=1.0, b1=0.0, b2=0.0, eps=1.0), const)
  upd, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(upd['w']), [-0.6 / 1.6, -0.8 / 1.8, 0.0], atol=1e-6)


def test_ema_and_state():
  tx = optim.make_optimizer(_optim(), lambda s: 1e-3)
  variables = {'params': {'w': np.ones((2,), np.float32)}, 'batch_stats': {'m': np.zeros(2)}}
  state = optim.create_state(variables, tx, ema=True)
  assert int(state.step) == 0 and state.ema_params is not None
  new_params = {'w': jnp.full((2,), 3.0)}
  ema = optim.ema_update(state.ema_params, new_params, 0.75)
  np.testing.assert_allclose(np.asarray(ema['w']), [1.5, 1.5])
  state = state.replace(params=new_params, ema_params=ema)
  np.testing.assert_allclose(np.asarray(state.variables()['params']['w']), [1.5, 1.5])
  np.testing.assert_allclose(np.asarray(state.variables(use_ema=False)['params']['w']), [3.0, 3.0])
  assert optim.create_state(variables, tx, ema=False).ema_params is None
