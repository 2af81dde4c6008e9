"""Depthwise 2-D convolution with a per-backend implementation.

`depthwise_conv2d(x, kernel, stride, impl)`: x [B, H, W, C], kernel [k, k, 1, C] (HWIO with
feature_group_count=C, the layout of flax.linen.Conv), symmetric padding k//2 (PyTorch style),
returns [B, ceil(H/stride), ceil(W/stride), C].

impl:
  'lax':   XLA's grouped convolution (fast on GPU/TPU, ~50x slower than PyTorch on XLA:CPU).
  'shift': shift-and-add over the k*k kernel offsets with a custom VJP, written so that XLA:CPU
           emits vectorised loop fusions instead of its slow grouped-convolution path. Numerically
           the same sums as 'lax' (only the summation order differs).
  'split': 7x7 / 9x9 kernels as sums of small dilated 'SAME' sub-convs (depthwise_split.py), the
           others as 'lax': the export's graph, fast under TFLite's XNNPACK.
  'auto':  'shift' on the CPU backend, 'lax' elsewhere.
"""
from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp

from litepose_jax.errors import UserError
from litepose_jax.models import depthwise_split

IMPLS = ('auto', 'lax', 'shift', 'split')

# Rows folded into one output element of the kernel-gradient fusion (see _kernel_grad): the
# unrolled partial sum keeps the accumulator in registers; more terms compile slower.
_MAX_FOLD = 8


def default_impl() -> str:
  """The implementation 'auto' resolves to on the current default backend."""
  return 'shift' if jax.default_backend() == 'cpu' else 'lax'


def _out_size(n: int, stride: int) -> int:
  return (n - 1) // stride + 1


def _lax_depthwise(x, kernel, stride):
  k = kernel.shape[0]
  p = k // 2
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=((p, p), (p, p)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=x.shape[-1])


def _acc_dtype(dtype):
  # Low-precision inputs accumulate in float32, like XLA's convolutions do.
  return jnp.promote_types(dtype, jnp.float32)


def _shift_sum(xp, kernel, stride, out_h, out_w):
  """sum_ij xp[:, s*h+i, s*w+j, :] * kernel[i, j, 0, :]: [B, Hp, Wp, C] -> [B, out_h, out_w, C]."""
  b, _, _, c = xp.shape
  kh, kw = kernel.shape[:2]
  acc_t = _acc_dtype(xp.dtype)
  kernel = kernel.astype(acc_t)
  acc = None
  for i in range(kh):
    for j in range(kw):
      tap = lax.slice(xp, (0, i, j, 0),
                      (b, i + stride * (out_h - 1) + 1, j + stride * (out_w - 1) + 1, c),
                      (1, stride, stride, 1))
      term = tap.astype(acc_t) * kernel[i, j, 0]
      acc = term if acc is None else acc + term
  return acc.astype(xp.dtype)


