"""The layers: CPU matmul paths of Conv / Deconv and the BatchNorm gradient against their flax
modules, and the folded (export) mode of a conv+BN unit."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax.errors import UserError
from litepose_jax.models import layers

CASES = {
    'conv1x1': lambda impl: layers.Conv(6, 1, impl=impl),
    'conv3x3': lambda impl: layers.Conv(4, 3, 1, impl=impl),
    'conv3x3_s2': lambda impl: layers.Conv(6, 3, 2, impl=impl),
    'conv5x5_s2': lambda impl: layers.Conv(3, 5, 2, impl=impl),
    'deconv': lambda impl: layers.Deconv(3, impl=impl),
}


@pytest.mark.parametrize('case,shape', [
    ('conv1x1', (2, 9, 7, 5)), ('conv3x3', (2, 8, 6, 4)), ('conv3x3_s2', (2, 9, 7, 5)),
    ('conv3x3_s2', (2, 8, 6, 4)), ('conv5x5_s2', (1, 7, 9, 3)), ('deconv', (2, 9, 7, 5)),
    ('deconv', (2, 8, 6, 4))])
def test_matmul_path_matches_flax_layer(case, shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  ref, fast = CASES[case]('lax'), CASES[case]('matmul')
  v_ref = ref.init(jax.random.PRNGKey(1), x)
  v_fast = fast.init(jax.random.PRNGKey(1), x)
  # Same parameter names, shapes and initial values: checkpoints are interchangeable.
  assert jax.tree.structure(v_ref) == jax.tree.structure(v_fast)
  for a, b in zip(jax.tree.leaves(v_ref), jax.tree.leaves(v_fast)):
    np.testing.assert_array_equal(a, b)

  want = ref.apply(v_ref, x)
  got = jax.jit(fast.apply)(v_ref, x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

  weights = jax.random.normal(jax.random.PRNGKey(2), want.shape)
  loss = lambda m: lambda v, x: jnp.sum(jnp.tanh(m.apply(v, x)) * weights)
  want_g = jax.grad(loss(ref), (0, 1))(v_ref, x)
  got_g = jax.jit(jax.grad(loss(fast), (0, 1)))(v_ref, x)
  for a, b in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bfloat16_matmul_path():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 8, 8, 4))
  ref = layers.Conv(5, 3, 2, dtype=jnp.bfloat16, impl='lax')
  fast = layers.Conv(5, 3, 2, dtype=jnp.bfloat16, impl='matmul')
  v = ref.init(jax.random.PRNGKey(1), x)
  got, want = fast.apply(v, x), ref.apply(v, x)
  assert got.dtype == want.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                             rtol=2e-2, atol=2e-2)


def test_default_conv_impl_follows_backend(monkeypatch):
  assert layers.default_conv_impl() == ('matmul' if jax.default_backend() == 'cpu' else 'lax')
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert layers.default_conv_impl() == 'lax'
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  assert layers.default_conv_impl() == 'matmul'
  # An explicit impl wins over the backend: 'lax' layers use flax's nn.Conv.
  x = jnp.zeros((1, 4, 4, 2))
  conv = layers.Conv(3, 3, impl='lax')
  bound = conv.bind(conv.init(jax.random.PRNGKey(0), x))
  assert bound(x).shape == (1, 4, 4, 3)


def test_auto_uses_flax_modules_off_cpu(monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  seen = []

  def interceptor(next_fun, args, kwargs, context):
    seen.append(type(context.module))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda: layers.Deconv(2).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3))))
  assert nn.ConvTranspose in seen


def test_bad_conv_impl_raises():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(UserError, match="conv impl must be one of .*'fast'"):
    layers.Conv(3, 1, impl='fast').init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_batch_norm_matches_flax_in_training_with_gradients(dtype):
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((3, 5, 4, 6)) * 2.0 + 1.5, dtype)
  target = jnp.asarray(rng.standard_normal((3, 5, 4, 6)), jnp.float32)
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, dtype=dtype,
                     param_dtype=jnp.float32)
  ours = layers.batch_norm(True, dtype)
  variables = ref.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
      jnp.shape, variables)
  params = {'scale': jnp.linspace(0.5, 1.5, 6), 'bias': jnp.linspace(-0.3, 0.4, 6)}
  stats = {'mean': jnp.full((6,), 0.2), 'var': jnp.full((6,), 1.3)}

  def loss(module, p, x):
    y, upd = module.apply({'params': p, 'batch_stats': stats}, x, mutable=['batch_stats'])
    # ReLU6 on the output, and the running statistics in the loss, so every cotangent path of
    # the custom gradient (output, batch mean, batch variance) is exercised.
    s = upd['batch_stats']
    out = jnp.sum(jnp.clip(y.astype(jnp.float32), 0, 6) * target)
    return out + jnp.sum(s['mean'] * 3.0) - jnp.sum(s['var'] * 1.5), (y, s)

  grad = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)
  (l_ref, (y_ref, s_ref)), (gp_ref, gx_ref) = grad(ref, params, x)
  (l_ours, (y_ours, s_ours)), (gp_ours, gx_ours) = grad(ours, params, x)
  assert y_ours.dtype == y_ref.dtype == dtype
  tol = dict(rtol=1e-4, atol=1e-4) if dtype == jnp.float32 else dict(rtol=2e-2, atol=5e-2)
  np.testing.assert_allclose(np.float32(y_ours), np.float32(y_ref), **tol)
  np.testing.assert_allclose(l_ours, l_ref, rtol=1e-4 if dtype == jnp.float32 else 2e-2)
  for k in ('mean', 'var'):
    np.testing.assert_allclose(s_ours[k], s_ref[k], rtol=1e-5, atol=1e-6)
  for k in ('scale', 'bias'):
    np.testing.assert_allclose(gp_ours[k], gp_ref[k], **tol)
  np.testing.assert_allclose(np.float32(gx_ours), np.float32(gx_ref), **tol)


def test_batch_norm_eval_uses_running_statistics():
  x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 3, 3, 4)), jnp.float32)
  variables = {'params': {'scale': jnp.full((4,), 2.0), 'bias': jnp.full((4,), 0.5)},
               'batch_stats': {'mean': jnp.full((4,), 1.0), 'var': jnp.full((4,), 4.0 - 1e-5)}}
  y = layers.batch_norm(False, jnp.float32).apply(variables, x)
  np.testing.assert_allclose(y, (x - 1.0) / 2.0 * 2.0 + 0.5, rtol=1e-5, atol=1e-6)


def _random_bn(rng, c):
  return ({'scale': rng.uniform(0.5, 1.5, c).astype(np.float32),
           'bias': rng.normal(0, 0.1, c).astype(np.float32)},
          {'mean': rng.normal(0, 0.1, c).astype(np.float32),
           'var': rng.uniform(0.5, 2.0, c).astype(np.float32)})


class _Fused(nn.Module):
  """Two deconvs summed before one BN (the fusion head's unit), then a 1x1 conv split in two."""
  folded: bool
  impl: str = 'lax'

  @nn.compact
  def __call__(self, a, b):
    deconvs = [(layers.Deconv(6, impl=self.impl, folded=self.folded, name=n), x)
               for n, x in (('refined', a), ('raw', b))]
    y = layers.conv_bn(deconvs, 'bn', False, jnp.float32, self.folded)
    conv = layers.Conv(5, 1, impl=self.impl, folded=self.folded, name='head')
    return conv(y, split=(2, 3)) if self.folded else conv(y)


@pytest.mark.parametrize('impl', ['lax', 'matmul'])
def test_folded_unit_equals_conv_then_bn(impl):
  # Both deconv kernels scaled, the bias added once; the split 1x1 conv gives the two halves.
  rng = np.random.default_rng(5)
  a = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  b = rng.normal(size=(2, 4, 5, 4)).astype(np.float32)
  variables = jax.tree.map(np.asarray, _Fused(False, impl).init(jax.random.PRNGKey(0), a, b))
  params, stats = _random_bn(rng, 6)
  variables['params']['bn'], variables['batch_stats']['bn'] = params, stats
  want = _Fused(False, impl).apply(variables, a, b)
  got = _Fused(True, impl).apply(variables, a, b)
  assert [g.shape for g in got] == [(2, 8, 10, 2), (2, 8, 10, 3)]
  assert np.abs(want).max() > 0.1
  np.testing.assert_allclose(np.concatenate(got, -1), want, rtol=1e-5, atol=1e-5)


def test_fold_needs_folded_mode():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match='folded=True only'):
    layers.Conv(3, 1).init(jax.random.PRNGKey(0), x, split=(1, 2))
