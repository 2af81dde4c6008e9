"""Joint sets: flip indices are involutions mapping left to right, skeletons in range."""
import pytest

from litepose_jax import joints


@pytest.mark.parametrize('js', [joints.CROWDPOSE, joints.COCO])
def test_flip_index_swaps_sides(js):
  for j, f in enumerate(js.flip_index):
    assert js.flip_index[f] == j
    name, other = js.names[j], js.names[f]
    if name.startswith('left_'):
      assert other == 'right_' + name[len('left_'):]
    elif not name.startswith('right_'):
      assert f == j
  assert len(js.sigmas) == js.num_joints and sorted(js.group_order) == list(range(js.num_joints))
  assert all(0 <= a < js.num_joints and 0 <= b < js.num_joints for a, b in js.skeleton)


def test_lookup_and_custom_sets():
  assert joints.get_joint_set(14) is joints.CROWDPOSE and joints.get_joint_set('COCO') is joints.COCO
  with pytest.raises(ValueError, match='unknown joint set'):
    joints.get_joint_set('mpii')
  with pytest.raises(ValueError, match='no built-in joint set has 5'):
    joints.get_joint_set(5)
  js = joints.custom_joint_set(['a', 'left_b', 'right_b'], [0, 2, 1], [(0, 1)])
  assert js.num_joints == 3 and js.side(1) == 'left'
  with pytest.raises(ValueError, match='permutation'):
    joints.custom_joint_set(['a', 'b'], [0, 0])
  with pytest.raises(ValueError, match='skeleton edge'):
    joints.custom_joint_set(['a', 'b'], [0, 1], [(0, 2)])


def test_grouping_order_is_the_official_coco_order_cut_to_j():
  assert joints.COCO.group_order == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
  assert joints.CROWDPOSE.group_order == joints.COCO.group_order[:14]
  assert joints.default_group_order(5) == (0, 1, 2, 3, 4)
  with pytest.raises(ValueError, match='no default grouping order for 8'):
    joints.default_group_order(8)
