"""Resizing images for the network and mapping keypoints back (official lib/utils/transforms.py,
get_multi_scale_size / resize_align_multi_scale / get_final_preds; docs/OFFICIAL.md, "Inference
and grouping").

The official code builds every map with get_affine_transform(centre, scale, 0, size); without
rotation that is the isotropic similarity x_out = (x - cx) * k + W_out / 2 (same for y with H_out),
k = W_out / (200 * scale_w), which is all we implement.
"""
from __future__ import annotations

import cv2
import numpy as np


def multi_scale_size(height: int, width: int, input_size: int, current_scale: float = 1.0,
                     min_scale: float = 1.0):
  """Official get_multi_scale_size -> ((w_resized, h_resized), centre [2], scale [2]).

  The short side becomes input_size (at min_scale: rounded up to a multiple of 64, then scaled by
  current_scale / min_scale); the long side keeps the aspect ratio, rounded up to a multiple of 64.
  """
  if height <= 0 or width <= 0:
    raise ValueError(f'image must be non-empty, got {height}x{width}')
  center = np.array([int(width / 2.0 + 0.5), int(height / 2.0 + 0.5)], np.float64)
  min_input = int((min_scale * input_size + 63) // 64 * 64)
  if width < height:
    w_res = int(min_input * current_scale / min_scale)
    h_res = int(int((min_input / width * height + 63) // 64 * 64) * current_scale / min_scale)
    scale_w = width / 200.0
    scale_h = h_res / w_res * width / 200.0
  else:
    h_res = int(min_input * current_scale / min_scale)
    w_res = int(int((min_input / height * width + 63) // 64 * 64) * current_scale / min_scale)
    scale_h = height / 200.0
    scale_w = w_res / h_res * height / 200.0
  return (w_res, h_res), center, np.array([scale_w, scale_h], np.float64)


def affine_matrix(center, scale, output_size, inverse: bool = False) -> np.ndarray:
  """2x3 matrix of get_affine_transform(centre, scale, 0, output_size) (or its inverse)."""
  out_w, out_h = output_size
  k = out_w / (float(scale[0]) * 200.0)
  cx, cy = float(center[0]), float(center[1])
  if not inverse:
    return np.array([[k, 0, out_w / 2.0 - cx * k], [0, k, out_h / 2.0 - cy * k]], np.float64)
  return np.array([[1 / k, 0, cx - out_w / 2.0 / k], [0, 1 / k, cy - out_h / 2.0 / k]], np.float64)


def resize_image(image: np.ndarray, input_size: int, current_scale: float = 1.0,
                 min_scale: float = 1.0):
  """Official resize_align_multi_scale -> (resized [h, w, 3], centre, scale)."""
  size, center, scale = multi_scale_size(image.shape[0], image.shape[1], input_size, current_scale,
                                         min_scale)
  m = affine_matrix(center, scale, size)
  return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR), center, scale


def fit_image(image: np.ndarray, size: tuple[int, int]):
  """Fixed-size network input: image [H, W, 3] -> (fitted [h, w, 3], centre, scale), size (h, w).

  The whole image is scaled to fit (aspect ratio kept), centred, with black borders: the same
  similarity map (centre, scale) as resize_image, so to_image_coords maps keypoints back.
  """
  fh, fw = size
  h, w = image.shape[:2]
  if h <= 0 or w <= 0:
    raise ValueError(f'image must be non-empty, got {h}x{w}')
  k = min(fw / w, fh / h)
  center = np.array([w / 2.0, h / 2.0])
  scale = np.array([fw / k / 200.0, fh / k / 200.0])
  m = affine_matrix(center, scale, (fw, fh))
  return cv2.warpAffine(image, m, (fw, fh), flags=cv2.INTER_LINEAR), center, scale


def to_image_coords(poses: np.ndarray, center, scale, map_size) -> np.ndarray:
  """poses [N, J, >=2] in map pixels of map_size (w, h) -> same array with x, y in the image."""
  out = np.array(poses, np.float64, copy=True)
  m = affine_matrix(center, scale, map_size, inverse=True)
  xy = out[..., :2]
  out[..., 0] = xy[..., 0] * m[0, 0] + m[0, 2]
  out[..., 1] = xy[..., 1] * m[1, 1] + m[1, 2]
  return out
