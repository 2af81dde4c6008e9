"""The CPU depthwise implementation against XLA's grouped convolution (lax.conv_general_dilated)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax.errors import UserError
from litepose_jax.models import depthwise


def lax_reference(x, kernel, stride):
  """The definition: grouped conv, feature_group_count=C, symmetric padding k//2."""
  p = kernel.shape[0] // 2
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), ((p, p), (p, p)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=x.shape[-1])


def make_inputs(shape, k, seed=0, dtype=jnp.float32):
  kx, kk, kc = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, shape, jnp.float32)
  kernel = jax.random.normal(kk, (k, k, 1, shape[-1]), jnp.float32)
  return x.astype(dtype), kernel.astype(dtype), kc


def nonlinear_loss(fn, stride, weights):
  # A cotangent that varies per element and a nonlinearity: a plain sum would hide index errors.
  return lambda x, kernel: jnp.sum(jnp.sin(fn(x, kernel, stride)) * weights)


@pytest.mark.parametrize('shape', [(2, 9, 7, 5), (2, 8, 10, 3)], ids=['odd', 'even'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('k', [3, 5, 7])
def test_shift_matches_lax_forward_and_both_gradients(shape, stride, k):
  x, kernel, kc = make_inputs(shape, k)
  shift = lambda x, w, s: depthwise.depthwise_conv2d(x, w, s, impl='shift')
  want = lax_reference(x, kernel, stride)
  got = jax.jit(shift, static_argnums=2)(x, kernel, stride)
  out_h, out_w = -(-shape[1] // stride), -(-shape[2] // stride)
  assert got.shape == want.shape == (shape[0], out_h, out_w, shape[3])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

  weights = jax.random.normal(kc, want.shape)
  want_dx, want_dk = jax.grad(nonlinear_loss(lax_reference, stride, weights), (0, 1))(x, kernel)
  got_dx, got_dk = jax.jit(jax.grad(nonlinear_loss(shift, stride, weights), (0, 1)))(x, kernel)
  assert got_dx.shape == x.shape and got_dk.shape == kernel.shape
  np.testing.assert_allclose(got_dx, want_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_dk, want_dk, rtol=1e-5, atol=1e-4)


def test_kernel_9_and_awkward_fold():
  # B*H = 34 rows: the kernel-gradient fold is 2 (34 has no divisor between 3 and 8).
  x, kernel, kc = make_inputs((2, 17, 6, 4), 9, seed=1)
  weights = jax.random.normal(kc, (2, 17, 6, 4))
  shift = lambda x, w, s: depthwise.depthwise_conv2d(x, w, s, impl='shift')
  np.testing.assert_allclose(shift(x, kernel, 1), lax_reference(x, kernel, 1), rtol=1e-5,
                             atol=1e-5)
  want = jax.grad(nonlinear_loss(lax_reference, 1, weights), (0, 1))(x, kernel)
  got = jax.grad(nonlinear_loss(shift, 1, weights), (0, 1))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def test_fold_is_largest_divisor_up_to_max():
  assert depthwise._MAX_FOLD == 8
  assert depthwise._fold(512) == 8
  assert depthwise._fold(34) == 2
  assert depthwise._fold(7) == 7
  assert depthwise._fold(17) == 1


def test_bfloat16_close_to_float32_reference():
  x, kernel, kc = make_inputs((2, 8, 8, 6), 7, seed=2, dtype=jnp.bfloat16)
  got = depthwise.depthwise_conv2d(x, kernel, 2, impl='shift')
  assert got.dtype == jnp.bfloat16
  want = lax_reference(x.astype(jnp.float32), kernel.astype(jnp.float32), 2)
  # float32 accumulation: only the final rounding to bfloat16 (8 bits of mantissa) differs.
  np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2, atol=2e-2)
  dx, dk = jax.grad(lambda x, w: jnp.sum(depthwise.depthwise_conv2d(x, w, 2, 'shift')
                                         .astype(jnp.float32) ** 2), (0, 1))(x, kernel)
  assert dx.dtype == dk.dtype == jnp.bfloat16
  wdx, wdk = jax.grad(lambda x, w: jnp.sum(lax_reference(x, w, 2) ** 2), (0, 1))(
      x.astype(jnp.float32), kernel.astype(jnp.float32))
  scale = float(jnp.max(jnp.abs(wdk)))
  np.testing.assert_allclose(np.asarray(dk, np.float32) / scale, wdk / scale, atol=3e-2)
  np.testing.assert_allclose(np.asarray(dx, np.float32), wdx, rtol=3e-2, atol=0.5)


def test_default_impl_follows_backend(monkeypatch):
  assert depthwise.default_impl() == ('shift' if jax.default_backend() == 'cpu' else 'lax')
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert depthwise.default_impl() == 'lax'
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  assert depthwise.default_impl() == 'shift'


def test_auto_equals_resolved_impl():
  x, kernel, _ = make_inputs((1, 6, 6, 3), 3)
  auto = depthwise.depthwise_conv2d(x, kernel, 1, impl='auto')
  resolved = depthwise.depthwise_conv2d(x, kernel, 1, impl=depthwise.default_impl())
  np.testing.assert_array_equal(auto, resolved)


def test_bad_arguments_raise_clear_errors():
  x, kernel, _ = make_inputs((1, 6, 6, 3), 3)
  with pytest.raises(UserError, match="impl must be one of .*'fast'"):
    depthwise.depthwise_conv2d(x, kernel, 1, impl='fast')
  with pytest.raises(ValueError, match='stride must be 1 or 2'):
    depthwise.depthwise_conv2d(x, kernel, 3)
  with pytest.raises(ValueError, match=r'kernel must be \[k, k, 1, C\]'):
    depthwise.depthwise_conv2d(x, kernel[..., :2], 1)
  with pytest.raises(ValueError, match=r'\[B, H, W, C\]'):
    depthwise.depthwise_conv2d(x[0], kernel, 1)
