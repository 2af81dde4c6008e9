"""The XLA:CPU kernels against definitions independent of flax (the layer-level comparisons,
gradients included, are in test_layers.py)."""
import jax.numpy as jnp
import numpy as np

from litepose_jax.models import xla_cpu


def test_deconv_matmul_matches_conv_transpose_by_definition():
  # Definition independent of flax: zero-insert (dilate) x by 2, pad 2, correlate with the kernel.
  x = np.random.default_rng(0).standard_normal((1, 3, 4, 2)).astype(np.float32)
  k = np.random.default_rng(1).standard_normal((4, 4, 2, 3)).astype(np.float32)
  d = np.zeros((1, 2 * 3 - 1 + 4, 2 * 4 - 1 + 4, 2), np.float32)
  d[:, 2:-2:2, 2:-2:2] = x
  want = np.zeros((1, 6, 8, 3), np.float32)
  for y in range(6):
    for xx in range(8):
      want[0, y, xx] = np.einsum('ijc,ijco->o', d[0, y:y + 4, xx:xx + 4], k)
  np.testing.assert_allclose(xla_cpu.deconv_matmul(jnp.asarray(x), jnp.asarray(k)), want,
                             rtol=1e-5, atol=1e-5)


def test_conv_matmul_matches_correlation_by_definition():
  # Stride 2, symmetric padding k//2: out[h, w] = sum xpad[2h + i, 2w + j] * k[i, j].
  x = np.random.default_rng(2).standard_normal((1, 5, 6, 2)).astype(np.float32)
  k = np.random.default_rng(3).standard_normal((3, 3, 2, 4)).astype(np.float32)
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  want = np.zeros((1, 3, 3, 4), np.float32)
  for h in range(3):
    for w in range(3):
      want[0, h, w] = np.einsum('ijc,ijco->o', xp[0, 2 * h:2 * h + 3, 2 * w:2 * w + 3], k)
  np.testing.assert_allclose(xla_cpu.conv_matmul(jnp.asarray(x), jnp.asarray(k), 2), want,
                             rtol=1e-5, atol=1e-5)
