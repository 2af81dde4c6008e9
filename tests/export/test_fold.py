"""BN folding: hand-computed folds, checks on the variables, and whole-model equality."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax.errors import UserError
from litepose_jax.export import fold
from litepose_jax.models import create_model
from litepose_jax.models import layers


class _Unit(nn.Module):
  """One conv+BN unit in folded mode."""

  @nn.compact
  def __call__(self, x):
    conv = layers.Conv(1, 1, impl='lax', folded=True, name='conv')
    return layers.conv_bn([(conv, x)], 'bn', False, jnp.float32, folded=True)


def _unit_variables(var):
  return {'params': {'bn': {'scale': np.array([2.0], np.float32),
                            'bias': np.array([0.5], np.float32)},
                     'conv': {'conv': {'kernel': np.full((1, 1, 1, 1), 3.0, np.float32)}}},
          'batch_stats': {'bn': {'mean': np.array([1.0], np.float32),
                                 'var': np.array([var], np.float32)}}}


def test_bn_fold_matches_hand_computation():
  # One BN channel: gamma 2, beta 0.5, mean 1, var 3 -> scale 2/sqrt(3+1e-5), shift 0.5 - scale.
  variables = _unit_variables(3.0)
  s = 2.0 / np.sqrt(3.0 + 1e-5)
  kernel, shift = layers.batch_norm(False, jnp.float32).apply(
      {'params': variables['params']['bn'], 'batch_stats': variables['batch_stats']['bn']},
      variables['params']['conv']['conv']['kernel'], method=layers.BatchNorm.fold)
  assert isinstance(kernel, np.ndarray)  # numpy in, numpy out: constants in the export
  np.testing.assert_allclose(kernel.ravel(), [3.0 * s], rtol=1e-6)
  np.testing.assert_allclose(shift, [0.5 - s], rtol=1e-6)
  # conv(x) = 3x, then BN: y = 2 (3x - 1)/sqrt(3) + 0.5; at x = 1: 2*2/sqrt(3) + 0.5.
  y = _Unit().apply(variables, np.ones((1, 1, 1, 1), np.float32))
  np.testing.assert_allclose(np.asarray(y).ravel(), [4.0 / np.sqrt(3.0 + 1e-5) + 0.5], rtol=1e-6)


def test_negative_variance_is_rejected(xs_model):
  with pytest.raises(UserError, match='bn/var'):
    _Unit().apply(_unit_variables(-1.0), np.ones((1, 1, 1, 1), np.float32))
  module, variables = xs_model
  stats = jax.tree.map(np.array, variables['batch_stats'])
  stats['stage1_block2']['project_bn']['var'] *= -1
  with pytest.raises(UserError, match='stage1_block2/project_bn/var'):
    fold.fold_variables(module, {'params': variables['params'], 'batch_stats': stats})


@pytest.mark.parametrize('band', [False, True])
def test_folded_model_equals_module(xs_model, band):
  module, variables = xs_model
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  out4, out2 = module.apply(variables, x)
  folded = fold.fold_variables(module, variables, band_depthwise=band)
  assert folded['module'].folded
  assert folded['module'].depthwise_impl == ('split' if band else 'lax')
  h4, t4, h2 = jax.jit(lambda im: fold.folded_apply(folded, im))(x)
  j = module.num_joints
  assert h4.shape == (1, 16, 16, j) and t4.shape == (1, 16, 16, j) and h2.shape == (1, 32, 32, j)
  # The random BN statistics make the fold non-trivial: outputs are far from zero.
  assert np.abs(out4).max() > 0.05
  np.testing.assert_allclose(h4, out4[..., :j], atol=1e-5)
  np.testing.assert_allclose(t4, out4[..., j:], atol=1e-5)
  np.testing.assert_allclose(h2, out2, atol=1e-5)


def test_plain_head_without_fusion():
  module = create_model('XS', 14, fusion=False, depthwise_impl='lax')
  variables = fold.random_variables(module, 64, seed=1)
  x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
  out4, out2 = module.apply(variables, x)
  h4, t4, h2 = fold.folded_apply(fold.fold_variables(module, variables), x)
  np.testing.assert_allclose(np.concatenate([h4, t4], -1), out4, atol=1e-5)
  np.testing.assert_allclose(h2, out2, atol=1e-5)


def test_wrong_variables_name_the_missing_key(xs_model):
  module, variables = xs_model
  broken = {'params': dict(variables['params']), 'batch_stats': variables['batch_stats']}
  del broken['params']['stem_conv']
  with pytest.raises(UserError, match='stem_conv'):
    fold.fold_variables(module, broken)
  with pytest.raises(UserError, match='batch_stats'):
    fold.fold_variables(module, {'params': variables['params']})
  with pytest.raises(UserError, match=r'mis-shaped: params/stage0_block0/depthwise/kernel'):
    fold.fold_variables(create_model('XS', kernel_size=5), variables)
