"""refine (branch and bound for missing joints): equal to the literal reference's dense argmax."""
import numpy as np
import pytest

from litepose_jax.inference import refine
from litepose_jax.inference.parser import parse_poses
from litepose_jax.inference.tags import TagMaps
from litepose_jax.reference import official_parser as ref
from tests.inference import decode_fixtures as fx


@pytest.mark.parametrize('tag_dim', [1, 2, 3])
@pytest.mark.parametrize('large', [False, True])
def test_refine_equals_reference_with_many_missing_joints(tag_dim, large, monkeypatch):
  # 30 people (the grouping cap) with 30% of the joints missing: refine fills hundreds of pairs.
  # large: 10x10 tiles (2x2 NMS tiles) as on input-resolution maps; odd sizes give edge tiles.
  # tag_dim 3: the general norm (flip and multi-scale stack tag components).
  if large:
    monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(40 + tag_dim)
  heat, tags = fx.people_maps(rng, 30, (67, 103), 0.3, tag_dim)
  fast = parse_poses(heat, tags)
  fx.assert_same_poses(fast, ref.reference_parse(heat, tags))
  assert (fast[0][..., 2] > 0).sum() > (heat.max(axis=(0, 1)) > 0.1).sum()  # refine filled joints


@pytest.mark.parametrize('large', [False, True])
def test_refine_keeps_first_pixel_among_equal_scores(large, monkeypatch):
  # Quantised maps: many pixels share the best score; np.argmax keeps the first in row-major order.
  if large:
    monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(7)
  heat, tags = fx.people_maps(rng, 8, (41, 57), 0.4)
  # Below the detection threshold only (plateaus of peaks would change the grouping itself).
  heat = np.where(heat < 0.08, np.round(heat * 50) / 50, heat).astype(np.float32)
  fx.assert_same_poses(parse_poses(heat, tags), ref.reference_parse(heat, tags))


@pytest.mark.parametrize('tag_dim', [1, 2])
def test_refine_with_low_resolution_tags_equals_resized_tags(tag_dim, monkeypatch):
  # Tags at stride 2 read through TagMaps (bilinear at the read pixels) on a map with 10x10 tiles:
  # the tag boxes come from the source pixels each tile reads.
  monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(50 + tag_dim)
  heat_small, small = fx.people_maps(rng, 20, (36, 52), 0.3, tag_dim)
  from litepose_jax.inference.fusion import resize_bilinear
  heat = resize_bilinear(heat_small, (72, 104))
  full = resize_bilinear(small.reshape(36, 52, -1), (72, 104)).reshape(72, 104, 14, tag_dim)
  lazy = parse_poses(heat, small)
  fx.assert_same_poses(lazy, parse_poses(heat, full))
  fx.assert_same_poses(lazy, ref.reference_parse(heat, full))


@pytest.mark.parametrize('low_res', [False, True])
def test_refine_on_flat_noise_scores_every_tile(low_res, monkeypatch):
  # Heatmaps of pure noise far below the threshold and tags near every mean: no tile can be
  # dismissed by its bounds, so each pair sweeps the whole map (the worst case) and still returns
  # the dense argmax; low-resolution tags take the bilinear reads and source-pixel boxes.
  monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(90 + low_res)
  heat_small, small = fx.people_maps(rng, 6, (35, 51), 0.5, 2)
  small = small * np.float32(0.05)
  if low_res:
    from litepose_jax.inference.fusion import resize_bilinear
    heat = resize_bilinear(heat_small, (70, 102))
    full = resize_bilinear(small.reshape(35, 51, -1), (70, 102)).reshape(70, 102, 14, 2)
  else:
    heat, full = heat_small, small
  heat = np.where(heat > 0.1, heat, rng.uniform(0, 0.02, heat.shape)).astype(np.float32)
  fx.assert_same_poses(parse_poses(heat, small), ref.reference_parse(heat, full))


def test_refine_pairs_equal_dense_argmax():
  # Persons with one or several detected joints; every missing pair gets the dense argmax of
  # heatmap - round(||tag - mean||) over its joint's map (tile maxima computed by refine itself).
  rng = np.random.default_rng(81)
  heat = rng.random((23, 31, 3)).astype(np.float32)
  tags = rng.normal(0, 1, (23, 31, 3, 2)).astype(np.float32)
  person_pix = np.array([[40, -1, 300], [-1, 7, -1]])
  qp, qj, best = refine.refine(person_pix, heat, TagMaps(tags, 23, 31))
  np.testing.assert_array_equal(qp, [0, 1, 1])
  np.testing.assert_array_equal(qj, [1, 0, 2])
  for p, j, b in zip(qp, qj, best):
    fj = np.flatnonzero(person_pix[p] >= 0)
    mean = tags.reshape(-1, 3, 2)[person_pix[p, fj], fj].mean(axis=0)
    score = heat[..., j] - np.round(np.sqrt(((tags[:, :, j] - mean) ** 2).sum(axis=-1)))
    assert b == np.argmax(score)


@pytest.mark.parametrize('large', [False, True])
def test_tile_maxima_are_the_maxima_of_every_tile(large, monkeypatch):
  # Edge tiles (23 x 31 is not a multiple of 5 or 10) hold only the pixels inside the map.
  if large:
    monkeypatch.setattr(refine, '_LARGE_MAP', 100)
  rng = np.random.default_rng(80)
  heat = rng.random((23, 31, 3)).astype(np.float32)
  size, hmax = refine.tile_maxima(heat)
  assert size == (10 if large else 5)
  nx = -(-31 // size)
  assert hmax.shape == (3, -(-23 // size) * nx)
  for t in range(hmax.shape[1]):
    ty, tx = divmod(t, nx)
    block = heat[ty * size:(ty + 1) * size, tx * size:(tx + 1) * size]
    np.testing.assert_array_equal(hmax[:, t], block.max(axis=(0, 1)))
