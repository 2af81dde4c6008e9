"""BatchNorm recalibration of a sub-net: the standalone sub-net's batch statistics (one batch) or
their average (several), other channels untouched, one compilation per resolution, and a
deterministic calibration stream."""
import jax
import numpy as np
import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.nas import recalibrate as recal
from tests.nas.helpers import LAX
from tests.nas.helpers import SHALLOW_SPACE
from tests.nas.helpers import random_supernet
from tests.nas.helpers import shortened_sample

SIZE = 64
SPACE = SHALLOW_SPACE


@pytest.fixture(scope='module')
def supernet():
  return random_supernet(SIZE)


def _arch():
  """A sample with a shortened stage (a block beyond the sub-net's depth inside the super-net)."""
  return shortened_sample(2)


def _batches(n, seed=1, batch=2):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=(batch, SIZE, SIZE, 3)).astype(np.float32) for _ in range(n)]


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _subnet_batch_stats(sub, sub_v, images):
  """The standalone sub-net's per-batch statistics, from its EMA update on its own (non-zero)
  running statistics: batch = (new - 0.9 old) / 0.1."""
  _, upd = sub.apply(sub_v, images, train=True, mutable=['batch_stats'])
  return jax.tree.map(lambda new, old: (np.asarray(new) - 0.9 * np.asarray(old)) / 0.1,
                      upd['batch_stats'], sub_v['batch_stats'])


def _assert_close(got, want, rtol=1e-3, atol=1e-4):
  got, want = _flat(got), _flat(want)
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize('num_batches', [1, 3])
def test_statistics_are_the_subnet_batch_statistics_averaged(supernet, num_batches):
  net, v = supernet
  arch = _arch()
  batches = _batches(num_batches)
  out = recal.recalibrate(net, v, arch, batches)
  sub = models.create_model(arch, 14, **LAX)
  sub_v = nas.extract_subnet(v, arch, 14)
  per_batch = [_subnet_batch_stats(sub, sub_v, x) for x in batches]
  want = jax.tree.map(lambda *s: np.mean(s, axis=0), *per_batch)
  got = nas.extract_subnet(out, arch, 14)['batch_stats']
  _assert_close(got, want)
  # Recalibrated statistics are the new sub-net's, not the super-net's mix.
  assert not np.allclose(got['stage0_block0']['expand_bn']['mean'],
                         sub_v['batch_stats']['stage0_block0']['expand_bn']['mean'])
  if num_batches == 3:  # the average, not the last batch
    last = per_batch[-1]['stage0_block0']['expand_bn']['var']
    assert not np.allclose(got['stage0_block0']['expand_bn']['var'], last, rtol=1e-3)


def test_other_channels_and_blocks_keep_their_values(supernet):
  net, v = supernet
  arch = _arch()
  before = jax.tree.map(np.copy, v)
  out = recal.recalibrate(net, v, arch, _batches(1))
  _assert_close(v, before, rtol=0, atol=0)  # the input is not modified
  assert all(isinstance(a, np.ndarray) for a in jax.tree.leaves(out))
  _assert_close(out['params'], v['params'], rtol=0, atol=0)
  bs, old = out['batch_stats'], v['batch_stats']
  # Stage 2 runs one block of the super-net's three: blocks 1 and 2 keep every statistic.
  for b in ('stage2_block1', 'stage2_block2'):
    _assert_close(bs[b], old[b], rtol=0, atol=0)
  # Within an active layer, channels beyond the sub-net's width keep theirs, the first ones move.
  masks = nas.subnet_masks(net, arch)
  hidden = int(masks['blocks'][1][0][0].sum())
  mean, old_mean = bs['stage1_block0']['expand_bn']['mean'], old['stage1_block0']['expand_bn']['mean']
  assert hidden < len(mean)
  np.testing.assert_array_equal(mean[hidden:], old_mean[hidden:])
  assert not np.any(np.isclose(mean[:hidden], old_mean[:hidden]))
  width = int(masks['stem'].sum())
  np.testing.assert_array_equal(bs['stem_pw_bn']['var'][width:], old['stem_pw_bn']['var'][width:])


def test_compiles_once_per_resolution(supernet):
  net, v = supernet
  fn = recal._stats_fn(net)
  start = fn._cache_size()
  # Batch 3: a shape no other test compiles, so exactly one new program whatever the order.
  outs = [recal.recalibrate(net, v, a, _batches(1, batch=3)) for a in
          (nas.sample(SPACE, 5), nas.smallest(SPACE), nas.largest(SPACE))]
  assert fn._cache_size() - start == 1
  assert not np.allclose(outs[1]['batch_stats']['stage3_block0']['project_bn']['var'][:8],
                         outs[2]['batch_stats']['stage3_block0']['project_bn']['var'][:8])


def test_bad_batches_are_user_errors(supernet):
  net, v = supernet
  with pytest.raises(UserError, match='no calibration batches'):
    recal.recalibrate(net, v, _arch(), [])
  mixed = _batches(1) + [np.zeros((2, 32, 32, 3), np.float32)]
  with pytest.raises(UserError, match='differs from the first'):
    recal.recalibrate(net, v, _arch(), mixed)


@pytest.fixture(scope='module')
def synth_data(tmp_path_factory):
  from litepose_jax.data import synthetic
  out = tmp_path_factory.mktemp('synth')
  synthetic.generate(out, num_images=8, seed=0, size=96, progress=False)
  return out


def _data_cfg(root):
  from litepose_jax.data import pipeline
  cfg = pipeline.default_data_config()
  cfg.data_dir, cfg.split, cfg.num_parallel_calls = str(root), 'train', 1
  return cfg


def test_calibration_batches_are_deterministic(synth_data):
  cfg = _data_cfg(synth_data)
  first = list(recal.calibration_batches(cfg, SIZE, num_images=5, batch_size=2, seed=3))
  again = recal.calibration_batches(cfg, SIZE, num_images=5, batch_size=2, seed=3)
  assert len(again) == 3 and again.num_images == 5
  again = list(again)
  assert len(first) == 3 and first[0].shape == (2, SIZE, SIZE, 3)
  assert first[0].dtype == np.float32 and first[0].min() < -1.0  # normalised, not bytes
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  other = list(recal.calibration_batches(cfg, SIZE, num_images=5, batch_size=2, seed=4))
  assert not np.array_equal(first[0], other[0])
  # The config passed in is not changed (input size, batch, seed are the calibration's own).
  assert cfg.input_size == 448 and cfg.batch_size == 32 and cfg.seed == 0
  # More images than the split has: each image once (7 training images, batch 4 -> 2 batches).
  everything = recal.calibration_batches(cfg, SIZE, num_images=100, batch_size=4)
  assert everything.num_images == 7 and len(list(everything)) == 2


def test_calibration_arguments_are_checked(synth_data):
  cfg = _data_cfg(synth_data)
  with pytest.raises(UserError, match='calib-images'):
    recal.calibration_batches(cfg, SIZE, num_images=0)
  with pytest.raises(UserError, match='calib-batch'):
    recal.calibration_batches(cfg, SIZE, batch_size=0)
  cfg.source = 'fake'
  with pytest.raises(UserError, match='data.source'):
    recal.calibration_batches(cfg, SIZE)
