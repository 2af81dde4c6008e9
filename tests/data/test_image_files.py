"""read_rgb / decode_rgb: channel order, EXIF orientation and the error that names the source."""
import cv2
import numpy as np
import pytest

from litepose_jax.data import image_files


def test_read_rgb_returns_rgb(tmp_path):
  bgr = np.zeros((4, 6, 3), np.uint8)
  bgr[..., 0] = 255  # blue in OpenCV's BGR order
  path = str(tmp_path / 'blue.png')
  cv2.imwrite(path, bgr)
  rgb = image_files.read_rgb(path)
  assert rgb.shape == (4, 6, 3) and (rgb[..., 2] == 255).all() and (rgb[..., 0] == 0).all()


def test_read_rgb_names_the_argument(tmp_path):
  with pytest.raises(FileNotFoundError, match='cannot read --image .*missing.jpg'):
    image_files.read_rgb(str(tmp_path / 'missing.jpg'), '--image')


def test_undecodable_file_names_the_argument(tmp_path):
  path = tmp_path / 'broken.jpg'
  path.write_bytes(b'not a jpeg')
  with pytest.raises(FileNotFoundError, match='cannot read --image .*broken.jpg.*decode'):
    image_files.read_rgb(str(path), '--image')
  assert image_files.decode_rgb(b'not a jpeg') is None


def test_rgb_decode_equals_opencv_bgr_decode_swapped(tmp_path):
  rng = np.random.default_rng(0)
  bgr = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
  ok, jpg = cv2.imencode('.jpg', bgr)
  assert ok
  want = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
  np.testing.assert_array_equal(image_files.decode_rgb(jpg.tobytes()), want)
  np.testing.assert_array_equal(image_files.decode_rgb(jpg.tobytes(), ignore_orientation=True), want)


def _with_exif_orientation(jpg: bytes, orientation: int) -> bytes:
  """The JPEG with an APP1 Exif segment holding only the orientation tag (0x0112)."""
  tiff = (b'MM\x00\x2a\x00\x00\x00\x08' + b'\x00\x01' +
          b'\x01\x12\x00\x03\x00\x00\x00\x01' + orientation.to_bytes(2, 'big') + b'\x00\x00' +
          b'\x00\x00\x00\x00')
  body = b'Exif\x00\x00' + tiff
  return jpg[:2] + b'\xff\xe1' + (len(body) + 2).to_bytes(2, 'big') + body + jpg[2:]


def test_data_set_images_ignore_exif_rotation(tmp_path):
  # Annotations refer to the stored pixel grid (official loaders: IMREAD_IGNORE_ORIENTATION).
  bgr = np.zeros((32, 48, 3), np.uint8)
  bgr[:8, :8] = 255
  ok, jpg = cv2.imencode('.jpg', bgr)
  rotated = _with_exif_orientation(jpg.tobytes(), 6)  # "rotate 90 degrees clockwise to view"
  assert image_files.decode_rgb(rotated, ignore_orientation=True).shape == (32, 48, 3)
  assert image_files.decode_rgb(rotated).shape == (48, 32, 3)  # photos for predict are turned upright
