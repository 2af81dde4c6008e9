"""Trainer tests on a tiny model and fake 64 px data: resume, preemption, NaN guard, checkpoints."""
import json
import os
import signal

import jax
import numpy as np
import pytest

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.training import input_pipeline
from litepose_jax.training import optim
from litepose_jax.training import train_checkpoints
from litepose_jax.training import trainer
from tests.training.helpers import set_fields


def _params(result):
  return jax.tree.leaves(jax.device_get(result['state'].params))


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return {r['step']: r['train/total'] for r in map(json.loads, f)}


def _config(tiny_config, **fields):
  cfg = tiny_config
  cfg.total_steps = 4
  cfg.checkpoint_every = 2
  return set_fields(cfg, **fields)


def test_resume_reproduces_uninterrupted_run(tiny_config, tmp_path):
  cfg = _config(tiny_config)
  straight = trainer.train_and_evaluate(cfg, str(tmp_path / 'straight'))
  assert straight['step'] == 4 and not straight['preempted']
  first = trainer.train_and_evaluate(cfg, str(tmp_path / 'resumed'), max_steps=2)
  assert first['step'] == 2
  second = trainer.train_and_evaluate(cfg, str(tmp_path / 'resumed'))
  assert second['step'] == 4
  for a, b in zip(_params(straight), _params(second)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  ls, lr = _losses(tmp_path / 'straight'), _losses(tmp_path / 'resumed')
  assert sorted(ls) == sorted(lr) == [1, 2, 3, 4]
  for step in ls:
    assert ls[step] == pytest.approx(lr[step], rel=1e-6)
  # The workdir is a model checkpoint for every inference command.
  _, variables, model_cfg = checkpoints.load_model(tmp_path / 'resumed')
  assert model_cfg['step'] == 4 and model_cfg['num_joints'] == 14
  for a, b in zip(jax.tree.leaves(variables['params']), _params(second)):
    np.testing.assert_array_equal(a, b)
  # A crash mid-save leaves only an orbax temporary folder: the latest good step is unaffected.
  junk = tmp_path / 'resumed' / 'checkpoints' / '6.orbax-checkpoint-tmp-1234567'
  (junk / 'train_state').mkdir(parents=True)
  (junk / 'train_state' / 'partial').write_bytes(b'\0' * 10)
  assert checkpoints.find_checkpoint(tmp_path / 'resumed').endswith(os.path.join('checkpoints', '4'))
  ck = train_checkpoints.Checkpointer(str(tmp_path / 'resumed'), model_cfg, 3)
  assert ck.latest_step() == 4
  ck.close()


def test_sigterm_saves_and_exits_cleanly(tiny_config, tmp_path):
  cfg = _config(tiny_config, checkpoint_every=100)
  cfg.total_steps = 6

  def data_fn(config, pidx, pcount, start):
    stream, info = input_pipeline.make_data(config, pidx, pcount, start)

    def gen():
      for i, batch in enumerate(stream):
        if start + i == 1:
          os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 1 is being prepared
        yield batch
    return gen(), info

  before = signal.getsignal(signal.SIGTERM)
  result = trainer.train_and_evaluate(cfg, str(tmp_path), data_fn=data_fn)
  assert result['preempted'] and result['step'] == 2
  ck = train_checkpoints.Checkpointer(str(tmp_path), {}, 3)
  assert ck.all_steps() == [2]
  ck.close()
  assert signal.getsignal(signal.SIGTERM) is before  # the trainer's handler is removed again
  resumed = trainer.train_and_evaluate(cfg, str(tmp_path), max_steps=1)
  assert resumed['step'] == 3 and not resumed['preempted']


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path):
  cfg = _config(tiny_config, checkpoint_every=1)
  cfg.data.fake.nan_at_step = 2
  with pytest.raises(trainer.NonFiniteLossError, match='non-finite loss at step 2') as err:
    trainer.train_and_evaluate(cfg, str(tmp_path))
  assert 'last good checkpoint is step 2' in str(err.value)
  _, variables, model_cfg = checkpoints.load_model(tmp_path)
  assert model_cfg['step'] == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(variables))


def test_best_by_ap_export(tiny_config, tmp_path):
  cfg = _config(tiny_config)
  result = trainer.train_and_evaluate(cfg, str(tmp_path), max_steps=1)
  ck = train_checkpoints.Checkpointer(str(tmp_path), json.load(
      open(tmp_path / 'checkpoints' / '1' / 'model.json')), 3)
  assert ck.maybe_save_best(result['state'], 1, 0.25)
  assert not ck.maybe_save_best(result['state'], 2, 0.2)
  assert ck.maybe_save_best(result['state'], 3, 0.3)
  # Resuming with another setting (here EMA switched on) names the arrays that differ.
  with_ema = result['state'].replace(ema_params=result['state'].params)
  with pytest.raises(UserError, match=r"does not match this config .*\['ema_params'\]"):
    ck.restore(with_ema)
  ck.close()
  assert json.load(open(tmp_path / 'best.json')) == {'step': 3, 'AP': 0.3}
  _, _, model_cfg = checkpoints.load_model(tmp_path / 'best')
  assert model_cfg['AP'] == 0.3 and not (tmp_path / 'best.tmp').exists()


def test_mixed_precision_ema_and_clipping(tiny_config, tmp_path):
  cfg = _config(tiny_config, mixed_precision=True, ema_decay=0.5)
  cfg.optim.grad_clip_norm = 0.1
  result = trainer.train_and_evaluate(cfg, str(tmp_path), max_steps=2)
  state = result['state']
  # bf16 compute, fp32 master weights and optimizer state.
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
  assert all(x.dtype in (np.float32, np.int32) for x in jax.tree.leaves(state.opt_state))
  assert np.isfinite(result['metrics']['train/total'])
  assert result['metrics']['train/grad_norm'] > 0
  # The exported variables are the EMA weights, which lag the raw ones.
  _, variables, _ = checkpoints.load_model(tmp_path)
  ema, raw = jax.tree.leaves(jax.device_get(state.ema_params)), _params(result)
  for a, b in zip(jax.tree.leaves(variables['params']), ema):
    np.testing.assert_array_equal(a, b)
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(ema, raw)) > 0


def test_mixed_precision_gradients_and_their_norm_are_fp32(tiny_config):
  # optax.tree.norm sums in the leaves' dtype: the logged grad_norm is exact because the grads of
  # the fp32 master params stay fp32 under bf16 compute.
  cfg = _config(tiny_config, mixed_precision=True)
  stream, info = input_pipeline.make_data(cfg, 0, 1, 0)
  model = trainer.model_for_training(cfg, info.num_joints)
  tx = optim.make_optimizer(cfg.optim, lambda step: 1e-3)
  state = optim.create_state(models.init_variables(model, cfg.data.input_size, 0), tx, ema=False)
  step = trainer.make_train_step(model, tx, lambda step: 1e-3, cfg, info.num_joints)
  _, metrics = jax.eval_shape(step, state, next(stream))
  assert metrics['grad_norm'].dtype == np.float32 and metrics['total'].dtype == np.float32
