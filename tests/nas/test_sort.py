"""Channel sorting: the network function is unchanged (eval and train, BN running statistics
included), importance is non-increasing after sorting, sub-nets keep the top channels, and
init_supernet_from's shape errors and fresh head."""
import functools

import jax
import numpy as np
import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.nas.extract import extract_subnet
from litepose_jax.nas.sort import channel_importance
from litepose_jax.nas.sort import init_supernet_from
from litepose_jax.nas.sort import sort_channels
from tests.nas.helpers import SHALLOW_SPACE
from tests.nas.helpers import flat
from tests.nas.helpers import randomise_bn

SIZE = 64
SPACE = SHALLOW_SPACE
ARCH = nas.max_arch(SPACE)
# Stage 3 with stride 1 and stage 2's width: its first block adds a residual, so stages 2 and 3
# share one channel space.
JOINED = {**ARCH, 'backbone_setting': [
    *ARCH['backbone_setting'][:3], {**ARCH['backbone_setting'][3], 'channel': 96}]}


def randomized(arch, fusion=True, seed=1):
  """Variables with random kernels, BN affine parameters and running statistics."""
  v = models.init_variables(models.create_model(arch, fusion=fusion), SIZE, seed=seed)
  return randomise_bn(v, seed + 100)


@functools.cache
def apply_fn(arch_key, fusion, train):
  """One jitted apply per model and mode (variables are arguments: compiled once); the 'lax'
  implementations compile several times faster on CPU than 'auto' does."""
  model = models.create_model(JOINED if arch_key == 'joined' else ARCH, fusion=fusion,
                              depthwise_impl='lax', conv_impl='lax')
  if train:
    return jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))
  return jax.jit(model.apply)


@pytest.fixture(scope='module')
def supernet():
  return randomized(ARCH)


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(3).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)


def assert_outputs_close(got, want):
  for g, w in zip(got, want):
    assert np.abs(w).max() > 1e-2
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch_key,fusion,scope', [
    ('max', True, 'official'), ('max', True, 'all'), ('max', False, 'all'),
    ('joined', True, 'all'), ('joined', True, 'official')])
def test_eval_outputs_unchanged(images, arch_key, fusion, scope):
  arch = JOINED if arch_key == 'joined' else ARCH
  v = randomized(arch, fusion)
  s = sort_channels(v, arch, fusion=fusion, scope=scope)
  changed = [k for k, a in flat(v).items() if not np.array_equal(a, flat(s)[k])]
  assert 'params/stem_pw/conv/kernel' in changed  # the sort did permute something
  f = apply_fn(arch_key, fusion, False)
  assert_outputs_close(f(s, images), f(v, images))


def test_train_outputs_and_statistics_unchanged(supernet, images):
  """Train mode (batch statistics): same outputs, and the updated running statistics are the
  original net's updates in the sorted order."""
  sorted_v = sort_channels(supernet, ARCH)
  f = apply_fn('max', True, True)
  want, want_stats = f(supernet, images)
  got, got_stats = f(sorted_v, images)
  assert_outputs_close(got, want)
  resorted = sort_channels({'params': supernet['params'], **want_stats}, ARCH)
  for k, a in flat(resorted['batch_stats']).items():
    np.testing.assert_allclose(flat(got_stats['batch_stats'])[k], a, rtol=1e-5, atol=1e-6,
                               err_msg=k)


def test_running_statistics_are_permuted(supernet, images):
  sorted_v = sort_channels(supernet, ARCH, scope='official')
  order = np.argsort(-channel_importance(supernet, ARCH, scope='official')['stem'],
                     kind='stable')
  assert not np.array_equal(order, np.arange(order.size))
  for col, name in (('params', 'scale'), ('params', 'bias'), ('batch_stats', 'mean'),
                    ('batch_stats', 'var')):
    np.testing.assert_array_equal(sorted_v[col]['stem_pw_bn'][name],
                                  supernet[col]['stem_pw_bn'][name][order])
  # What the official code does (statistics left in the old order) changes eval outputs: the
  # equality tests above would catch it.
  official_bug = {'params': sorted_v['params'], 'batch_stats': supernet['batch_stats']}
  f = apply_fn('max', True, False)
  diff = max(np.abs(g - w).max() for g, w in zip(f(official_bug, images), f(supernet, images)))
  assert diff > 1e-2


@pytest.mark.parametrize('scope,count', [('official', 4), ('all', 4 + 1 + 10 + 3)])
def test_importance_non_increasing_after_sort(supernet, scope, count):
  before = channel_importance(supernet, ARCH, scope=scope)
  after = channel_importance(sort_channels(supernet, ARCH, scope=scope), ARCH, scope=scope)
  assert len(after) == count  # stem, stages 0-2 (+ stage 3, 10 blocks' hidden, 3 deconvs)
  assert any(np.any(np.diff(b) > 0) for b in before.values())
  for name, imp in after.items():
    assert np.all(np.diff(imp) <= 0), name
    np.testing.assert_allclose(imp, np.sort(before[name])[::-1], rtol=1e-12, err_msg=name)


