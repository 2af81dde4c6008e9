"""BN folding: hand-computed folds, the split 7x7 depthwise conv, and whole-model equality."""
import jax
from jax import lax
import numpy as np
import pytest

from litepose_jax.export import fold

DN = ('NHWC', 'HWIO', 'NHWC')


def test_bn_fold_matches_hand_computation():
  # One BN channel: gamma 2, beta 0.5, mean 1, var 3 -> scale 2/sqrt(3+1e-5), shift 0.5 - scale.
  variables = {'params': {'bn': {'scale': np.array([2.0]), 'bias': np.array([0.5])},
                          'conv': {'kernel': np.full((1, 1, 1, 1), 3.0)}},
               'batch_stats': {'bn': {'mean': np.array([1.0]), 'var': np.array([3.0])}}}
  layer = fold._conv_bn(variables, 'conv/kernel', 'bn')
  s = 2.0 / np.sqrt(3.0 + 1e-5)
  np.testing.assert_allclose(layer['kernel'].ravel(), [3.0 * s], rtol=1e-6)
  np.testing.assert_allclose(layer['bias'], [0.5 - s], rtol=1e-6)
  # conv(x) = 3x, then BN: y = 2 (3x - 1)/sqrt(3) + 0.5; at x = 1: 2*2/sqrt(3) + 0.5.
  y = fold._conv(np.ones((1, 1, 1, 1), np.float32), layer)
  np.testing.assert_allclose(np.asarray(y).ravel(), [4.0 / np.sqrt(3.0 + 1e-5) + 0.5], rtol=1e-6)


def test_negative_variance_is_rejected():
  variables = {'params': {'bn': {'scale': np.ones(1), 'bias': np.zeros(1)}},
               'batch_stats': {'bn': {'mean': np.zeros(1), 'var': -np.ones(1)}}}
  with pytest.raises(ValueError, match='bn/var'):
    fold._bn(variables, 'bn')


@pytest.mark.parametrize('kernel', [7, 9])
@pytest.mark.parametrize('stride,size', [(1, 12), (1, 9), (2, 12), (2, 9)])
def test_split_depthwise_equals_lax(stride, size, kernel):
  rng = np.random.default_rng(stride + size)
  x = rng.normal(size=(1, size, size + 2, 5)).astype(np.float32)
  k = rng.normal(size=(kernel, kernel, 1, 5)).astype(np.float32)
  p = kernel // 2
  ref = lax.conv_general_dilated(x, k, (stride, stride), ((p, p), (p, p)), dimension_numbers=DN,
                                 feature_group_count=5)
  got = fold._depthwise_split(x, k, stride)
  assert got.shape == ref.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)


def test_covers_partition_the_kernel():
  # 'SAME' offsets of stride-2 sub-convs depend on the parity of the size: some cover must
  # partition the kernel on every size, and even sizes (every export size) get the first one.
  for (k, stride), covers in fold._PIECES.items():
    for height, width in ((2 * k, 2 * k + 2), (2 * k + 1, 2 * k + 3), (2 * k + 1, 2 * k), (1, 2)):
      cover = fold._cover(k, stride, height, width)
      taps = [(r, c) for rows, cols, _ in cover for r in rows for c in cols if r >= 0 and c >= 0]
      assert sorted(taps) == [(r, c) for r in range(k) for c in range(k)]
      # Every sub-conv fits XNNPACK's fast micro-kernels (<= 25 taps, zero taps included).
      assert all(len(rows) * len(cols) <= 25 for rows, cols, _ in cover)
    assert len(fold._cover(k, stride, 2 * k, 2 * k + 2)) == len(covers[0])


def test_cover_that_misses_taps_is_refused(monkeypatch):
  monkeypatch.setitem(fold._PIECES, (7, 1), (fold._PIECES[(7, 1)][0][:2],))
  with pytest.raises(ValueError, match='no 7x7 stride-1 sub-conv cover'):
    fold._cover(7, 1, 8, 8)


@pytest.mark.parametrize('band', [False, True])
def test_folded_model_equals_module(xs_model, band):
  module, variables = xs_model
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  out4, out2 = module.apply(variables, x)
  folded = fold.fold_variables(module, variables, band_depthwise=band)
  h4, t4, h2 = jax.jit(lambda im: fold.folded_apply(folded, im))(x)
  j = module.num_joints
  assert h4.shape == (1, 16, 16, j) and t4.shape == (1, 16, 16, j) and h2.shape == (1, 32, 32, j)
  # The random BN statistics make the fold non-trivial: outputs are far from zero.
  assert np.abs(out4).max() > 0.05
  np.testing.assert_allclose(h4, out4[..., :j], atol=1e-5)
  np.testing.assert_allclose(t4, out4[..., j:], atol=1e-5)
  np.testing.assert_allclose(h2, out2, atol=1e-5)


def test_plain_head_without_fusion():
  from litepose_jax.models import create_model
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
  with pytest.raises(ValueError, match='stem_conv'):
    fold.fold_variables(module, broken)
  with pytest.raises(ValueError, match='batch_stats'):
    fold.fold_variables(module, {'params': variables['params']})
