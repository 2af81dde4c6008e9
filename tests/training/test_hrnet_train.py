"""A HigherHRNet through `litepose train` unchanged: a tiny net (4 branches, a 0-block branch,
deconv with a BasicBlock) at 64 px on fake data, one optimizer step, its checkpoint reloaded."""
from __future__ import annotations

import jax
import numpy as np
import yaml

from litepose_jax import checkpoints
from litepose_jax import config_files
from litepose_jax import models
from litepose_jax.training import trainer
from tests.training.conftest import REPO_ROOT

# The official yaml's MODEL.EXTRA at toy widths; DATASET.INPUT_SIZE as an experiment file has it.
TINY_HRNET = {
    'MODEL': {'EXTRA': {
        'STEM_INPLANES': 8, 'FINAL_CONV_KERNEL': 1,
        'STAGE2': {'NUM_MODULES': 1, 'NUM_BRANCHES': 2, 'BLOCK': 'BASIC', 'NUM_BLOCKS': [0, 1],
                   'NUM_CHANNELS': [8, 16], 'FUSE_METHOD': 'SUM'},
        'STAGE3': {'NUM_MODULES': 1, 'NUM_BRANCHES': 3, 'BLOCK': 'BASIC', 'NUM_BLOCKS': [0, 0, 1],
                   'NUM_CHANNELS': [8, 16, 24], 'FUSE_METHOD': 'SUM'},
        'STAGE4': {'NUM_MODULES': 1, 'NUM_BRANCHES': 4, 'BLOCK': 'BASIC',
                   'NUM_BLOCKS': [1, 0, 0, 1], 'NUM_CHANNELS': [8, 16, 24, 32],
                   'FUSE_METHOD': 'SUM'},
        'DECONV': {'NUM_DECONVS': 1, 'NUM_CHANNELS': [8], 'KERNEL_SIZE': [4],
                   'NUM_BASIC_BLOCKS': 1, 'CAT_OUTPUT': [True]}}},
    'DATASET': {'INPUT_SIZE': 64},
}


def test_one_train_step_and_the_checkpoint(tmp_path):
  arch = tmp_path / 'tiny_hrnet.yaml'
  arch.write_text(yaml.safe_dump(TINY_HRNET))
  cfg = config_files.load_config(
      str(REPO_ROOT / 'configs' / 'litepose_xs.py') + ':fake,runlocal',
      [f'model.arch={arch}', 'data.batch_size=2', 'total_steps=1', 'progress=False'])
  model = trainer.model_for_training(cfg, 14)
  assert isinstance(model, models.HigherHRNet)
  result = trainer.train_and_evaluate(cfg, str(tmp_path / 'run'))
  assert result['step'] == 1 and np.isfinite(result['metrics']['train/total'])
  assert result['metrics']['train/grad_norm'] > 0
  # The run's checkpoint is a HigherHRNet checkpoint for every inference command, with the
  # trained weights (PyTorch-default init is not what it holds any more).
  module, variables, model_cfg = checkpoints.load_model(tmp_path / 'run')
  assert isinstance(module, models.HigherHRNet) and model_cfg['num_joints'] == 14
  assert module.arch.to_extra() == model.arch.to_extra()
  trained = jax.tree.leaves(jax.device_get(result['state'].params))
  for a, b in zip(jax.tree.leaves(variables['params']), trained):
    np.testing.assert_array_equal(a, b)
  fresh = models.init_variables(model, 64)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fresh['params']), trained))
