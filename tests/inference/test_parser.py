"""parse_poses: known people from ground-truth-like maps, and equality with the literal reference."""
import numpy as np
import pytest

import decode_fixtures as fx
import official_parser_reference as ref
from litepose_jax.inference import parser
from litepose_jax.inference.parser import parse_poses


def _assert_same(fast, slow):
  (p1, s1), (p2, s2) = fast, slow
  assert p1.shape == p2.shape
  np.testing.assert_allclose(p1, p2, atol=1e-4)
  np.testing.assert_allclose(s1, s2, atol=1e-5)


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


def _smooth_random(rng, shape, scale):
  import cv2
  x = rng.random(shape).astype(np.float32)
  return np.stack([cv2.GaussianBlur(x[..., c], (0, 0), scale) for c in range(shape[-1])], -1)


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('tag_dim', [1, 2])
def test_equals_reference_on_random_maps(seed, tag_dim):
  rng = np.random.default_rng(seed)
  h, w, j = 24, 40, 14
  heat = _smooth_random(rng, (h, w, j), 1.0) * 3 - 1.2
  tags = rng.normal(0, 2, (h, w, j, tag_dim)).astype(np.float32)
  _assert_same(parse_poses(heat, tags), ref.reference_parse(heat, tags))
  _assert_same(parse_poses(heat, tags, max_people=5, tag_threshold=2.0),
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
  _assert_same(fast, ref.reference_parse(heat, tags))
  # Every visible true joint is found where it was rendered.
  idx = fx.match_people(fast[0], people)
  vis = people[..., 2] > 0
  err = np.abs(fast[0][idx, :, :2] - people[..., :2]).max(-1)
  assert (err[vis] < 0.5 + 1e-6).all()


def test_low_resolution_tags_equal_resized_tags():
  rng = np.random.default_rng(3)
  heat = _smooth_random(rng, (32, 48, 14), 1.0) * 3 - 1.2
  small = rng.normal(0, 2, (16, 24, 14, 2)).astype(np.float32)
  from litepose_jax.inference.fusion import resize_bilinear
  full = resize_bilinear(small.reshape(16, 24, -1), (32, 48)).reshape(32, 48, 14, 2)
  _assert_same(parse_poses(heat, small), parse_poses(heat, full))
  tm = parser.TagMaps(small, 32, 48)
  pix = np.arange(32 * 48)
  np.testing.assert_allclose(tm.at(pix, 3), full.reshape(-1, 14, 2)[:, 3], atol=1e-6)


@pytest.mark.parametrize('tag_dim', [1, 2])
def test_equals_reference_on_larger_random_maps(tag_dim):
  # More 4x4 blocks than refine probes exactly first: exercises the pruning bound.
  rng = np.random.default_rng(20 + tag_dim)
  heat = _smooth_random(rng, (48, 72, 14), 1.5) * 3 - 1.2
  tags = rng.normal(0, 2, (48, 72, 14, tag_dim)).astype(np.float32)
  _assert_same(parse_poses(heat, tags), ref.reference_parse(heat, tags))


def _people_maps(rng, num_people, size, missing, tag_dim=1, noise=0.02):
  """Clustered people with `missing` of the joints invisible; flip-like tags repeat the value."""
  people = fx.clustered_people(rng, num_people, 14, size, spread=12)
  people[..., 2] = rng.random(people.shape[:2]) >= missing
  heat, tags = fx.render_maps(people, size)
  heat = heat + rng.normal(0, noise, heat.shape).astype(np.float32)
  tags = np.repeat(tags, tag_dim, axis=-1)
  tags = tags + rng.normal(0, 0.1, tags.shape).astype(np.float32)
  return heat, tags


@pytest.mark.parametrize('tag_dim', [1, 2])
@pytest.mark.parametrize('large', [False, True])
def test_refine_equals_reference_with_many_missing_joints(tag_dim, large, monkeypatch):
  # 30 people (the grouping cap) with 30% of the joints missing: refine fills hundreds of pairs.
  # large: 10x10 tiles (2x2 NMS tiles) as on input-resolution maps; odd sizes give edge tiles.
  # Small pixel chunks: the pairs are scored in several passes.
  if large:
    monkeypatch.setattr(parser, '_LARGE_MAP', 1000)
  monkeypatch.setattr(parser, '_CHUNK_PIXELS', 3000)
  rng = np.random.default_rng(40 + tag_dim)
  heat, tags = _people_maps(rng, 30, (67, 103), 0.3, tag_dim)
  fast = parse_poses(heat, tags)
  _assert_same(fast, ref.reference_parse(heat, tags))
  assert (fast[0][..., 2] > 0).sum() > (heat.max(axis=(0, 1)) > 0.1).sum()  # refine filled joints


@pytest.mark.parametrize('large', [False, True])
def test_refine_keeps_first_pixel_among_equal_scores(large, monkeypatch):
  # Quantised maps: many pixels share the best score; np.argmax keeps the first in row-major order.
  if large:
    monkeypatch.setattr(parser, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(7)
  heat, tags = _people_maps(rng, 8, (41, 57), 0.4)
  # Below the detection threshold only (plateaus of peaks would change the grouping itself).
  heat = np.where(heat < 0.08, np.round(heat * 50) / 50, heat).astype(np.float32)
  _assert_same(parse_poses(heat, tags), ref.reference_parse(heat, tags))


@pytest.mark.parametrize('tag_dim', [1, 2])
def test_refine_with_low_resolution_tags_equals_resized_tags(tag_dim, monkeypatch):
  # Tags at stride 2 read through TagMaps (bilinear at the read pixels) on a map with 10x10 tiles:
  # the tag boxes come from the source pixels each tile reads.
  monkeypatch.setattr(parser, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(50 + tag_dim)
  heat_small, small = _people_maps(rng, 20, (36, 52), 0.3, tag_dim)
  from litepose_jax.inference.fusion import resize_bilinear
  heat = resize_bilinear(heat_small, (72, 104))
  full = resize_bilinear(small.reshape(36, 52, -1), (72, 104)).reshape(72, 104, 14, tag_dim)
  lazy = parse_poses(heat, small)
  _assert_same(lazy, parse_poses(heat, full))
  _assert_same(lazy, ref.reference_parse(heat, full))


@pytest.mark.parametrize('shape', [(1, 1, 2), (1, 7, 3), (4, 3, 2), (9, 13, 5), (30, 41, 3)])
@pytest.mark.parametrize('levels', [3, 20, 0])
def test_sparse_nms_equals_max_filter(shape, levels):
  # Quantised maps (levels > 0) have plateaus and ties between neighbours; the small shapes put
  # every candidate near a border, where the dense filter replicates the edge pixels.
  rng = np.random.default_rng(sum(shape) + levels)
  heat = _smooth_random(rng, shape, 1.0) if min(shape[:2]) > 1 else rng.random(shape)
  heat = heat.astype(np.float32)
  if levels:
    heat = (np.round(heat * levels) / levels).astype(np.float32)
  flat = heat.reshape(-1)
  for threshold in (-1.0, 0.3, np.median(flat)):
    idx = np.flatnonzero(flat > threshold)
    dense = idx[flat[idx] == parser._max_filter5(heat).reshape(-1)[idx]]
    sparse = parser._local_maxima5(flat, *shape, idx)
    np.testing.assert_array_equal(sparse, dense)


@pytest.mark.parametrize('sparse', [False, True])
def test_both_nms_paths_equal_reference(sparse, monkeypatch):
  # Force the neighbour-reading NMS (or the dense filter) whatever the candidate count.
  monkeypatch.setattr(parser, '_SPARSE_NMS', 0 if sparse else 10 ** 9)
  rng = np.random.default_rng(60)
  heat = _smooth_random(rng, (24, 40, 14), 1.0) * 3 - 1.2
  heat = np.where(heat > 0.5, np.round(heat * 10) / 10, heat).astype(np.float32)  # peak plateaus
  tags = rng.normal(0, 2, (24, 40, 14, 1)).astype(np.float32)
  _assert_same(parse_poses(heat, tags), ref.reference_parse(heat, tags))
  heat, tags = _people_maps(rng, 10, (37, 53), 0.3)
  _assert_same(parse_poses(heat, tags), ref.reference_parse(heat, tags))


@pytest.mark.parametrize('gather', [False, True])
@pytest.mark.parametrize('low_res', [False, True])
def test_gathered_tag_boxes_equal_whole_map_boxes(gather, low_res, monkeypatch):
  # Tag boxes built per (joint, tile) from gathered pixels, or by whole-map passes: same bounds,
  # same answer; edge tiles (odd sizes) and low-resolution tags (varying source extents) included.
  monkeypatch.setattr(parser, '_GATHER_COST', 0 if gather else 10 ** 9)
  monkeypatch.setattr(parser, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(70 + low_res)
  heat_small, small = _people_maps(rng, 12, (35, 51), 0.3, 2)
  if not low_res:
    _assert_same(parse_poses(heat_small, small), ref.reference_parse(heat_small, small))
    return
  from litepose_jax.inference.fusion import resize_bilinear
  heat = resize_bilinear(heat_small, (70, 102))
  full = resize_bilinear(small.reshape(35, 51, -1), (70, 102)).reshape(70, 102, 14, 2)
  _assert_same(parse_poses(heat, small), ref.reference_parse(heat, full))


@pytest.mark.parametrize('gather', [False, True])
def test_tag_boxes_hold_every_tile_tag(gather, monkeypatch):
  # The box of each (joint, tile), gathered or from whole-map passes, is the min/max over the
  # tile's pixels (edge tiles: those inside the map).
  monkeypatch.setattr(parser, '_GATHER_COST', 0 if gather else 10 ** 9)
  rng = np.random.default_rng(80)
  heat = rng.random((23, 31, 3)).astype(np.float32)
  tags = rng.normal(0, 1, (23, 31, 3, 2)).astype(np.float32)
  tiles = parser._Tiles(heat, parser.TagMaps(tags, 23, 31), None)
  ntiles = tiles.ny * tiles.nx
  tiles.ensure_boxes(np.arange(3), np.broadcast_to(np.arange(ntiles), (3, ntiles)))
  assert tiles.known.all() if gather else tiles.all_known
  for t in range(ntiles):
    ty, tx = divmod(t, tiles.nx)
    block = tags[ty * tiles.size:(ty + 1) * tiles.size, tx * tiles.size:(tx + 1) * tiles.size]
    np.testing.assert_array_equal(tiles.tag_lo[:, :, t], block.min(axis=(0, 1)))
    np.testing.assert_array_equal(tiles.tag_hi[:, :, t], block.max(axis=(0, 1)))
