"""TagMaps: tags read at heatmap pixels equal the bilinearly resized maps."""
import numpy as np

from litepose_jax.inference.fusion import resize_bilinear
from litepose_jax.inference.tags import TagMaps


def test_low_resolution_tags_read_like_resized_maps():
  rng = np.random.default_rng(3)
  small = rng.normal(0, 2, (16, 24, 14, 2)).astype(np.float32)
  full = resize_bilinear(small.reshape(16, 24, -1), (32, 48)).reshape(32, 48, 14, 2)
  tm = TagMaps(small, 32, 48)
  pix = np.arange(32 * 48)
  for joint in (0, 3, 13):
    np.testing.assert_array_equal(tm.at(pix, joint), full.reshape(-1, 14, 2)[:, joint])
  # Same resolution: the stored vectors themselves, for per-pixel joints too.
  same = TagMaps(full, 32, 48)
  joints = rng.integers(0, 14, pix.size)
  np.testing.assert_array_equal(same.at(pix, joints), full.reshape(-1, 14, 2)[pix, joints])


def test_bad_tag_shape_raises():
  import pytest
  with pytest.raises(ValueError, match='tags must have shape'):
    TagMaps(np.zeros((4, 4)), 4, 4)
