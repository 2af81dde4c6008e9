"""Inference: decoding network maps into people, the image -> people Predictor (JAX or LiteRT
backend), drawing.

`parse_poses(heatmaps [H, W, J], tags [H, W, J, T])` -> (poses [N, J, 3], scores [N]).
`Predictor.from_path(checkpoint_or_tflite)` -> callable on images returning people in image pixels.
"""
from litepose_jax.inference.parser import parse_poses

__all__ = ['Predictor', 'parse_poses']


def __getattr__(name):
  # The Predictor pulls in JAX and the model code; keep `parse_poses` importable without them.
  if name == 'Predictor':
    from litepose_jax.inference.predictor import Predictor
    return Predictor
  raise AttributeError(name)
