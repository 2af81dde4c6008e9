"""normalize: the numpy fast path is the textbook float32 formula, bit for bit."""
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax.data import normalize


@pytest.mark.parametrize('shape', [(5, 7, 3), (2, 4, 6, 3), (1, 3)])
def test_numpy_normalisation_is_bitwise_the_plain_formula(shape):
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, shape, dtype=np.uint8)
  mean, inv_std = normalize.uint8_constants()
  want = (img.astype(np.float32) - mean) * inv_std
  got = normalize.normalize_images(img)
  assert got.dtype == np.float32 and got.shape == img.shape
  np.testing.assert_array_equal(got, want)
  # A non-contiguous view (a mirrored image) and the jax.numpy path give the same values.
  np.testing.assert_array_equal(normalize.normalize_images(img[..., ::-1, :]), want[..., ::-1, :])
  np.testing.assert_allclose(np.asarray(normalize.normalize_images(jnp.asarray(img), jnp)), want,
                             rtol=1e-6, atol=1e-6)
