"""parse_poses: known people from ground-truth-like maps, and equality with the literal reference."""
import numpy as np
import pytest

from litepose_jax.inference import peaks
from litepose_jax.inference.parser import parse_poses
from litepose_jax.reference import official_parser as ref
from tests.inference import decode_fixtures as fx


@pytest.mark.parametrize('num_people', [1, 5, 15, 30])
def test_decodes_known_people(num_people):
  rng = np.random.default_rng(num_people)
  people = fx.random_people(rng, num_people, 14, (96, 128))
  heat, tags = fx.render_maps(people, (96, 128))
  poses, scores = parse_poses(heat, tags)
  assert poses.shape == (num_people, 14, 3)
  idx = fx.match_people(poses, people)
  assert sorted(idx) == list(range(num_people))
  np.testing.assert_array_less(np.abs(poses[idx, :, :2] - people[..., :2]), 0.5 + 1e-6)
  np.testing.assert_allclose(poses[..., 2], 1.0)
  np.testing.assert_allclose(scores, 1.0)


@pytest.mark.parametrize('num_people', [5, 15, 30])
def test_decodes_overlapping_people(num_people):
  rng = np.random.default_rng(100 + num_people)
  people = fx.clustered_people(rng, num_people, 14, (96, 128), spread=14)
  heat, tags = fx.render_maps(people, (96, 128))
  poses, _ = parse_poses(heat, tags)
  assert poses.shape[0] == num_people
  idx = fx.match_people(poses, people)
  assert sorted(idx) == list(range(num_people))
  np.testing.assert_array_less(np.abs(poses[idx, :, :2] - people[..., :2]), 0.5 + 1e-6)


def test_adjust_moves_toward_larger_neighbour():
  heat = np.zeros((9, 9, 1), np.float32)
  tags = np.zeros((9, 9, 1, 1), np.float32)
  heat[4, 4], heat[4, 5], heat[4, 3], heat[3, 4], heat[5, 4] = 1.0, 0.6, 0.5, 0.2, 0.2
  poses, scores = parse_poses(heat, tags, joint_order=[0])
  # x: right (0.6) > left (0.5) -> +0.25; y: tie -> -0.25; then +0.5 both.
  np.testing.assert_allclose(poses, [[[4.75, 4.25, 1.0]]])
  np.testing.assert_allclose(scores, [1.0])
  poses, _ = parse_poses(heat, tags, adjust=False, joint_order=[0])
  np.testing.assert_allclose(poses, [[[4, 4, 1.0]]])


def test_tag_threshold_splits_people():
  heat = np.zeros((16, 16, 2), np.float32)
  tags = np.zeros((16, 16, 2, 1), np.float32)
  heat[3, 3, 0] = heat[10, 10, 1] = 0.9
  tags[3, 3, 0], tags[10, 10, 1] = 0.0, 0.9
  poses, _ = parse_poses(heat, tags, joint_order=[0, 1], refine=False)
  assert poses.shape[0] == 1
  poses, _ = parse_poses(heat, tags, joint_order=[0, 1], tag_threshold=0.5, refine=False)
  assert poses.shape[0] == 2


def test_refine_fills_missing_joint_from_person_tag():
  heat = np.zeros((16, 16, 2), np.float32)
  tags = np.zeros((16, 16, 2, 1), np.float32)
  heat[3, 3, 0] = 0.9
  heat[10, 12, 1] = 0.05  # below the detection threshold: only refine can find it
  heat[2, 2, 1] = 0.07
  tags[..., 1, 0] = 5.0
  tags[10, 12, 1] = 0.2  # tag near person's (0.0) -> score 0.05 beats 0.07 - round(5)
  poses, scores = parse_poses(heat, tags, joint_order=[0, 1])
  np.testing.assert_allclose(poses[0, 1], [12.25, 10.25, 0.05], rtol=1e-6)
  np.testing.assert_allclose(scores, [0.45])  # score is taken before refine
  poses, _ = parse_poses(heat, tags, joint_order=[0, 1], refine=False)
  np.testing.assert_allclose(poses[0, 1], 0)


