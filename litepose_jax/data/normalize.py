"""Image normalisation shared by training, inference and export: ImageNet mean / std on RGB.

The training pipeline ships uint8 RGB batches (4x less host work and host->device traffic) and the
train step normalises on the device; inference and export normalise with the same constants, the
official ToTensor + Normalize: (x / 255 - mean) / std.
"""
from __future__ import annotations

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def uint8_constants() -> tuple[np.ndarray, np.ndarray]:
  """(mean [3], inv_std [3]) float32 for 0-255 pixels: normalised = (x - mean) * inv_std."""
  return (np.array([m * 255.0 for m in MEAN], np.float32),
          np.array([1.0 / (s * 255.0) for s in STD], np.float32))


def normalize_images(images, xp=np):
  """uint8 RGB [..., 3] -> ImageNet-normalised float32 (xp = numpy or jax.numpy)."""
  mean, inv_std = (xp.asarray(v) for v in uint8_constants())
  return (images.astype(xp.float32) - mean) * inv_std


def model_input(images, xp=np):
  """Batch images as the network takes them: uint8 RGB is normalised, floats pass unchanged."""
  return normalize_images(images, xp) if images.dtype == np.uint8 else images


def to_uint8(images) -> np.ndarray:
  """Model-input images (uint8 RGB, or normalised float) [..., 3] -> uint8 RGB for drawing."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  rgb = images.astype(np.float32) * np.float32(STD) + np.float32(MEAN)
  return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
