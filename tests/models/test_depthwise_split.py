"""The export's depthwise split (depthwise_impl='split'): covers and equality with the conv."""
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax.models import depthwise
from litepose_jax.models import depthwise_split

DN = ('NHWC', 'HWIO', 'NHWC')


@pytest.mark.parametrize('kernel', [7, 9])
@pytest.mark.parametrize('stride,size', [(1, 12), (1, 9), (2, 12), (2, 9)])
def test_split_depthwise_equals_lax(stride, size, kernel):
  rng = np.random.default_rng(stride + size)
  x = rng.normal(size=(1, size, size + 2, 5)).astype(np.float32)
  k = rng.normal(size=(kernel, kernel, 1, 5)).astype(np.float32)
  p = kernel // 2
  ref = lax.conv_general_dilated(x, k, (stride, stride), ((p, p), (p, p)), dimension_numbers=DN,
                                 feature_group_count=5)
  got = depthwise_split.split_depthwise(x, k, stride)
  assert got.shape == ref.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)
  # The same through the impl switch, with a bias and with a traced (jnp) kernel.
  bias = rng.normal(size=5).astype(np.float32)
  for kern in (k, jnp.asarray(k)):
    got = depthwise.depthwise_conv2d(x, kern, stride, 'split', bias)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref) + bias, atol=1e-5)


def test_small_kernels_split_into_one_conv():
  x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
  k = np.random.default_rng(1).normal(size=(5, 5, 1, 3)).astype(np.float32)
  assert not depthwise_split.has_split(5, 1)
  np.testing.assert_array_equal(depthwise.depthwise_conv2d(x, k, 1, 'split'),
                                depthwise.depthwise_conv2d(x, k, 1, 'lax'))


def test_covers_partition_the_kernel():
  # 'SAME' offsets of stride-2 sub-convs depend on the parity of the size: some cover must
  # partition the kernel on every size, and even sizes (every export size) get the first one.
  for (k, stride), covers in depthwise_split.PIECES.items():
    for height, width in ((2 * k, 2 * k + 2), (2 * k + 1, 2 * k + 3), (2 * k + 1, 2 * k), (1, 2)):
      cover = depthwise_split.cover(k, stride, height, width)
      taps = [(r, c) for rows, cols, _ in cover for r in rows for c in cols if r >= 0 and c >= 0]
      assert sorted(taps) == [(r, c) for r in range(k) for c in range(k)]
      # Every sub-conv fits XNNPACK's fast micro-kernels (<= 25 taps, zero taps included).
      assert all(len(rows) * len(cols) <= 25 for rows, cols, _ in cover)
    assert len(depthwise_split.cover(k, stride, 2 * k, 2 * k + 2)) == len(covers[0])


def test_cover_that_misses_taps_is_refused(monkeypatch):
  monkeypatch.setitem(depthwise_split.PIECES, (7, 1), (depthwise_split.PIECES[(7, 1)][0][:2],))
  with pytest.raises(ValueError, match='no 7x7 stride-1 sub-conv cover'):
    depthwise_split.cover(7, 1, 8, 8)