def test_empty_maps_give_no_people():
  poses, scores = parse_poses(np.zeros((8, 8, 14), np.float32), np.zeros((8, 8, 14, 1)))
  assert poses.shape == (0, 14, 3) and scores.shape == (0,)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match='heatmaps'):
    parse_poses(np.zeros((8, 8)), np.zeros((8, 8, 1, 1)))
  with pytest.raises(ValueError, match='joints'):
    parse_poses(np.zeros((8, 8, 14)), np.zeros((8, 8, 13, 1)))


@pytest.mark.parametrize('where,bad', [('heatmaps', np.inf), ('tags', np.inf), ('tags', np.nan)])
def test_non_finite_peaks_raise_a_clear_error(where, bad):
  # (NaN heatmap pixels are never above the threshold; Predictor rejects NaN maps.)
  rng = np.random.default_rng(9)
  heat, tags = fx.people_maps(rng, 3, (40, 56), 0.0)
  if where == 'heatmaps':
    heat[..., 5] = np.where(heat[..., 5] > 0.1, bad, heat[..., 5])
  else:
    tags[..., 5, :] = bad
  with pytest.raises(ValueError, match='inf / NaN'):
    parse_poses(heat, tags)
  # Non-finite values away from the peaks do not matter (refine never picks them).
  heat, tags = fx.people_maps(rng, 3, (40, 56), 0.3)
  tags[:2, :2] = np.nan
  assert parse_poses(heat, tags)[0].shape[0] >= 3


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('tag_dim', [1, 2])
def test_equals_reference_on_random_maps(seed, tag_dim):
  rng = np.random.default_rng(seed)
  h, w, j = 24, 40, 14
  heat = fx.smooth_random(rng, (h, w, j), 1.0) * 3 - 1.2
  tags = rng.normal(0, 2, (h, w, j, tag_dim)).astype(np.float32)
  fx.assert_same_poses(parse_poses(heat, tags), ref.reference_parse(heat, tags))
  fx.assert_same_poses(parse_poses(heat, tags, max_people=5, tag_threshold=2.0),
               ref.reference_parse(heat, tags, max_people=5, tag_threshold=2.0))


@pytest.mark.parametrize('seed', range(3))
def test_equals_reference_on_people_with_missing_joints(seed):
  rng = np.random.default_rng(10 + seed)
  people = fx.clustered_people(rng, 12, 14, (64, 96), spread=12)
  people[..., 2] = rng.random(people.shape[:2]) > 0.25
  heat, tags = fx.render_maps(people, (64, 96))
  heat = heat + rng.normal(0, 0.02, heat.shape).astype(np.float32)
  tags = tags + rng.normal(0, 0.1, tags.shape).astype(np.float32)
  fast = parse_poses(heat, tags)
  fx.assert_same_poses(fast, ref.reference_parse(heat, tags))
  # Every visible true joint is found where it was rendered.
  idx = fx.match_people(fast[0], people)
  vis = people[..., 2] > 0
  err = np.abs(fast[0][idx, :, :2] - people[..., :2]).max(-1)
  assert (err[vis] < 0.5 + 1e-6).all()


def test_low_resolution_tags_equal_resized_tags():
  rng = np.random.default_rng(3)
  heat = fx.smooth_random(rng, (32, 48, 14), 1.0) * 3 - 1.2
  small = rng.normal(0, 2, (16, 24, 14, 2)).astype(np.float32)
  from litepose_jax.inference.fusion import resize_bilinear
  full = resize_bilinear(small.reshape(16, 24, -1), (32, 48)).reshape(32, 48, 14, 2)
  fx.assert_same_poses(parse_poses(heat, small), parse_poses(heat, full))


@pytest.mark.parametrize('tag_dim', [1, 2])
def test_equals_reference_on_larger_random_maps(tag_dim):
  # More 4x4 blocks than refine probes exactly first: exercises the pruning bound.
  rng = np.random.default_rng(20 + tag_dim)
  heat = fx.smooth_random(rng, (48, 72, 14), 1.5) * 3 - 1.2
  tags = rng.normal(0, 2, (48, 72, 14, tag_dim)).astype(np.float32)
  fx.assert_same_poses(parse_poses(heat, tags), ref.reference_parse(heat, tags))


