"""tag_separation: per-person tags at known joints, the gap / spread / merged summary, warning."""
import math

import numpy as np

from litepose_jax.evaluation import tag_separation as ts


def _maps_with_people(values, size=(20, 30), num_joints=4):
  """Tag map [h, w, J, 1] where person p's joints (a column each) read values[p]; people [P, J, 3]."""
  h, w = size
  tags = np.zeros((h, w, num_joints, 1), np.float32)
  people = np.zeros((len(values), num_joints, 3), np.float32)
  for p, v in enumerate(values):
    for j in range(num_joints):
      x, y = 3 + 6 * p, 2 + 4 * j
      tags[y, x, j] = v + 0.1 * (j % 2)  # spread: 0.05 around the mean
      people[p, j] = (x + 0.7, y + 0.2, 1)  # read at the truncated pixel
  return tags, people


def test_separated_people():
  tags, people = _maps_with_people([0.0, 3.0, 7.0])
  s = ts.tag_separation([ts.person_tags(tags, people)])
  assert s['tag_pairs'] == 3
  assert math.isclose(s['tag_gap'], 4.0, abs_tol=1e-5)  # gaps 3, 4, 7
  assert s['tag_merged'] == 0.0
  assert math.isclose(s['tag_spread'], 0.05, abs_tol=1e-5)
  assert ts.collapse_warning(s) is None


def test_collapsed_tags_warn():
  tags, people = _maps_with_people([0.0, 0.02, 2.0])
  s = ts.tag_separation([ts.person_tags(tags, people)])
  assert math.isclose(s['tag_merged'], 1 / 3)
  assert ts.collapse_warning(s) is None  # one pair of three: not most
  pair = ts.person_tags(*_maps_with_people([0.0, 0.02]))
  s = ts.tag_separation([pair, ts.person_tags(tags, people)])
  assert s['tag_pairs'] == 4 and math.isclose(s['tag_merged'], 0.5)
  tags2, people2 = _maps_with_people([1.0, 1.01, 1.3])
  s = ts.tag_separation([ts.person_tags(tags2, people2)])
  assert s['tag_merged'] == 1.0
  assert 'ae_type=max' in ts.collapse_warning(s)


def test_invisible_and_outside_joints_are_skipped():
  tags, people = _maps_with_people([0.0, 5.0])
  people[0, 0, 2] = 0
  people[0, 1, :2] = (-3, 2)
  people[1, 2, :2] = (31, 5)
  got = ts.person_tags(tags, people)
  assert [len(t) for t in got] == [2, 3]


def test_nothing_to_measure_is_nan():
  tags, people = _maps_with_people([2.0])
  s = ts.tag_separation([ts.person_tags(tags, people), []])
  assert s['tag_pairs'] == 0 and math.isnan(s['tag_gap']) and math.isnan(s['tag_merged'])
  assert ts.collapse_warning(s) is None
  assert math.isnan(ts.tag_separation([])['tag_spread'])
