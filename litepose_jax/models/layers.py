"""Building blocks of LitePose (spec section 1): all NHWC, no biases, PyTorch-equivalent BN."""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax.models import depthwise
from litepose_jax.models.arch import make_divisible

# PyTorch's default kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
# torch ConvTranspose weights are (in, out, kh, kw) and their fan_in is out*kh*kw: in our HWIO
# kernel [kh, kw, in, out] that is flax's 'fan_out'.
torch_deconv_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_out', 'uniform')

Dtype = Any


class Activation(nn.Module):
  """ReLU ('relu') or ReLU6 ('relu6'); a module so that op counting sees every activation."""
  kind: str = 'relu6'

  def __call__(self, x):
    return jnp.clip(x, 0.0, 6.0) if self.kind == 'relu6' else nn.relu(x)


def relu6(x):
  return Activation('relu6')(x)


def relu(x):
  return Activation('relu')(x)


def _bn_stats(x):
  """Batch mean and (biased, fast) variance per channel, float32: [..., C] -> ([C], [C])."""
  axes = tuple(range(x.ndim - 1))
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(xf, axes)
  # flax's use_fast_variance formula, clipped at zero like flax does.
  var = jnp.maximum(0.0, jnp.mean(jnp.square(xf), axes) - jnp.square(mean))
  return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _bn_train(x, scale, bias, epsilon):
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


_bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)


class BatchNorm(nn.BatchNorm):
  """flax's nn.BatchNorm (same variables and math) with a leaner training-mode gradient.

  Only the configuration batch_norm() builds is supported (last-axis features, scale and bias,
  fast variance, float32 statistics, no axis_name / mask). It never calls nn.BatchNorm.__call__,
  so method interceptors (op counting) see one call per layer.
  """

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    use_ra = nn.merge_param('use_running_average', self.use_running_average, use_running_average)
    if not (self.axis in (-1, x.ndim - 1) and self.axis_name is None and mask is None
            and self.use_scale and self.use_bias and self.use_fast_variance
            and self.force_float32_reductions):
      raise ValueError('layers.BatchNorm supports only axis=-1, scale, bias, fast variance, '
                       'float32 reductions, no axis_name and no mask')
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = self.param('scale', self.scale_init, (c,), self.param_dtype)
    bias = self.param('bias', self.bias_init, (c,), self.param_dtype)
    if use_ra:
      y = (x - ra_mean.value) * (jax.lax.rsqrt(ra_var.value + self.epsilon) * scale) + bias
    else:
      y, mean, var = _bn_train(x, scale, bias, self.epsilon)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    dtype = self.dtype if self.dtype is not None else jnp.result_type(x, scale, bias)
    return y.astype(dtype)


