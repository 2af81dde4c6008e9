"""The masked super-net: equal to the extracted standalone sub-net (forward, gradients, BatchNorm
statistics), one compilation per resolution, errors naming the field."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.nas import supernet as supernet_lib
from tests.nas.helpers import LAX
from tests.nas.helpers import SHALLOW_SPACE
from tests.nas.helpers import random_supernet
from tests.nas.helpers import shortened_sample

SIZE = 64
# Shallow super-net (2/3/3/2 blocks) with the official widths; sub-nets have 2 blocks per stage.
SPACE = SHALLOW_SPACE  # XLA's own convolutions (LAX); the CPU kernels are checked once below


@pytest.fixture(scope='module')
def supernet():
  return random_supernet(SIZE)


def _archs():
  """Three sub-nets: two samples (one with a shortened stage) and the smallest."""
  a = nas.sample(SPACE, 1)
  b = shortened_sample(2)
  return [a, b, nas.smallest(SPACE)]


def _x(seed=1, size=SIZE):
  return np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype(np.float32)


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize('index', [0, 1, 2])
def test_masked_forward_equals_the_extracted_net(supernet, index):
  net, v = supernet
  arch = _archs()[index]
  sub = models.create_model(arch, 14, **LAX)
  sub_v = nas.extract_subnet(v, arch, 14)
  x = _x()
  assert _max_diff(net.apply(v, x, arch), sub.apply(sub_v, x)) < 1e-5
  # Training mode: batch statistics of the active channels, and the running-stat updates.
  out, upd = net.apply(v, x, arch, train=True, mutable=['batch_stats'])
  ref, ref_upd = sub.apply(sub_v, x, train=True, mutable=['batch_stats'])
  assert _max_diff(out, ref) < 1e-4
  moved = nas.extract_subnet({'params': v['params'], 'batch_stats': upd['batch_stats']}, arch, 14)
  assert _max_diff(moved['batch_stats'], ref_upd['batch_stats']) < 1e-5


def test_cpu_kernels_run_inside_the_supernet(supernet):
  # The same depthwise / conv implementation machinery as the standalone net (CPU: 'auto').
  _, v = supernet
  net = nas.create_supernet(14, SPACE)
  arch = _archs()[1]
  sub = models.create_model(arch, 14)
  x = _x()
  assert _max_diff(net.apply(v, x, arch), sub.apply(nas.extract_subnet(v, arch, 14), x)) < 1e-5


def test_inactive_channels_keep_their_running_statistics(supernet):
  net, v = supernet
  arch = _archs()[1]
  _, upd = net.apply(v, _x(), arch, train=True, mutable=['batch_stats'])
  old = v['batch_stats']['stage1_block0']['project_bn']['mean']
  new = np.asarray(upd['batch_stats']['stage1_block0']['project_bn']['mean'])
  c = arch['backbone_setting'][1]['channel']
  assert not np.allclose(new[:c], old[:c])
  np.testing.assert_array_equal(new[c:], old[c:])
  # The dropped third block of stage 2 keeps every statistic.
  skipped = upd['batch_stats']['stage2_block1']
  for name in ('expand_bn', 'depthwise_bn', 'project_bn'):
    np.testing.assert_array_equal(skipped[name]['var'],
                                  v['batch_stats']['stage2_block1'][name]['var'])


def test_gradients_equal_those_of_the_extracted_net(supernet):
  net, v = supernet
  arch = _archs()[0]
  sub = models.create_model(arch, 14, **LAX)
  sub_v = nas.extract_subnet(v, arch, 14)
  x = _x()
  w4, w2 = (np.random.default_rng(5).normal(size=s).astype(np.float32)
            for s in ((2, 16, 16, 28), (2, 32, 32, 14)))

  def loss(apply_fn):
    def f(params, stats):
      (o4, o2), _ = apply_fn({'params': params, 'batch_stats': stats})
      return jnp.sum(o4 * w4) + jnp.sum(o2 * w2)
    return f
  g_super = jax.grad(loss(lambda vv: net.apply(vv, x, arch, train=True,
                                               mutable=['batch_stats'])))(
      v['params'], v['batch_stats'])
  g_sub = jax.grad(loss(lambda vv: sub.apply(vv, x, train=True, mutable=['batch_stats'])))(
      sub_v['params'], sub_v['batch_stats'])
  cut = nas.extract_subnet({'params': g_super, 'batch_stats': v['batch_stats']}, arch, 14)
  scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(g_sub))
  assert _max_diff(cut['params'], g_sub) < 1e-4 * scale
  # Outside the sub-net the gradient is exactly zero.
  k = np.asarray(g_super['stem_pw']['conv']['kernel'])
  c0 = arch['input_channel']
  assert c0 < k.shape[-1] and np.any(k[..., :c0]) and not np.any(k[..., c0:])


def test_no_arch_is_the_largest_litepose(supernet):
  net, v = supernet
  largest = models.create_model(nas.max_arch(SPACE), 14, **LAX)
  x = _x()
  assert _max_diff(net.apply(v, x), largest.apply(v, x)) == 0.0


def test_one_compilation_per_resolution(supernet):
  net, v = supernet
  fwd = jax.jit(lambda vv, x, m: net.apply(vv, x, m))
  for arch in _archs():
    fwd(v, _x(), supernet_lib.subnet_masks(net, arch))
  assert fwd._cache_size() == 1  # pylint: disable=protected-access
  fwd(v, _x(size=96), supernet_lib.subnet_masks(net, _archs()[0]))
  assert fwd._cache_size() == 2  # pylint: disable=protected-access


@pytest.mark.parametrize('edit,match', [
    (lambda a: a.update(input_channel=20), 'input_channel'),
    (lambda a: a['backbone_setting'][1].update(num_blocks=4, block_setting=[[6, 7]] * 4),
     r'backbone_setting\[1\].num_blocks'),
    (lambda a: a['backbone_setting'][0]['block_setting'].__setitem__(0, [6, 5]),
     r'backbone_setting\[0\].block_setting\[0\]'),
])
def test_archs_outside_the_supernet_are_named(supernet, edit, match):
  net, v = supernet
  arch = nas.sample(SPACE, 0)
  edit(arch)
  with pytest.raises(UserError, match=match):
    net.apply(v, _x(), arch)


def test_model_config_round_trip():
  cfg = nas.supernet_model_config(SPACE, 17, joint_set='coco')
  net = supernet_lib.supernet_from_config(cfg)
  assert net.space == SPACE and net.num_joints == 17
  assert models.arch_from_dict(cfg['arch']).channels == (24, 32, 64, 96, 160)
  with pytest.raises(UserError, match='not a super-net'):
    supernet_lib.supernet_from_config({k: v for k, v in cfg.items() if k != 'supernet'})
