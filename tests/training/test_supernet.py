"""Super-net training: per-step draws from (seed, step), one compilation per resolution, resume,
checkpoints that load as a super-net, initialisation from a trained largest network."""
import pathlib

import jax
import numpy as np
import pytest

from litepose_jax import checkpoints
from litepose_jax import config_files
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.training import supernet
from litepose_jax.training import trainer
from tests.training.helpers import set_fields

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# A shallow super-net (1/2/1/1 blocks, official widths) and XLA's own convolutions (quick to
# compile), fake 64 / 96 px batches of 4.
SHALLOW = ['supernet.space.depths=(1,1,1,1)', 'supernet.space.supernet_depths=(1,2,1,1)',
           'model.depthwise_impl=lax', 'model.conv_impl=lax', 'data.batch_size=4',
           'progress=False']


def _config(policy='official', steps=4, **fields):
  cfg = config_files.load_config(str(REPO_ROOT / 'configs' / 'supernet.py')
                                 + f':fake,runlocal,policy={policy}', SHALLOW)
  cfg.total_steps = steps
  return set_fields(cfg, **fields)


def test_draws_are_a_function_of_seed_and_step():
  cfg = _config('sandwich')
  space = supernet.search_space(cfg)
  a, b = supernet.draw(cfg, 7), supernet.draw(cfg, 7)
  assert a == b and len(a) == 2 + cfg.supernet.num_random
  assert a[0] == nas.largest(space) and a[1] == nas.smallest(space)
  assert supernet.draw(cfg, 8)[2:] != a[2:]
  official = _config('official')
  drawn = [supernet.draw(official, t)[0] for t in range(30)]
  assert len({str(d) for d in drawn}) > 20  # one fresh sub-net per step
  cfg.seed = 1
  assert supernet.draw(cfg, 7)[2:] != a[2:]


def test_shipped_depths_and_bad_fields():
  cfg = _config(**{'supernet.shipped_depths': True,
                   'supernet.space.supernet_depths': nas.space.LITEPOSE_DEPTHS})
  assert supernet.search_space(cfg).depths == nas.space.SHIPPED_SAMPLER_DEPTHS
  with pytest.raises(UserError, match='supernet.policy'):
    supernet.check(_config(**{'supernet.policy': 'greedy'}))
  with pytest.raises(UserError, match='input_sizes'):
    supernet.check(_config(**{'data.input_sizes': (64, 80)}))


def test_resume_reproduces_the_run_and_compiles_once_per_size(tmp_path):
  cfg = _config('official', steps=20, checkpoint_every=10, log_every=10)
  straight = trainer.train_and_evaluate(cfg, str(tmp_path / 'straight'))
  sizes = {supernet_size(cfg, t) for t in range(20)}
  assert sizes == {64, 96}
  # 20 steps over many sub-nets and two sizes: two compilations of the step.
  assert straight['train_step_compiles'] == len(sizes)
  first = trainer.train_and_evaluate(cfg, str(tmp_path / 'resumed'), max_steps=10)
  second = trainer.train_and_evaluate(cfg, str(tmp_path / 'resumed'))
  assert first['step'] == 10 and second['step'] == 20
  for a, b in zip(jax.tree.leaves(jax.device_get(straight['state'].variables())),
                  jax.tree.leaves(jax.device_get(second['state'].variables()))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The workdir is a super-net checkpoint: it loads as one, and as its largest LitePose.
  net, variables, model_cfg = nas.load_supernet(tmp_path / 'resumed')
  assert model_cfg['step'] == 20 and net.space == supernet.search_space(cfg)
  largest, _, _ = checkpoints.load_model(tmp_path / 'resumed')
  assert largest.arch.channels == net.arch.channels


def supernet_size(cfg, step):
  from litepose_jax.data import sizes
  return sizes.step_input_size(cfg.data.seed, step, sizes.input_sizes(cfg.data))


def test_sandwich_trains_and_init_from_a_largest_net(tmp_path, capsys):
  cfg = _config('sandwich', steps=2)
  space = supernet.search_space(cfg)
  # A "trained largest network": the largest LitePose of the space, saved as a normal model.
  largest = models.create_model(nas.max_arch(space), 14, depthwise_impl='lax')
  lv = models.init_variables(largest, 64, seed=3)
  checkpoints.save_model(tmp_path / 'largest', lv, checkpoints.model_config(largest.arch, 14))
  cfg.init_from = str(tmp_path / 'largest')
  result = trainer.train_and_evaluate(cfg, str(tmp_path / 'run'))
  assert result['step'] == 2 and 'train/distill' in result['metrics']
  assert 'sorted by importance' in capsys.readouterr().out
  # A fixed network cannot start from variables of another architecture.
  fixed = config_files.load_config(str(REPO_ROOT / 'configs' / 'litepose_xs.py') + ':fake,runlocal',
                                   ['progress=False', 'data.batch_size=2'])
  fixed.init_from = str(tmp_path / 'largest')
  with pytest.raises(UserError, match='init_from'):
    trainer.train_and_evaluate(fixed, str(tmp_path / 'fixed'))
