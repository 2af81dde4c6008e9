"""Stage fusion, flip aggregation and resizing against torch (the official arithmetic) and JAX."""
import numpy as np
import pytest
import torch

from litepose_jax.inference import fusion
from litepose_jax.joints import CROWDPOSE


def _torch_resize(x, size):
  t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
  out = torch.nn.functional.interpolate(t, size=size, mode='bilinear', align_corners=False)
  return out[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize('src,dst', [((7, 9), (14, 18)), ((16, 24), (32, 48)), ((10, 12), (23, 17)),
                                     ((12, 16), (6, 8))])
def test_resize_matches_torch_interpolate(src, dst):
  x = np.random.default_rng(0).normal(size=(*src, 5)).astype(np.float32)
  # Exact for the 2x ratios LitePose uses; float rounding of the scale otherwise.
  np.testing.assert_allclose(fusion.resize_bilinear(x, dst), _torch_resize(x, dst), atol=1e-5)
  if dst[0] >= src[0]:  # OpenCV's fast path agrees when upsampling
    np.testing.assert_allclose(fusion.resize_fast(x, dst), _torch_resize(x, dst), atol=1e-5)


def test_fuse_stages_is_official_average():
  rng = np.random.default_rng(1)
  out4 = rng.normal(size=(8, 12, 28)).astype(np.float32)
  out2 = rng.normal(size=(16, 24, 14)).astype(np.float32)
  heat, tags = fusion.fuse_stages(out4, out2, 14)
  up = _torch_resize(out4, (16, 24))
  np.testing.assert_allclose(heat, (up[..., :14] + out2) / 2, atol=1e-6)
  np.testing.assert_allclose(tags[..., 0], up[..., 14:], atol=1e-6)


@pytest.mark.parametrize('flip', [False, True])
def test_jax_fusion_equals_numpy(flip):
  rng = np.random.default_rng(2)
  b = 2 if flip else 1
  out4 = rng.normal(size=(2 * b if flip else b, 8, 12, 28)).astype(np.float32)
  out4 = out4[:b * (2 if flip else 1)]
  out2 = rng.normal(size=(out4.shape[0], 16, 24, 14)).astype(np.float32)
  fi = CROWDPOSE.flip_index if flip else None
  heat, tags = (np.asarray(a) for a in fusion.fuse_outputs_jax(out4, out2, 14, fi))
  n = out4.shape[0] // (2 if flip else 1)
  for i in range(n):
    h, t = fusion.fuse_stages(out4[i], out2[i], 14)
    if flip:
      hf, tf = fusion.fuse_stages(out4[n + i], out2[n + i], 14)
      h, t = fusion.combine_flip(h, t, hf, tf, fi)
    np.testing.assert_allclose(heat[i], h, atol=1e-5)
    np.testing.assert_allclose(tags[i], t, atol=1e-5)
  assert tags.shape[-1] == (2 if flip else 1)


def test_flip_of_a_mirrored_scene_changes_nothing():
  rng = np.random.default_rng(3)
  heat = rng.random((8, 10, 14)).astype(np.float32)
  tags = rng.random((8, 10, 14, 1)).astype(np.float32)
  # What a perfectly flip-equivariant network returns for the mirrored image:
  hf, tf = heat[:, ::-1][..., list(CROWDPOSE.flip_index)], tags[:, ::-1][:, :, list(CROWDPOSE.flip_index)]
  h2, t2 = fusion.combine_flip(heat, tags, hf, tf, CROWDPOSE.flip_index)
  np.testing.assert_allclose(h2, heat, atol=1e-7)
  np.testing.assert_allclose(t2, np.concatenate([tags, tags], -1))


def test_aggregate_scales_averages_heatmaps_and_keeps_scale_one_tags():
  rng = np.random.default_rng(4)
  h1, h2 = rng.random((16, 24, 3)).astype(np.float32), rng.random((8, 12, 3)).astype(np.float32)
  t1, t2 = rng.random((16, 24, 3, 1)).astype(np.float32), rng.random((8, 12, 3, 1)).astype(np.float32)
  heat, tags = fusion.aggregate_scales([1.0, 0.5], [h1, h2], [t1, t2], (32, 48), fast=False)
  want = (fusion.resize_bilinear(h1, (32, 48)) + fusion.resize_bilinear(h2, (32, 48))) / 2
  np.testing.assert_allclose(heat, want, atol=1e-6)
  assert tags is t1  # returned at its own resolution; the parser resizes it lazily