@pytest.mark.parametrize('shape', [(1, 1, 2), (1, 7, 3), (4, 3, 2), (9, 13, 5), (30, 41, 3)])
@pytest.mark.parametrize('levels', [3, 20, 0])
def test_peaks_equal_max_pooling(shape, levels):
  # The candidates of a 5x5 max-pool NMS (-inf padding, as torch's max_pool2d) above the
  # threshold, written out densely. Quantised maps (levels > 0) have plateaus and ties between
  # neighbours; the small shapes put every candidate near a border.
  rng = np.random.default_rng(sum(shape) + levels)
  heat = fx.smooth_random(rng, shape, 1.0) if min(shape[:2]) > 1 else rng.random(shape)
  heat = heat.astype(np.float32)
  if levels:
    heat = (np.round(heat * levels) / levels).astype(np.float32)
  h, w, j = shape
  padded = np.pad(heat, ((2, 2), (2, 2), (0, 0)), constant_values=-np.inf)
  pooled = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(5) for dx in range(5)], axis=0)
  np.testing.assert_array_equal(peaks.block_max(heat), np.pad(
      heat, ((0, -h % 5), (0, -w % 5), (0, 0)), constant_values=-np.inf).reshape(
          -(-h // 5), 5, -(-w // 5), 5, j).max(axis=(1, 3)))
  for threshold in (-1.0, 0.3, float(np.median(heat))):
    pix, val, joint, start, _ = peaks.find_peaks(heat, h * w, threshold)
    y, x, jj = np.nonzero((heat == pooled) & (heat > np.float32(threshold)))
    expect = sorted(zip(jj, -heat[y, x, jj], y * w + x))
    np.testing.assert_array_equal(np.stack([joint, -val, pix], 1).reshape(-1, 3),
                                  np.array(expect, np.float64).reshape(-1, 3))
    np.testing.assert_array_equal(start, np.searchsorted(joint, np.arange(j + 1)))


def test_peaks_keep_the_top_k_of_each_joint():
  rng = np.random.default_rng(3)
  heat = fx.smooth_random(rng, (40, 60, 4), 1.0).astype(np.float32)
  every = peaks.find_peaks(heat, 10 ** 6, 0.0)
  top = peaks.find_peaks(heat, 3, 0.0)
  for j in range(4):
    np.testing.assert_array_equal(top[0][top[3][j]:top[3][j + 1]],
                                  every[0][every[3][j]:every[3][j] + 3])
  assert (np.diff(top[3]) <= 3).all()


def test_peaks_on_plateaus_and_crowds_equal_reference():
  rng = np.random.default_rng(60)
  heat = fx.smooth_random(rng, (24, 40, 14), 1.0) * 3 - 1.2
  heat = np.where(heat > 0.5, np.round(heat * 10) / 10, heat).astype(np.float32)  # peak plateaus
  tags = rng.normal(0, 2, (24, 40, 14, 1)).astype(np.float32)
  fx.assert_same_poses(parse_poses(heat, tags), ref.reference_parse(heat, tags))
  heat, tags = fx.people_maps(rng, 10, (37, 53), 0.3)
  fx.assert_same_poses(parse_poses(heat, tags), ref.reference_parse(heat, tags))





@pytest.mark.parametrize('large', [False, True])
@pytest.mark.parametrize('seed', range(3))
def test_equals_reference_on_odd_shapes_and_joint_counts(seed, large, monkeypatch):
  # Maps down to one pixel, 1 / 2 / 5 / 17 joints, 1-3 tag components, quantised values (ties),
  # caps and thresholds drawn at random; large: 10x10 refine tiles on these small maps.
  from litepose_jax.inference import refine
  if large:
    monkeypatch.setattr(refine, '_LARGE_MAP', 50)
  rng = np.random.default_rng(200 + seed)
  for _ in range(15):
    h, w = (int(v) for v in rng.integers(1, 40, 2))
    j = int(rng.choice([1, 2, 5, 17]))
    heat = rng.random((h, w, j)).astype(np.float32)
    if rng.random() < 0.5:
      heat = (np.round(heat * 5) / 5).astype(np.float32)
    tags = rng.normal(0, 1.5, (h, w, j, int(rng.integers(1, 4)))).astype(np.float32)
    kw = dict(max_people=int(rng.integers(1, min(40, h * w) + 1)),
              detection_threshold=float(rng.choice([0.1, 0.5, 0.9])))
    fx.assert_same_poses(parse_poses(heat, tags, **kw), ref.reference_parse(heat, tags, **kw))
