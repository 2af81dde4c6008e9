"""read_rgb: channel order and the error that names the source."""
import cv2
import numpy as np
import pytest

from litepose_jax.inference import transforms


def test_read_rgb_returns_rgb(tmp_path):
  bgr = np.zeros((4, 6, 3), np.uint8)
  bgr[..., 0] = 255  # blue in OpenCV's BGR order
  path = str(tmp_path / 'blue.png')
  cv2.imwrite(path, bgr)
  rgb = transforms.read_rgb(path)
  assert rgb.shape == (4, 6, 3) and (rgb[..., 2] == 255).all() and (rgb[..., 0] == 0).all()


def test_read_rgb_names_the_argument(tmp_path):
  with pytest.raises(FileNotFoundError, match='cannot read --image .*missing.jpg'):
    transforms.read_rgb(str(tmp_path / 'missing.jpg'), '--image')
