"""Heatmaps and AE joint indices against hand-computed values (docs/OFFICIAL.md, "Targets and loss")."""
import math

import numpy as np

from litepose_jax.data import targets


def _g(dx, dy, sigma=2.0):
  return math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))


def _kp(points, num_joints=3):
  """points: per person a dict joint -> (x, y, v)."""
  kp = np.zeros((len(points), num_joints, 3), np.float32)
  for p, d in enumerate(points):
    for j, xyv in d.items():
      kp[p, j] = xyv
  return kp


def test_gaussian_patch_values():
  g = targets.gaussian_patch(2.0)
  assert g.shape == (15, 15)
  assert g[7, 7] == 1.0
  np.testing.assert_allclose(g[7, 8], math.exp(-1 / 8), rtol=1e-6)
  np.testing.assert_allclose(g[0, 0], math.exp(-98 / 8), rtol=1e-5)
  np.testing.assert_allclose(g[9, 4], _g(-3, 2), rtol=1e-6)


def test_single_joint_values_and_extent():
  hm = targets.render_heatmaps(_kp([{1: (10.7, 20.2, 2)}]), 32)
  assert hm.shape == (32, 32, 3) and hm.dtype == np.float32
  assert hm[..., 0].max() == 0 and hm[..., 2].max() == 0
  h = hm[..., 1]
  # int() truncation: the peak sits at (x, y) = (10, 20).
  assert h[20, 10] == 1.0
  np.testing.assert_allclose(h[20, 11], _g(1, 0), rtol=1e-6)
  np.testing.assert_allclose(h[22, 7], _g(-3, 2), rtol=1e-6)
  np.testing.assert_allclose(h[20, 17], _g(7, 0), rtol=1e-5)
  np.testing.assert_allclose(h[27, 3], _g(-7, 7), rtol=1e-5)
  assert h[20, 18] == 0 and h[28, 10] == 0 and h[20, 2] == 0
  assert np.count_nonzero(h) == 15 * 15


def test_clipping_at_borders_and_visibility():
  hm = targets.render_heatmaps(_kp([{0: (0.0, 0.0, 1), 1: (31.9, 5.0, 2), 2: (32.0, 5.0, 2)}]), 32)
  g = targets.gaussian_patch()
  np.testing.assert_array_equal(hm[:8, :8, 0], g[7:, 7:])
  assert np.count_nonzero(hm[..., 0]) == 64
  np.testing.assert_array_equal(hm[0:13, 24:32, 1], g[2:15, 0:8])
  assert np.count_nonzero(hm[..., 1]) == 13 * 8
  assert hm[..., 2].max() == 0  # x = 32 is outside [0, 32)
  # Invisible joints and negative positions below -1 give nothing; -0.5 truncates to 0 (inside).
  hm = targets.render_heatmaps(_kp([{0: (5, 5, 0), 1: (-1.0, 5, 2), 2: (-0.5, 5, 2)}]), 32)
  assert hm[..., 0].max() == 0 and hm[..., 1].max() == 0 and hm[5, 0, 2] == 1.0


def test_people_combine_by_max():
  hm = targets.render_heatmaps(_kp([{0: (10, 10, 2)}, {0: (13, 10, 2)}]), 32)
  h = hm[..., 0]
  assert h[10, 10] == 1.0 and h[10, 13] == 1.0
  np.testing.assert_allclose(h[10, 11], max(_g(1, 0), _g(2, 0)), rtol=1e-6)
  np.testing.assert_allclose(h[12, 12], max(_g(2, 2), _g(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(h[10, 4], _g(6, 0), rtol=1e-5)  # only the first person reaches here


def test_encode_joints_values_and_slot_order():
  kp = _kp([{0: (1.9, 2.5, 2), 1: (4, 4, 0), 2: (3, 4, 1)},
            {0: (9, 1, 2), 1: (-3, 1, 2), 2: (7.99, 7.2, 2)}])
  j = targets.encode_joints(kp, 8, max_people=4)
  assert j.shape == (4, 3, 2) and j.dtype == np.int32
  # Person 0: joint 0 -> slot 0, joint 1 invisible, joint 2 -> slot 1 (not slot 2).
  np.testing.assert_array_equal(j[0], [[0 * 64 + 2 * 8 + 1, 1], [2 * 64 + 4 * 8 + 3, 1], [0, 0]])
  # Person 1: joints 0 and 1 out of bounds; joint 2 goes to slot 0.
  np.testing.assert_array_equal(j[1], [[2 * 64 + 7 * 8 + 7, 1], [0, 0], [0, 0]])
  assert not j[2:].any()


def test_more_people_than_slots_are_dropped_and_counted():
  kp = np.zeros((35, 2, 3), np.float32)
  kp[:, 0] = (3, 3, 2)
  kp[33, 0, 2] = 0  # a person beyond the limit without kept joints is not counted
  j, dropped = targets.encode_joints(kp, 16, max_people=30, return_num_dropped=True)
  assert j.shape == (30, 2, 2) and j[:, 0, 1].all() and dropped == 4
  assert targets.render_heatmaps(kp, 16)[3, 3, 0] == 1.0  # heatmaps keep everyone


def test_bad_shape_is_a_clear_error():
  try:
    targets.render_heatmaps(np.zeros((2, 3)), 8)
  except ValueError as e:
    assert '[P, J, 3]' in str(e)
  else:
    raise AssertionError('expected ValueError')
