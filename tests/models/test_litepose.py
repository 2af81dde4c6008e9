"""LitePose model: output shapes for every preset and joint set, ablations, input validation,
the folded (export) mode."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax.errors import UserError
from litepose_jax.models import create_model
from litepose_jax.models import init_variables
from litepose_jax.models import variable_shapes


@pytest.mark.parametrize('name', ['XS', 'S', 'M', 'L'])
@pytest.mark.parametrize('joint_set', ['crowdpose', 'coco'])
def test_output_shapes(name, joint_set):
  j = joints.get_joint_set(joint_set).num_joints
  m = create_model(name, j)
  size = m.arch.img_size
  x = jax.ShapeDtypeStruct((2, size, size + 64, 3), jnp.float32)
  v = jax.eval_shape(m.init, jax.random.PRNGKey(0), x)
  out4, out2 = jax.eval_shape(m.apply, v, x)
  assert out4.shape == (2, size // 4, (size + 64) // 4, 2 * j)
  assert out2.shape == (2, size // 2, (size + 64) // 2, j)


def test_forward_train_and_eval_modes():
  m = create_model('XS')
  v = init_variables(m, 64, seed=3)
  x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
  out4, out2 = jax.jit(m.apply)(v, x)
  assert out4.shape == (2, 16, 16, 28) and out2.shape == (2, 32, 32, 14)
  assert np.isfinite(out4).all() and np.abs(out4).max() > 0
  (t4, _), updates = m.apply(v, x, train=True, mutable=['batch_stats'])
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         updates['batch_stats'], v['batch_stats'])
  assert all(jax.tree.leaves(changed))
  assert not np.allclose(t4, out4)  # batch statistics differ from the running ones


def test_init_variables_match_flax_initialiser_ranges():
  """The numpy initialiser draws from the same distributions as the module's flax initialisers."""
  m = create_model('XS')
  ours = init_variables(m, 64)
  bounds = {'stage0_block0/expand/conv/kernel': 1 / np.sqrt(16),
            'stage0_block0/depthwise/kernel': 1 / np.sqrt(49),
            'deconv_refined0/deconv/kernel': 1 / np.sqrt(16 * 16)}
  for path, bound in bounds.items():
    node = ours['params']
    for p in path.split('/'):
      node = node[p]
    assert np.abs(node).max() <= bound and np.abs(node).max() > 0.8 * bound
  assert np.all(ours['params']['stem_conv_bn']['scale'] == 1)
  assert np.all(ours['batch_stats']['stem_conv_bn']['var'] == 1)


def test_ablations_change_structure():
  plain = create_model('XS', fusion=False)
  v = jax.eval_shape(plain.init, jax.random.PRNGKey(0),
                     jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert 'deconv_raw0' not in v['params'] and 'final_raw0' not in v['params']
  k5 = create_model('XS', kernel_size=5)
  v5 = jax.eval_shape(k5.init, jax.random.PRNGKey(0),
                      jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert v5['params']['stage2_block3']['depthwise']['kernel'].shape == (5, 5, 1, 288)
  wide = create_model('XS', width_mult=1.5)
  assert wide.arch.channels == (24, 24, 48, 72, 120)


@pytest.mark.parametrize('shape,message', [
    ((1, 60, 64, 3), 'multiples of 16'), ((1, 64, 64, 1), 'expects 3 channels'),
    ((1, 3, 64, 64), 'expects 3 channels'), ((64, 64, 3), r'shape \[B, H, W, 3\]')])
def test_bad_input_is_rejected(shape, message):
  m = create_model('XS')
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(m.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_bad_arguments_are_rejected():
  # User-facing arguments: UserError (one line at the command line), a ValueError subclass.
  with pytest.raises(UserError, match='num_joints'):
    create_model('XS', 0)
  with pytest.raises(UserError, match='depthwise_impl'):
    create_model('XS', depthwise_impl='fast')
  with pytest.raises(UserError, match='conv_impl'):
    create_model('XS', conv_impl='winograd')
  with pytest.raises(UserError, match='unknown architecture'):
    create_model('XXL')
  with pytest.raises(UserError, match='kernel_size'):
    create_model('XS', kernel_size=4)
  with pytest.raises(UserError, match='width_mult'):
    create_model('XS', width_mult=0)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  m = create_model('XS', dtype=jnp.bfloat16)
  v = init_variables(m, 64)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(v))
  out4, out2 = jax.jit(m.apply)(v, np.ones((1, 64, 64, 3), np.float32))
  assert out4.dtype == jnp.float32 and np.isfinite(out2).all()


def test_conv_impl_is_a_model_option_with_equal_outputs():
  # The module option picks the dense / transposed conv implementation; both give the same maps.
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  outs = {}
  for impl in ('lax', 'matmul'):
    model = create_model('XS', conv_impl=impl)
    outs[impl] = model.apply(init_variables(model, 64), x)
  for a, b in zip(outs['lax'], outs['matmul']):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _with_random_bn(variables, seed=0):
  """Non-trivial BN parameters and statistics, so that a folding error shows."""
  rng = np.random.default_rng(seed)
  draw = {'scale': lambda n: rng.uniform(0.5, 1.5, n), 'bias': lambda n: rng.normal(0, 0.1, n),
          'mean': lambda n: rng.normal(0, 0.1, n), 'var': lambda n: rng.uniform(0.5, 2.0, n)}
  return jax.tree_util.tree_map_with_path(
      lambda p, a: draw[p[-1].key](a.shape).astype(np.float32) if a.ndim == 1 else a, variables)


@pytest.mark.parametrize('fusion,impl', [(True, 'split'), (False, 'lax')])
def test_folded_mode_equals_the_model(fusion, impl):
  # The same variables; BN folded into the convs; out4's halves come out as two tensors.
  m = create_model('XS', 14, fusion=fusion, conv_impl='lax')
  v = _with_random_bn(init_variables(m, 64), seed=2)
  x = np.random.default_rng(3).normal(size=(1, 64, 96, 3)).astype(np.float32)
  out4, out2 = jax.jit(m.apply)(v, x)
  folded = m.clone(folded=True, depthwise_impl=impl)
  h4, t4, h2 = jax.jit(lambda im: folded.apply(v, im))(x)
  assert np.abs(out4).max() > 0.05
  np.testing.assert_allclose(h4, out4[..., :14], atol=1e-5)
  np.testing.assert_allclose(t4, out4[..., 14:], atol=1e-5)
  np.testing.assert_allclose(h2, out2, atol=1e-5)
  with pytest.raises(ValueError, match='inference only'):
    folded.apply(v, x, train=True)


def test_variable_shapes_list_every_variable():
  m = create_model('XS', 17)
  shapes = variable_shapes(m)
  flat = jax.tree_util.tree_flatten_with_path(init_variables(m, 64))[0]
  assert shapes == {tuple(p.key for p in path): a.shape for path, a in flat}
  assert shapes[('params', 'final_refined0', 'pointwise', 'conv', 'kernel')] == (1, 1, 24, 34)
  assert variable_shapes(m.clone(folded=True)) == shapes
