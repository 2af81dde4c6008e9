"""Depthwise 2-D convolution with a per-backend implementation.

`depthwise_conv2d(x, kernel, stride, impl)`: x [B, H, W, C], kernel [k, k, 1, C] (HWIO with
feature_group_count=C, the layout of flax.linen.Conv), symmetric padding k//2 (PyTorch style),
returns [B, ceil(H/stride), ceil(W/stride), C].

impl: 'lax' is XLA's grouped convolution (fast on GPU/TPU, very slow on XLA:CPU);
'auto' picks the best implementation for the default backend.
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

IMPLS = ('auto', 'lax')


def default_impl() -> str:
  """The implementation 'auto' resolves to on the current default backend."""
  return 'lax'


def _lax_depthwise(x, kernel, stride):
  k = kernel.shape[0]
  p = k // 2
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=((p, p), (p, p)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=x.shape[-1])


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1,
                     impl: str = 'auto') -> jax.Array:
  """Depthwise conv, symmetric k//2 padding: [B, H, W, C] x [k, k, 1, C] -> [B, H/s, W/s, C]."""
  if impl not in IMPLS:
    raise ValueError(f'depthwise impl must be one of {IMPLS}, got {impl!r}')
  if impl == 'auto':
    impl = default_impl()
  return _lax_depthwise(x, kernel, stride)
