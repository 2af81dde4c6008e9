"""Sliced sub-nets: the search's evaluation at the sub-net's own widths computes what the masked
super-net computes (maps, recalibrated statistics, AP), with no compilation after the first
candidate of a resolution; widths the blocks cannot express fall back to the masked path."""
import jax
import numpy as np
import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.search import fitness as fitness_lib
from litepose_jax.search import sliced as sliced_lib
from tests.search.helpers import search_setup

# Two widths per gene and a two-block stage: every kind of program, few of them.
SMALL = nas.SearchSpace(resolutions=(64,), width_mults=(1.0, 0.5), depths=(1, 2, 1, 1),
                        supernet_depths=(1, 2, 1, 1))


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
  net, variables, cfg, splits = search_setup(tmp_path_factory.mktemp('sliced'), space=SMALL)
  make = lambda sliced: fitness_lib.Fitness(net, variables, cfg, splits, calib_batch=4,
                                            eval_batch=4, sliced=sliced)
  return make(True), make(False)


def _archs():
  first = nas.sample(SMALL, 0)
  shallow = nas.sample(SMALL, 1)
  shallow['backbone_setting'][1]['num_blocks'] = 1  # elastic depth: the second block skipped
  shallow['backbone_setting'][1]['block_setting'] = shallow['backbone_setting'][1][
      'block_setting'][:1]
  return [first, shallow, nas.smallest(SMALL)]


def test_equals_the_masked_supernet_without_recompiling(pair):
  sliced, masked = pair
  archs = _archs()
  compiles = None
  for i, arch in enumerate(archs):
    ours, ref = sliced.recalibrated(arch), masked.recalibrated(arch)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(ours['batch_stats'])[0],
                            jax.tree.leaves(ref['batch_stats'])):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    (heat, tags), (heat_ref, tags_ref) = sliced.maps(arch), masked.maps(arch)
    np.testing.assert_allclose(heat, heat_ref, atol=1e-5)
    np.testing.assert_allclose(tags, tags_ref, atol=1e-5)
    assert sliced.score(arch) == pytest.approx(masked.score(arch), abs=1e-9)
    if i == 0:
      compiles = sliced.compiles
      assert compiles > 3  # block programs, not the masked super-net's three
    else:
      assert sliced.compiles == compiles


def test_coinciding_widths_fall_back_to_the_masked_path():
  # Stage 2 and 3 widths can coincide (96) while the super-net's (96 -> 192) differ: a sliced
  # stride-1 first block would add a residual the super-net has not.
  space = nas.SearchSpace(resolutions=(64,), stage_bases=(32, 64, 96, 192))
  net = nas.create_supernet(14, space)
  runner = sliced_lib.SlicedSubnets(net)
  arch = nas.largest(space)
  assert runner.plan(models.resolve_arch(arch)) is not None
  arch['backbone_setting'][3]['channel'] = 96
  assert runner.plan(models.resolve_arch(arch)) is None
