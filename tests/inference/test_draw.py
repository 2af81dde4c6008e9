"""Skeleton drawing: legible pictures of small images, weak people left out."""
import numpy as np
import pytest

from litepose_jax.inference import draw
from litepose_jax.inference.draw import draw_poses
from litepose_jax.joints import CROWDPOSE


def test_draw_poses_changes_pixels():
  img = np.zeros((64, 64, 3), np.uint8)
  pose = np.zeros((1, 14, 3), np.float32)
  pose[0, :, 0] = np.linspace(10, 50, 14)
  pose[0, :, 1] = 30
  pose[0, :, 2] = 1
  out = draw_poses(img, pose, CROWDPOSE, scores=np.array([0.9]))
  assert out.shape == img.shape and out.any() and not img.any()
  with pytest.raises(ValueError, match='poses'):
    draw_poses(img, np.zeros((1, 17, 3)), CROWDPOSE)


def _person(x0, y0, value=1.0):
  pose = np.zeros((14, 3), np.float32)
  pose[:, 0] = np.linspace(x0, x0 + 40, 14)
  pose[:, 1] = y0 + np.arange(14) % 3
  pose[:, 2] = value
  return pose


def test_small_images_are_upscaled_with_their_keypoints():
  img = np.zeros((96, 128, 3), np.uint8)
  img[40, 100] = 255
  pose = np.zeros((1, 14, 3), np.float32)
  pose[0, 0] = (100, 40, 1)
  big, moved = draw.upscale(img, pose, 512)
  assert big.shape == (384, 512, 3) and pose[0, 0, 0] == 100  # the input is not changed
  y, x = np.unravel_index(np.argmax(big[..., 0]), big.shape[:2])
  assert abs(moved[0, 0, 0] - x) <= 1 and abs(moved[0, 0, 1] - y) <= 1
  same, unmoved = draw.upscale(np.zeros((480, 640, 3), np.uint8), pose, 512)
  assert same.shape == (480, 640, 3) and np.array_equal(unmoved, pose)


def test_people_below_the_person_score_are_not_drawn():
  img = np.full((96, 128, 3), 90, np.uint8)
  strong, weak = _person(10, 20), _person(60, 50, 0.5)
  both = draw.draw_prediction(img, np.stack([strong, weak]), np.array([0.6, 0.02]), CROWDPOSE)
  alone = draw.draw_prediction(img, strong[None], np.array([0.6]), CROWDPOSE)
  assert both.shape == (384, 512, 3)
  np.testing.assert_array_equal(both, alone)
  every = draw.draw_prediction(img, np.stack([strong, weak]), np.array([0.6, 0.02]), CROWDPOSE,
                               min_score=0.0)
  assert (every != alone).any()
  assert draw.MIN_PERSON_SCORE == 0.2


def test_labels_of_people_with_the_same_head_do_not_overlap():
  img = np.zeros((128, 128, 3), np.uint8)
  taken = []
  first = draw._label_origin(img, (20, 30), (40, 10), taken)
  second = draw._label_origin(img, (25, 30), (40, 10), taken)
  assert first == (20, 30) and second[0] == 25 and second[1] >= first[1] + 10 + 2
  (a0, a1, a2, a3), (b0, b1, b2, b3) = taken
  assert not (b1 < a3 and a1 < b3)  # the boxes do not intersect
  apart = draw._label_origin(img, (90, 30), (20, 10), taken)
  assert apart == (90, 30)  # nothing to avoid there
