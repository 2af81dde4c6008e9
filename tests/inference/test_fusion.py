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


def _official_flip_pair(out4, out2, out4_flip, out2_flip, flip_index):
  """The official fusion: fuse each pass (torch resize), unflip the mirror, average / stack."""
  def fuse(o4, o2):
    up = _torch_resize(o4, o2.shape[:2])
    return (up[..., :14] + o2) / 2, up[..., 14:, None]
  h, t = fuse(out4, out2)
  hf, tf = fuse(out4_flip, out2_flip)
  idx = list(flip_index)
  hf, tf = hf[:, ::-1][:, :, idx], tf[:, ::-1][:, :, idx]
  return (h + hf) / 2, np.concatenate([t, tf], -1)


def test_unflip_is_mirror_then_channel_permutation():
  x = np.random.default_rng(5).normal(size=(6, 9, 14)).astype(np.float32)
  perm = list(CROWDPOSE.flip_index)
  np.testing.assert_array_equal(fusion.unflip(x, perm), x[:, ::-1][..., perm])
  with pytest.raises(ValueError, match='14'):
    fusion.unflip(x, perm[:3])


def test_fuse_flip_pair_is_official_flip_aggregate():
  rng = np.random.default_rng(6)
  outs = [rng.normal(size=s).astype(np.float32) for s in [(8, 12, 28), (16, 24, 14)] * 2]
  heat, tags = fusion.fuse_flip_pair(*outs, 14, CROWDPOSE.flip_index)
  want_h, want_t = _official_flip_pair(*outs, CROWDPOSE.flip_index)
  assert heat.shape == (16, 24, 14) and tags.shape == (16, 24, 14, 2)
  np.testing.assert_allclose(heat, want_h, atol=1e-6)
  np.testing.assert_allclose(tags, want_t, atol=1e-6)


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
    if flip:
      h, t = fusion.fuse_flip_pair(out4[i], out2[i], out4[n + i], out2[n + i], 14, fi)
    else:
      h, t = fusion.fuse_stages(out4[i], out2[i], 14)
    np.testing.assert_allclose(heat[i], h, atol=1e-5)
    np.testing.assert_allclose(tags[i], t, atol=1e-5)
  assert tags.shape[-1] == (2 if flip else 1)


def test_flip_of_a_mirrored_scene_changes_nothing():
  rng = np.random.default_rng(3)
  out4 = rng.random((8, 10, 28)).astype(np.float32)
  out2 = rng.random((16, 20, 14)).astype(np.float32)
  # What a perfectly flip-equivariant network returns for the mirrored image:
  idx = list(CROWDPOSE.flip_index)
  f4 = out4[:, ::-1][..., idx + [14 + i for i in idx]]
  f2 = out2[:, ::-1][..., idx]
  heat, tags = fusion.fuse_stages(out4, out2, 14)
  h2, t2 = fusion.fuse_flip_pair(out4, out2, f4, f2, 14, idx)
  np.testing.assert_allclose(h2, heat, atol=1e-7)
  np.testing.assert_array_equal(t2, np.concatenate([tags, tags], -1))


def test_aggregate_scales_averages_heatmaps_and_keeps_scale_one_tags():
  rng = np.random.default_rng(4)
  h1, h2 = rng.random((16, 24, 3)).astype(np.float32), rng.random((8, 12, 3)).astype(np.float32)
  t1, t2 = rng.random((16, 24, 3, 1)).astype(np.float32), rng.random((8, 12, 3, 1)).astype(np.float32)
  heat, tags = fusion.aggregate_scales([1.0, 0.5], [h1, h2], [t1, t2], (32, 48), fast=False)
  want = (fusion.resize_bilinear(h1, (32, 48)) + fusion.resize_bilinear(h2, (32, 48))) / 2
  np.testing.assert_allclose(heat, want, atol=1e-6)
  assert tags is t1  # returned at its own resolution; the parser resizes it lazily