def _pad_same(x, k):
  p = k // 2
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def _input_grad(g, kernel, stride, h, w):
  """d out / d x: the flipped kernel over the padded cotangent [B, Ho, Wo, C] -> [B, H, W, C].

  For stride 2 each output phase (y % 2, x % 2) only meets the kernel taps of one parity, so the
  gradient is four stride-1 shift-sums with ~k*k/4 taps on quarter-size outputs, interleaved
  (a shift-sum over the zero-dilated cotangent would do 4x the work).
  """
  k = kernel.shape[0]
  p = k // 2
  if stride == 1:
    return _shift_sum(_pad_same(g, k), kernel[::-1, ::-1], 1, h, w)
  ho, wo = g.shape[1:3]

  def phase(r, n_out, n_g):
    # dx[2m + r] = sum_a g[m + e - a] * kernel[2a + q]: a correlation of g, padded low by
    # na - 1 - e (negative pads crop), with the flipped sub-kernel kernel[q::2][::-1].
    q = (r + p) % 2
    e = (r + p - q) // 2
    na = (k - 1 - q) // 2 + 1
    low = na - 1 - e
    high = (n_out - 1 + e) - (n_g - 1)
    return q, low, high

  zero = jnp.zeros((), g.dtype)
  mh, mw = -(-h // 2), -(-w // 2)
  rows = []
  for ry in range(2):
    qy, ly, hy = phase(ry, mh, ho)
    cols = []
    for rx in range(2):
      qx, lx, hx = phase(rx, mw, wo)
      gp = lax.pad(g, zero, ((0, 0, 0), (ly, hy, 0), (lx, hx, 0), (0, 0, 0)))
      sub = kernel[qy::2, qx::2][::-1, ::-1]
      cols.append(_shift_sum(gp, sub, 1, mh, mw))
    rows.append(jnp.stack(cols, axis=3))  # [B, mh, mw, 2, C]
  dx = jnp.stack(rows, axis=2)  # [B, mh, 2, mw, 2, C]
  dx = dx.reshape(g.shape[0], 2 * mh, 2 * mw, g.shape[-1])
  return dx[:, :h, :w]


def _fold(n: int) -> int:
  """Largest divisor of n that is at most _MAX_FOLD."""
  return max(d for d in range(1, min(n, _MAX_FOLD) + 1) if n % d == 0)


def _kernel_grad(x, g, k, stride):
  """d out / d kernel: sum over b, h, w of xpad[b, s*h+i, s*w+j, c] * g[b, h, w, c] -> [k, k, 1, C].

  XLA:CPU's column reductions over shifted slices are memory bound (each of the k*k offsets
  re-reads both tensors). Here each kernel row i is one loop fusion whose output element
  (r, w, j, c) sums T = _fold(B*Ho) products unrolled along the batch*row axis, with the k column
  offsets j next to the channels so the shifted reads of x stay in cache; a small reduction over
  (r, w) follows. A scan over the kernel rows keeps the compiled program small.
  """
  b, h, w, c = x.shape
  ho, wo = g.shape[1:3]
  acc_t = _acc_dtype(x.dtype)
  xp = _pad_same(x, k)
  # Row/column phases: tap (i, j) reads padded pixel (s*h + i, s*w + j), i.e. pixel
  # (h + i//s, w + j//s) of phase (i%s, j%s); phases turn strided reads into contiguous ones.
  rows, cols = ho + (k - 1) // stride, wo + (k - 1) // stride
  phases = []
  for r in range(stride):
    for q in range(stride):
      ph = xp[:, r::stride, q::stride][:, :rows, :cols]
      phases.append(jnp.pad(ph, ((0, 0), (0, rows - ph.shape[1]), (0, cols - ph.shape[2]),
                                 (0, 0))))
  xph = jnp.stack(phases).reshape(stride, stride, b, rows, cols, c)
  n = b * ho
  t = _fold(n)
  gf = g.astype(acc_t).reshape(t, n // t, wo, c)

  def row_grad(_, i):
    xi = lax.dynamic_slice(xph, (i % stride, 0, 0, i // stride, 0, 0),
                           (1, stride, b, ho, cols, c))[0]
    xi = xi.reshape(stride, t, n // t, cols, c).astype(acc_t)
    taps = []
    for j in range(k):
      xj = lax.slice(xi[j % stride], (0, 0, j // stride, 0), (t, n // t, j // stride + wo, c))
      acc = None
      for u in range(t):
        term = xj[u] * gf[u]
        acc = term if acc is None else acc + term
      taps.append(acc)
    z = jnp.stack(taps, axis=2)  # [n/t, Wo, k, C]
    return None, jnp.sum(z, axis=(0, 1))

  _, dk = lax.scan(row_grad, None, jnp.arange(k))
  return dk[:, :, None, :].astype(x.dtype)


def _forward(x, kernel, stride):
  """The shift-sum forward pass: [B, H, W, C] -> [B, ceil(H/s), ceil(W/s), C].

  Stride 2 reads strided taps directly: splitting xp into four row/column phases first (four
  stride-1 sums) measured 2-3x slower on XLA:CPU.
  """
  h, w = x.shape[1:3]
  return _shift_sum(_pad_same(x, kernel.shape[0]), kernel, stride, _out_size(h, stride),
                    _out_size(w, stride))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shift_depthwise(x, kernel, stride):
  return _forward(x, kernel, stride)


def _shift_fwd(x, kernel, stride):
  return _shift_depthwise(x, kernel, stride), (x, kernel)


def _shift_bwd(stride, res, g):
  x, kernel = res
  h, w = x.shape[1:3]
  # Materialise the cotangent: otherwise XLA fuses its producer (often the forward conv itself)
  # into every tap of the gradient sums and recomputes it k*k times.
  g = lax.optimization_barrier(g)
  dx = _input_grad(g, kernel, stride, h, w)
  dk = _kernel_grad(x, g, kernel.shape[0], stride).astype(kernel.dtype)
  return dx.astype(x.dtype), dk


_shift_depthwise.defvjp(_shift_fwd, _shift_bwd)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, impl: str = 'auto',
                     bias: jax.Array | None = None) -> jax.Array:
  """Depthwise conv, symmetric k//2 padding, plus an optional bias [C]:
  [B, H, W, C] x [k, k, 1, C] -> [B, H/s, W/s, C]."""
  if impl not in IMPLS:
    raise UserError(f'depthwise impl must be one of {IMPLS}, got {impl!r}')
  if x.ndim != 4:
    raise ValueError(f'depthwise_conv2d expects x of shape [B, H, W, C], got {x.shape}')
  k = kernel.shape[0]
  if kernel.shape != (k, k, 1, x.shape[-1]) or k % 2 != 1:
    raise ValueError(f'depthwise kernel must be [k, k, 1, C] with odd k and C={x.shape[-1]}, '
                     f'got {kernel.shape}')
  if stride not in (1, 2):
    raise ValueError(f'depthwise stride must be 1 or 2, got {stride}')
  if impl == 'auto':
    impl = default_impl()
  if impl == 'split' and depthwise_split.has_split(k, stride):
    # The bias rides on the first sub-conv (a converter fuses it there).
    return depthwise_split.split_depthwise(x, kernel, stride, bias)
  y = _shift_depthwise(x, kernel, stride) if impl == 'shift' else _lax_depthwise(x, kernel, stride)
  return y if bias is None else y + bias
