"""Input sizes of training steps: one fixed size, or one drawn per global step (super-net).

A pure function of (seed, step), so that every host, the fake stream and a resumed run agree on
the size of every step without talking to each other. Kept free of OpenCV / TensorFlow imports
(fake-data runs use it).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from litepose_jax.errors import UserError


def input_sizes(cfg) -> tuple[int, ...]:
  """The sizes a stream draws from: data.input_sizes if set, else (data.input_size,)."""
  sizes = tuple(int(s) for s in (cfg.input_sizes or (cfg.input_size,)))
  for s in sizes:
    if s <= 0 or s % 16:
      raise UserError(f'data.input_size(s): input size {s} must be a positive multiple of 16 '
                      '(backbone stride 16)')
  return sizes


def step_input_size(seed: int, step: int, sizes: Sequence[int]) -> int:
  """Input size of global step `step`: uniform over `sizes`, stateless in (seed, step)."""
  if len(sizes) == 1:
    return int(sizes[0])
  rng = np.random.default_rng([seed, 7919, step])
  return int(sizes[int(rng.integers(len(sizes)))])
