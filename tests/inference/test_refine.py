"""refine (branch and bound for missing joints): equal to the literal reference's dense argmax."""
import numpy as np
import pytest

import decode_fixtures as fx
import official_parser_reference as ref
from litepose_jax.inference import refine
from litepose_jax.inference.parser import parse_poses
from litepose_jax.inference.tags import TagMaps


@pytest.mark.parametrize('tag_dim', [1, 2])
@pytest.mark.parametrize('large', [False, True])
def test_refine_equals_reference_with_many_missing_joints(tag_dim, large, monkeypatch):
  # 30 people (the grouping cap) with 30% of the joints missing: refine fills hundreds of pairs.
  # large: 10x10 tiles (2x2 NMS tiles) as on input-resolution maps; odd sizes give edge tiles.
  # Small pixel chunks: the pairs are scored in several passes.
  if large:
    monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  monkeypatch.setattr(refine, '_CHUNK_PIXELS', 3000)
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


@pytest.mark.parametrize('gather', [False, True])
@pytest.mark.parametrize('low_res', [False, True])
def test_gathered_tag_boxes_equal_whole_map_boxes(gather, low_res, monkeypatch):
  # Tag boxes built per (joint, tile) from gathered pixels, or by whole-map passes: same bounds,
  # same answer; edge tiles (odd sizes) and low-resolution tags (varying source extents) included.
  monkeypatch.setattr(refine, '_GATHER_COST', 0 if gather else 10 ** 9)
  monkeypatch.setattr(refine, '_LARGE_MAP', 1000)
  rng = np.random.default_rng(70 + low_res)
  heat_small, small = fx.people_maps(rng, 12, (35, 51), 0.3, 2)
  if not low_res:
    fx.assert_same_poses(parse_poses(heat_small, small), ref.reference_parse(heat_small, small))
    return
  from litepose_jax.inference.fusion import resize_bilinear
  heat = resize_bilinear(heat_small, (70, 102))
  full = resize_bilinear(small.reshape(35, 51, -1), (70, 102)).reshape(70, 102, 14, 2)
  fx.assert_same_poses(parse_poses(heat, small), ref.reference_parse(heat, full))


@pytest.mark.parametrize('gather', [False, True])
def test_tag_boxes_hold_every_tile_tag(gather, monkeypatch):
  # The box of each (joint, tile), gathered or from whole-map passes, is the min/max over the
  # tile's pixels (edge tiles: those inside the map).
  monkeypatch.setattr(refine, '_GATHER_COST', 0 if gather else 10 ** 9)
  rng = np.random.default_rng(80)
  heat = rng.random((23, 31, 3)).astype(np.float32)
  tags = rng.normal(0, 1, (23, 31, 3, 2)).astype(np.float32)
  tiles = refine._Tiles(heat, TagMaps(tags, 23, 31))
  ntiles = tiles.ny * tiles.nx
  tiles.ensure_boxes(np.arange(3), np.broadcast_to(np.arange(ntiles), (3, ntiles)))
  assert tiles.known.all() if gather else tiles.all_known
  for t in range(ntiles):
    ty, tx = divmod(t, tiles.nx)
    block = tags[ty * tiles.size:(ty + 1) * tiles.size, tx * tiles.size:(tx + 1) * tiles.size]
    np.testing.assert_array_equal(tiles.tag_lo[:, :, t], block.min(axis=(0, 1)))
    np.testing.assert_array_equal(tiles.tag_hi[:, :, t], block.max(axis=(0, 1)))
