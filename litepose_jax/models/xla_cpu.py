"""XLA:CPU kernels behind the layers: dense / transposed convs as matmuls, a lean BN gradient.

XLA:CPU runs the weight gradients of its convolutions with few input channels, and transposed
convolutions, very slowly, while its dots are fast: `conv_matmul` and `deconv_matmul` compute
the same sums as one im2col + rank-2 dot. `bn_train` is training-mode BatchNorm with a custom
gradient that keeps only the conv output and per-channel vectors. The depthwise counterpart is
depthwise.py. All NHWC, HWIO kernels.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _shifted(xp, dy: int, dx: int, stride: int, out_h: int, out_w: int):
  """xp[:, s*h + dy, s*w + dx, :] for h < out_h, w < out_w."""
  b, _, _, c = xp.shape
  return jax.lax.slice(xp, (0, dy, dx, 0),
                       (b, dy + stride * (out_h - 1) + 1, dx + stride * (out_w - 1) + 1, c),
                       (1, stride, stride, 1))


def _dot2d(x, kmat):
  # A rank-2 dot: XLA:CPU lowers the weight gradient of a rank-4 dot_general to a slow transpose
  # plus generic dot, but that of [B*H*W, K] x [K, N] to its fast matmul path.
  y = jnp.dot(x.reshape(-1, x.shape[-1]), kmat)
  return y.reshape(x.shape[:-1] + (kmat.shape[-1],))


def conv_matmul(x, kernel, stride: int):
  """k x k conv, symmetric padding k//2, as one dot: [B, H, W, Cin] x [k, k, Cin, Cout] ->
  [B, ceil(H/s), ceil(W/s), Cout]."""
  k = kernel.shape[0]
  _, h, w, cin = x.shape
  ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
  if k == 1:
    patches = x[:, ::stride, ::stride] if stride > 1 else x
  else:
    p = k // 2
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    # im2col in (dy, dx, cin) order, i.e. the row order of the HWIO kernel flattened.
    patches = jnp.concatenate([_shifted(xp, dy, dx, stride, ho, wo)
                               for dy in range(k) for dx in range(k)], axis=-1)
  return _dot2d(patches, kernel.reshape(k * k * cin, kernel.shape[-1]))


def deconv_matmul(x, kernel):
  """Transposed conv 4x4, stride 2, padding 2 on the dilated input, as one dot:
  [B, H, W, Cin] x [4, 4, Cin, Cout] -> [B, 2H, 2W, Cout].

  Output pixel (2m + py, 2n + px) only meets kernel taps (py + 2a, px + 2c), a, c in {0, 1}, at
  input pixel (m + py + a - 1, n + px + c - 1): a 3x3 im2col of the input times a [9 Cin, 4 Cout]
  matrix holding the 16 taps (zeros elsewhere) gives all four output phases at once.
  """
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = jnp.concatenate([_shifted(xp, dy, dx, 1, h, w) for dy in range(3) for dx in range(3)],
                            axis=-1)
  zero = jnp.zeros((cin, cout), kernel.dtype)
  blocks = []
  for dy in range(3):
    for dx in range(3):
      for py in range(2):
        for px in range(2):
          a, c = dy - py, dx - px
          blocks.append(kernel[py + 2 * a, px + 2 * c] if a in (0, 1) and c in (0, 1) else zero)
  wmat = jnp.stack(blocks).reshape(3, 3, 2, 2, cin, cout).transpose(0, 1, 4, 2, 3, 5)
  y = _dot2d(patches, wmat.reshape(9 * cin, 4 * cout))
  y = y.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, 2 * h, 2 * w, cout)


def _bn_stats(x):
  """Batch mean and (biased, fast) variance per channel, float32: [..., C] -> ([C], [C])."""
  axes = tuple(range(x.ndim - 1))
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(xf, axes)
  # flax's use_fast_variance formula, clipped at zero like flax does.
  var = jnp.maximum(0.0, jnp.mean(jnp.square(xf), axes) - jnp.square(mean))
  return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def bn_train(x, scale, bias, epsilon):
  """Training-mode BN: x [..., C] -> (y [..., C] float32, batch mean [C], batch variance [C])."""
  return _bn_train_fwd(x, scale, bias, epsilon)[0]


def _bn_train_fwd(x, scale, bias, epsilon):
  mean, var = _bn_stats(x)
  inv = jax.lax.rsqrt(var + epsilon)
  y = (x.astype(mean.dtype) - mean) * (inv * scale) + bias
  # Only x (the conv output, materialised anyway) and per-channel vectors are kept: autodiff of
  # flax's BN keeps x - mean, an extra full-size tensor written and read on XLA:CPU.
  return (y, mean, var), (x, mean, inv, scale)


def _bn_train_bwd(epsilon, res, cts):
  del epsilon
  x, mean, inv, scale = res
  gy, gmean, gvar = cts
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  xc = x.astype(mean.dtype) - mean
  gy = gy.astype(mean.dtype)
  dbias = jnp.sum(gy, axes)
  gxc = jnp.sum(gy * xc, axes)  # sum(gy * xhat) / inv
  mul = inv * scale
  # d/dx of y = xhat * scale + bias through xhat, mean and var, plus the cotangents of the
  # returned statistics (d mean/dx = 1/n, d var/dx = 2 (x - mean)/n).
  dx = mul * gy + (gmean - mul * dbias) / n + xc * ((2.0 * gvar - mul * inv * inv * gxc) / n)
  return dx.astype(x.dtype), gxc * inv, dbias


bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)