def batch_norm(train: bool, dtype: Dtype, name: str | None = None) -> nn.BatchNorm:
  """BN matching torch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                   param_dtype=jnp.float32, name=name)


class DepthwiseConv(nn.Module):
  """Depthwise k x k conv, stride s, symmetric padding k//2: [B, H, W, C] -> [B, H/s, W/s, C]."""
  kernel_size: int
  stride: int = 1
  impl: str = 'auto'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    k = self.kernel_size
    kernel = self.param('kernel', torch_conv_init, (k, k, 1, c), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return depthwise.depthwise_conv2d(x, kernel, self.stride, self.impl)


# Dense convolutions: 'lax' is flax's nn.Conv / nn.ConvTranspose (XLA's convolution); 'matmul'
# is an im2col + dot_general formulation of the same sums (XLA:CPU runs the weight gradients of
# its convolutions with few input channels, and transposed convolutions, very slowly, while its
# dots are fast); 'auto' picks 'matmul' on the CPU backend and 'lax' elsewhere.
CONV_IMPLS = ('auto', 'lax', 'matmul')
_forced_conv_impl: list[str] = []


def default_conv_impl() -> str:
  """The implementation 'auto' resolves to for Conv and Deconv on the current backend."""
  if _forced_conv_impl:
    return _forced_conv_impl[-1]
  return 'matmul' if jax.default_backend() == 'cpu' else 'lax'


@contextlib.contextmanager
def force_conv_impl(impl: str):
  """Within the block (at trace time), 'auto' Conv/Deconv layers use `impl` ('lax'|'matmul')."""
  if impl not in CONV_IMPLS[1:]:
    raise ValueError(f'conv impl must be one of {CONV_IMPLS[1:]}, got {impl!r}')
  _forced_conv_impl.append(impl)
  try:
    yield
  finally:
    _forced_conv_impl.pop()


def _resolve_conv_impl(impl: str) -> str:
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv impl must be one of {CONV_IMPLS}, got {impl!r}')
  return default_conv_impl() if impl == 'auto' else impl


class _Kernel(nn.Module):
  """Holds a [kh, kw, Cin, features] kernel at the path flax's nn.Conv / nn.ConvTranspose use."""
  kernel_size: int
  features: int
  init: Callable

  @nn.compact
  def __call__(self, x):
    # Takes the input (for Cin) like every other layer, so method interceptors see an input.
    k = self.kernel_size
    return self.param('kernel', self.init, (k, k, x.shape[-1], self.features), jnp.float32)


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
  """Same sums as Conv (symmetric padding k//2) as one dot: [B, H, W, Cin] -> [B, Ho, Wo, Cout]."""
  k = kernel.shape[0]
  b, h, w, cin = x.shape
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
  """Same sums as Deconv (4x4, stride 2, padding 2 on the dilated input) as one dot.

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


class Conv(nn.Module):
  """Dense k x k conv, stride s, symmetric padding k//2, no bias."""
  features: int
  kernel_size: int = 1
  stride: int = 1
  dtype: Dtype = jnp.float32
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    k, p = self.kernel_size, self.kernel_size // 2
    if _resolve_conv_impl(self.impl) == 'lax':
      return nn.Conv(self.features, (k, k), (self.stride, self.stride), padding=((p, p), (p, p)),
                     use_bias=False, kernel_init=torch_conv_init, dtype=self.dtype,
                     param_dtype=jnp.float32, name='conv')(x)
    kernel = _Kernel(k, self.features, torch_conv_init, name='conv')(x)
    return conv_matmul(x.astype(self.dtype), kernel.astype(self.dtype), self.stride)


class Deconv(nn.Module):
  """Transposed conv 4x4, stride 2, torch padding 1: [B, H, W, Cin] -> [B, 2H, 2W, features].

  Kernel is HWIO [4, 4, Cin, features] used with transpose_kernel=False, i.e. a torch weight
  W[in, out, kh, kw] maps to W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1) (spec 1.8 a).
  """
  features: int
  dtype: Dtype = jnp.float32
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    if _resolve_conv_impl(self.impl) == 'lax':
      # Padding k-1-p = 2 on each side of the dilated input gives exactly 2x the input size.
      return nn.ConvTranspose(self.features, (4, 4), (2, 2), padding=((2, 2), (2, 2)),
                              use_bias=False, kernel_init=torch_deconv_init, dtype=self.dtype,
                              param_dtype=jnp.float32, name='deconv')(x)
    kernel = _Kernel(4, self.features, torch_deconv_init, name='deconv')(x)
    return deconv_matmul(x.astype(self.dtype), kernel.astype(self.dtype))


class InvertedResidual(nn.Module):
  """MobileNetV2 block: 1x1 expand (BN, ReLU6) -> k x k depthwise (BN, ReLU6) -> 1x1 (BN)."""
  features: int
  stride: int
  kernel_size: int
  expansion: int
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, train: bool):
    cin = x.shape[-1]
    hidden = make_divisible(round(cin * self.expansion), 8)
    y = Conv(hidden, 1, dtype=self.dtype, impl=self.conv_impl, name='expand')(x)
    y = relu6(batch_norm(train, self.dtype, 'expand_bn')(y))
    y = DepthwiseConv(self.kernel_size, self.stride, self.depthwise_impl, self.dtype,
                      name='depthwise')(y)
    y = relu6(batch_norm(train, self.dtype, 'depthwise_bn')(y))
    y = Conv(self.features, 1, dtype=self.dtype, impl=self.conv_impl, name='project')(y)
    y = batch_norm(train, self.dtype, 'project_bn')(y)
    if self.stride == 1 and cin == self.features:
      y = y + x
    return y


class SepConv(nn.Module):
  """Output layer: depthwise 5x5 (BN, ReLU) -> 1x1 conv to `features`, no bias, no BN after."""
  features: int
  kernel_size: int = 5
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, train: bool):
    y = DepthwiseConv(self.kernel_size, 1, self.depthwise_impl, self.dtype, name='depthwise')(x)
    y = relu(batch_norm(train, self.dtype, 'depthwise_bn')(y))
    return Conv(self.features, 1, dtype=self.dtype, impl=self.conv_impl, name='pointwise')(y)


def numpy_init(variables_shape, seed: int = 0):
  """Draws variables from the same distributions as the flax initializers above, with numpy.

  variables_shape: the tree of jax.ShapeDtypeStruct from `jax.eval_shape(model.init, ...)`.
  XLA:CPU takes minutes to compile hundreds of threefry draws (one per parameter), while this
  takes milliseconds; use it wherever a fresh model is needed on CPU.
  """
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    names = [getattr(p, 'key', str(p)) for p in path]
    if names[-1] == 'kernel':
      # torch_deconv_init uses fan_out = kh*kw*out for the transposed convs, fan_in elsewhere.
      fan = s.shape[0] * s.shape[1] * (s.shape[3] if 'deconv' in names else s.shape[2])
      bound = 1.0 / np.sqrt(fan)
      return rng.uniform(-bound, bound, s.shape).astype(s.dtype)
    fill = 1.0 if names[-1] in ('scale', 'var') else 0.0
    return np.full(s.shape, fill, s.dtype)

  return jax.tree_util.tree_map_with_path(leaf, variables_shape)
