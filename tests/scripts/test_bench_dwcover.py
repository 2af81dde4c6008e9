"""scripts/bench_dwcover.py: the exact cover search behind the export's depthwise splits."""
import importlib.util
import pathlib

import numpy as np
import pytest

from litepose_jax.models import depthwise_split

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def dwcover():
  spec = importlib.util.spec_from_file_location('bench_dwcover',
                                                ROOT / 'scripts' / 'bench_dwcover.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('k,stride,max_pieces', [(7, 1, 3), (7, 1, 4), (7, 2, 5), (9, 1, 4)])
def test_every_cover_found_partitions_the_kernel(dwcover, k, stride, max_pieces):
  found = dwcover.covers(k, stride, max_pieces)
  assert found and [c for c, _ in found] == sorted(c for c, _ in found)
  for _, cover in found:
    assert len(cover) <= max_pieces
    pieces = depthwise_split.cover(k, stride, 2 * k, 2 * k, (cover,))
    taps = [(r, c) for rows, cols, _ in pieces for r in rows for c in cols if r >= 0 and c >= 0]
    assert sorted(taps) == [(r, c) for r in range(k) for c in range(k)]


def test_two_sub_convs_cannot_cover_7x7_and_the_export_cover_is_found(dwcover):
  # At most 25 taps each: two rectangles never partition 49 taps (the complement of a 5x5 is a
  # ring); the export's stride-1 and first stride-2 covers are among the search's results.
  assert dwcover.covers(7, 1, 2) == []
  for stride, m in ((1, 3), (2, 5)):
    found = {tuple(sorted(c)) for _, c in dwcover.covers(7, stride, m)}
    assert tuple(sorted(depthwise_split.PIECES[(7, stride)][0])) in found


def test_split_with_a_searched_cover_equals_the_conv(dwcover):
  from jax import lax
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 10, 12, 3)).astype(np.float32)
  kernel = rng.normal(size=(7, 7, 1, 3)).astype(np.float32)
  ref = lax.conv_general_dilated(x, kernel, (1, 1), ((3, 3), (3, 3)),
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=3)
  _, cover = dwcover.covers(7, 1, 5)[-1]  # the most expensive of up to 5 sub-convs
  got = depthwise_split.split_depthwise(x, kernel, 1, None, (cover,))
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)
