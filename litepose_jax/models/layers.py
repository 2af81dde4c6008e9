"""Building blocks of LitePose (spec section 1): all NHWC, no biases, PyTorch-equivalent BN."""
from __future__ import annotations

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


def batch_norm(train: bool, dtype: Dtype, name: str | None = None) -> nn.BatchNorm:
  """BN matching torch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
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


class Conv(nn.Module):
  """Dense k x k conv, stride s, symmetric padding k//2, no bias."""
  features: int
  kernel_size: int = 1
  stride: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, p = self.kernel_size, self.kernel_size // 2
    return nn.Conv(self.features, (k, k), (self.stride, self.stride), padding=((p, p), (p, p)),
                   use_bias=False, kernel_init=torch_conv_init, dtype=self.dtype,
                   param_dtype=jnp.float32, name='conv')(x)


class Deconv(nn.Module):
  """Transposed conv 4x4, stride 2, torch padding 1: [B, H, W, Cin] -> [B, 2H, 2W, features].

  Kernel is HWIO [4, 4, Cin, features] used with transpose_kernel=False, i.e. a torch weight
  W[in, out, kh, kw] maps to W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1) (spec 1.8 a).
  """
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    # Padding k-1-p = 2 on each side of the dilated input gives exactly 2x the input size.
    return nn.ConvTranspose(self.features, (4, 4), (2, 2), padding=((2, 2), (2, 2)),
                            use_bias=False, kernel_init=torch_deconv_init, dtype=self.dtype,
                            param_dtype=jnp.float32, name='deconv')(x)


class InvertedResidual(nn.Module):
  """MobileNetV2 block: 1x1 expand (BN, ReLU6) -> k x k depthwise (BN, ReLU6) -> 1x1 (BN)."""
  features: int
  stride: int
  kernel_size: int
  expansion: int
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    cin = x.shape[-1]
    hidden = make_divisible(round(cin * self.expansion), 8)
    y = Conv(hidden, 1, dtype=self.dtype, name='expand')(x)
    y = relu6(batch_norm(train, self.dtype, 'expand_bn')(y))
    y = DepthwiseConv(self.kernel_size, self.stride, self.depthwise_impl, self.dtype,
                      name='depthwise')(y)
    y = relu6(batch_norm(train, self.dtype, 'depthwise_bn')(y))
    y = Conv(self.features, 1, dtype=self.dtype, name='project')(y)
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

  @nn.compact
  def __call__(self, x, train: bool):
    y = DepthwiseConv(self.kernel_size, 1, self.depthwise_impl, self.dtype, name='depthwise')(x)
    y = relu(batch_norm(train, self.dtype, 'depthwise_bn')(y))
    return Conv(self.features, 1, dtype=self.dtype, name='pointwise')(y)


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