def test_importance_definition(supernet):
  """Official: the next stage's first expand conv alone; all: every reader summed."""
  p = flat(supernet['params'])

  def l1(k, axis):
    return np.abs(p[k].astype(np.float64)).sum(axis=tuple(i for i in range(4) if i != axis))

  official = channel_importance(supernet, ARCH, scope='official')
  every = channel_importance(supernet, ARCH, scope='all')
  np.testing.assert_allclose(official['stem'], l1('stage0_block0/expand/conv/kernel', 2))
  np.testing.assert_allclose(every['stem'], l1('stage0_block0/expand/conv/kernel', 2)
                             + l1('final_raw1/depthwise/kernel', 3))
  np.testing.assert_allclose(official['stage1'], l1('stage2_block0/expand/conv/kernel', 2))
  np.testing.assert_allclose(
      every['stage1'], l1('stage1_block1/expand/conv/kernel', 2)
      + l1('stage1_block2/expand/conv/kernel', 2) + l1('stage2_block0/expand/conv/kernel', 2)
      + l1('deconv_raw1/deconv/kernel', 2))
  np.testing.assert_allclose(every['stage3'], l1('stage3_block1/expand/conv/kernel', 2)
                             + l1('deconv_refined0/deconv/kernel', 2))
  np.testing.assert_allclose(every['stage2_block1/hidden'],
                             l1('stage2_block1/project/conv/kernel', 2))
  np.testing.assert_allclose(every['deconv1'], l1('deconv_refined2/deconv/kernel', 2)
                             + l1('final_refined0/depthwise/kernel', 3))
  assert 'stage2+stage3' in channel_importance(randomized(JOINED), JOINED)


def test_subnet_keeps_the_top_channels(supernet):
  sub_arch = nas.uniform(SPACE, 0.5, 256)
  c0 = sub_arch['input_channel']
  stem = channel_importance(supernet, ARCH)['stem']
  hidden = channel_importance(supernet, ARCH)['stage1_block0/hidden']
  sub = extract_subnet(sort_channels(supernet, ARCH), sub_arch)
  top = np.argsort(-stem, kind='stable')[:c0]
  assert stem[top].min() >= np.delete(stem, top).max()
  np.testing.assert_array_equal(sub['params']['stem_pw']['conv']['kernel'],
                                supernet['params']['stem_pw']['conv']['kernel'][..., top])
  kernel = sub['params']['stage1_block0']['project']['conv']['kernel']
  h = kernel.shape[2]
  assert h < hidden.size
  top_h = np.argsort(-hidden, kind='stable')[:h]
  big = supernet['params']['stage1_block0']['project']['conv']['kernel']
  c = kernel.shape[3]
  stage1 = np.argsort(-channel_importance(supernet, ARCH)['stage1'], kind='stable')[:c]
  np.testing.assert_array_equal(kernel, big[:, :, top_h][..., stage1])


def test_input_untouched_and_copies_returned(supernet):
  before = {k: a.copy() for k, a in flat(supernet).items()}
  out = sort_channels(supernet, ARCH)
  for k, a in flat(supernet).items():
    np.testing.assert_array_equal(a, before[k], err_msg=k)
  for k, a in flat(out).items():
    assert isinstance(a, np.ndarray) and a.dtype == before[k].dtype
    assert not np.shares_memory(a, flat(supernet)[k]), k


def test_fresh_head_changes_only_the_head(supernet):
  kept = flat(init_supernet_from(supernet, SPACE))
  fresh = flat(init_supernet_from(supernet, SPACE, fresh_head=True, seed=5))
  init = flat(models.init_variables(models.create_model(ARCH), seed=5))
  assert kept.keys() == fresh.keys() == init.keys()
  heads = 0
  for k, a in kept.items():
    if k.split('/')[1].startswith(('deconv_', 'final_')):
      heads += 1
      np.testing.assert_array_equal(fresh[k], init[k], err_msg=k)
      assert not np.array_equal(fresh[k], a), k
    else:
      np.testing.assert_array_equal(fresh[k], a, err_msg=k)
  assert heads == 6 + 3 * 4 + 4 * 6  # deconv kernels, deconv BNs, 4 output layers (fusion)
  # sort=False: the trained net's variables, copied.
  plain = flat(init_supernet_from(supernet, SPACE, sort=False))
  for k, a in flat(supernet).items():
    np.testing.assert_array_equal(plain[k], a, err_msg=k)
    assert not np.shares_memory(plain[k], a)


def test_init_supernet_from_errors_name_the_path(supernet):
  wrong = jax.tree.map(np.array, supernet)
  wrong['params']['stage1_block1']['expand']['conv']['kernel'] = np.zeros((1, 1, 64, 200))
  with pytest.raises(UserError, match=r'params/stage1_block1/expand/conv/kernel has shape '
                     r'\(1, 1, 64, 200\), .* has \(1, 1, 64, 384\)'):
    init_supernet_from(wrong, SPACE)
  # The official depths: a block the shallow net lacks.
  with pytest.raises(UserError, match='stage0_block2/.* is missing'):
    init_supernet_from(supernet, nas.SearchSpace())
  # A deeper net than the largest: its extra blocks are named.
  deeper = nas.SearchSpace(depths=(2, 2, 2, 1), supernet_depths=(2, 3, 3, 1))
  with pytest.raises(UserError, match='stage3_block1/.* is not a variable of'):
    init_supernet_from(supernet, deeper)
  with pytest.raises(UserError, match='largest_variables must be'):
    init_supernet_from([], SPACE)
  with pytest.raises(UserError, match='scope must be one of'):
    init_supernet_from(supernet, SPACE, scope='hidden')
  with pytest.raises(UserError, match='final_raw0/pointwise/conv/kernel has shape'):
    sort_channels(supernet, ARCH, num_joints=17)
