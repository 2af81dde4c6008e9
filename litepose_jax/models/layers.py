"""Building blocks of LitePose: NHWC, HWIO kernels, no conv biases, PyTorch-equivalent BN.

The modules run in two modes over the same variables:
- ordinary (`folded=False`): conv, then BatchNorm with batch (train) or running statistics;
- folded (`folded=True`, inference only): every BN is folded into the conv(s) before it,
  K' = K * s and bias = beta - mean * s with s = gamma / sqrt(var + eps), and the convs run as
  plain lax ops with that bias: the graph the TFLite export traces (convs with fused biases).
`conv_bn` is the one place where a conv+BN unit is wired, in either mode. The XLA:CPU kernels
behind the 'matmul' conv impl and the BN gradient are in xla_cpu.py, the depthwise ones in
depthwise.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.models import depthwise
from litepose_jax.models import xla_cpu
from litepose_jax.models.arch import make_divisible

# PyTorch's default kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
# torch ConvTranspose weights are (in, out, kh, kw) and their fan_in is out*kh*kw: in our HWIO
# kernel [kh, kw, in, out] that is flax's 'fan_out'.
torch_deconv_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_out', 'uniform')

Dtype = Any
# A BN folded into a conv: kernel [..., C] -> (kernel * s, bias [C] or None); see BatchNorm.fold.
Fold = Callable[[Any], tuple[Any, Any]]
_DN = ('NHWC', 'HWIO', 'NHWC')


def check_images(x, model: str, multiple: int, why: str) -> None:
  """Raises a ValueError naming what is wrong with an input batch [B, H, W, 3] of `model`, whose
  sides must be multiples of `multiple` (`why`: the stride that requires it)."""
  if x.ndim != 4:
    raise ValueError(f'{model} expects images of shape [B, H, W, 3], got shape {x.shape}')
  if x.shape[-1] != 3:
    raise ValueError(f'{model} expects 3 channels (RGB, NHWC), got {x.shape[-1]} in shape '
                     f'{x.shape}; channels-first input must be transposed to NHWC')
  h, w = x.shape[1:3]
  if h % multiple or w % multiple:
    raise ValueError(f'{model} input height and width must be multiples of {multiple} ({why}), '
                     f'got {h}x{w}')


class Activation(nn.Module):
  """ReLU ('relu') or ReLU6 ('relu6'); a module so that op counting sees every activation."""
  kind: str = 'relu6'

  def __call__(self, x):
    return jnp.clip(x, 0.0, 6.0) if self.kind == 'relu6' else nn.relu(x)


def relu6(x):
  return Activation('relu6')(x)


def relu(x):
  return Activation('relu')(x)


class BatchNorm(nn.BatchNorm):
  """flax's nn.BatchNorm (same variables and math) with a leaner training-mode gradient.

  Only the configuration batch_norm() builds is supported (last-axis features, scale and bias,
  fast variance, float32 statistics, no axis_name / mask). It never calls nn.BatchNorm.__call__,
  so method interceptors (op counting) see one call per layer.
  """

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None,
               channel_mask=None):
    """x [..., C] -> [..., C]; channel_mask [C] (0 / 1, a super-net's active channels): zeroes
    the inactive outputs, and only active channels update the running statistics."""
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
      y, mean, var = xla_cpu.bn_train(x, scale, bias, self.epsilon)
      if not self.is_initializing():
        new_mean = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        new_var = self.momentum * ra_var.value + (1 - self.momentum) * var
        if channel_mask is not None:
          # An inactive channel saw only zeros: its statistics are not the sub-net's to write.
          active = channel_mask > 0
          new_mean = jnp.where(active, new_mean, ra_mean.value)
          new_var = jnp.where(active, new_var, ra_var.value)
        ra_mean.value, ra_var.value = new_mean, new_var
    dtype = self.dtype if self.dtype is not None else jnp.result_type(x, scale, bias)
    if channel_mask is not None:
      y = y * channel_mask.astype(y.dtype)
    return y.astype(dtype)

  def fold(self, kernel, with_bias: bool = True):
    """This BN (running statistics) folded into the conv before it: kernel [..., C] ->
    (kernel * s [..., C], beta - mean * s [C], or None without the bias).

    The scale goes on the kernel's last (output) axis, that of every HWIO kernel: dense,
    depthwise and transposed. Reads the variables the ordinary mode created (a folded model has
    no init of its own); numpy variables give numpy results, so an export traced over numpy
    variables gets the folded kernels as constants.
    """
    names = (('params', 'scale'), ('params', 'bias'), ('batch_stats', 'mean'),
             ('batch_stats', 'var'))
    values = [self.get_variable(col, name) for col, name in names]
    where = '/'.join(self.path)
    if any(v is None for v in values):
      raise ValueError(f'{where}: a folded model applies the variables of the unfolded one '
                       '(it has no init of its own)')
    gamma, beta, mean, var = values
    xnp = np if all(isinstance(v, np.ndarray) for v in (kernel, *values)) else jnp
    if xnp is np and np.any(var < 0):
      raise UserError(f'batch_stats {where}/var has negative entries: the checkpoint is corrupt')
    scale = gamma / xnp.sqrt(var + self.epsilon)
    return kernel * scale, (beta - mean * scale) if with_bias else None


def batch_norm(train: bool, dtype: Dtype, name: str | None = None) -> BatchNorm:
  """BN matching torch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                   param_dtype=jnp.float32, name=name)


def conv_bn(convs: Sequence[tuple[nn.Module, Any]], bn_name: str, train: bool, dtype: Dtype,
            folded: bool, mask=None):
  """A conv+BN unit: sum_i conv_i(x_i), then BatchNorm `bn_name`: -> [B, H', W', C].

  Called inside a parent's compact method, so the BN is the parent's child `bn_name` beside the
  convs (the official module layout). Several convs are summed before one BN in the fusion head.
  folded: the BN is folded into every conv (each kernel scaled, the bias added once, by the
  first) and no BN runs. Every conv+BN of the network passes here, so this is where a
  super-net's channel mask [C] (0 / 1 floats, the active sub-net's channels) is applied: after
  the BN, which also keeps the running statistics of inactive channels (see nas/supernet.py).
  """
  if folded and mask is not None:
    raise ValueError('a folded model runs one fixed architecture: no channel masks')
  bn = batch_norm(train, dtype, bn_name)
  y = None
  for i, (conv, x) in enumerate(convs):
    t = conv(x, fold=functools.partial(bn.fold, with_bias=i == 0)) if folded else conv(x)
    y = t if y is None else y + t
  return y if folded else bn(y, channel_mask=mask)


class DepthwiseConv(nn.Module):
  """Depthwise k x k conv, stride s, symmetric padding k//2: [B, H, W, C] -> [B, H/s, W/s, C].

  `fold` (folded mode, see BatchNorm.fold) scales the kernel and adds a bias.
  """
  kernel_size: int
  stride: int = 1
  impl: str = 'auto'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, fold: Fold | None = None):
    c = x.shape[-1]
    k = self.kernel_size
    kernel = self.param('kernel', torch_conv_init, (k, k, 1, c), jnp.float32)
    bias = None
    if fold is not None:
      kernel, bias = fold(kernel)
      bias = bias.astype(self.dtype)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return depthwise.depthwise_conv2d(x, kernel, self.stride, self.impl, bias)


# Dense convolutions: 'lax' is flax's nn.Conv / nn.ConvTranspose (XLA's convolution); 'matmul'
# is an im2col + dot_general formulation of the same sums (xla_cpu.py: XLA:CPU runs the weight
# gradients of its convolutions with few input channels, and transposed convolutions, very
# slowly, while its dots are fast); 'auto' picks 'matmul' on the CPU backend and 'lax' elsewhere.
CONV_IMPLS = ('auto', 'lax', 'matmul')


def default_conv_impl() -> str:
  """The implementation 'auto' resolves to for Conv and Deconv on the current backend."""
  return 'matmul' if jax.default_backend() == 'cpu' else 'lax'


def _resolve_conv_impl(impl: str) -> str:
  if impl not in CONV_IMPLS:
    raise UserError(f'conv impl must be one of {CONV_IMPLS}, got {impl!r}')
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


def _fold_and_split(kernel, fold: Fold | None, split: Sequence[int]):
  """[(kernel, bias or None)]: the folded kernel, cut into output-channel groups of `split`."""
  bias = None
  if fold is not None:
    kernel, bias = fold(kernel)
  if not split:
    return [(kernel, bias)]
  bounds = np.cumsum((0,) + tuple(split))
  if bounds[-1] != kernel.shape[-1]:
    raise ValueError(f'split {tuple(split)} does not add up to {kernel.shape[-1]} channels')
  return [(kernel[..., lo:hi], None if bias is None else bias[lo:hi])
          for lo, hi in zip(bounds[:-1], bounds[1:])]


class Conv(nn.Module):
  """Dense k x k conv, stride s, symmetric padding k//2, no bias:
  [B, H, W, Cin] -> [B, H/s, W/s, features].

  folded: plain lax ops (or the matmul kernel); `fold` scales the kernel and adds a bias, and
  `split` (channel counts) returns one output per group of output channels, computed as separate
  convs (no slice op in the exported graph).
  """
  features: int
  kernel_size: int = 1
  stride: int = 1
  dtype: Dtype = jnp.float32
  impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, fold: Fold | None = None, split: Sequence[int] = ()):
    k, p, s, dt = self.kernel_size, self.kernel_size // 2, self.stride, self.dtype
    impl = _resolve_conv_impl(self.impl)
    if not self.folded and (fold is not None or split):
      raise ValueError('Conv: fold / split apply to folded=True only')
    if impl == 'lax' and not self.folded:
      return nn.Conv(self.features, (k, k), (s, s), padding=((p, p), (p, p)), use_bias=False,
                     kernel_init=torch_conv_init, dtype=dt, param_dtype=jnp.float32,
                     name='conv')(x)
    kernel = _Kernel(k, self.features, torch_conv_init, name='conv')(x)
    x = x.astype(dt)
    outs = []
    for part, bias in _fold_and_split(kernel, fold, split):
      part = part.astype(dt)
      if impl == 'lax':
        y = lax.conv_general_dilated(x, part, (s, s), ((p, p), (p, p)), dimension_numbers=_DN)
      else:
        y = xla_cpu.conv_matmul(x, part, s)
      outs.append(y if bias is None else y + bias.astype(dt))
    return tuple(outs) if split else outs[0]


class Deconv(nn.Module):
  """Transposed conv 4x4, stride 2, torch padding 1: [B, H, W, Cin] -> [B, 2H, 2W, features].

  Kernel is HWIO [4, 4, Cin, features] used with transpose_kernel=False, i.e. a torch weight
  W[in, out, kh, kw] maps to W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1) (docs/OFFICIAL.md,
  "Weight layout"). folded: plain lax ops; `fold` scales the kernel and adds a bias.
  """
  features: int
  dtype: Dtype = jnp.float32
  impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, fold: Fold | None = None):
    impl = _resolve_conv_impl(self.impl)
    if not self.folded and fold is not None:
      raise ValueError('Deconv: fold applies to folded=True only')
    if impl == 'lax' and not self.folded:
      # Padding k-1-p = 2 on each side of the dilated input gives exactly 2x the input size.
      return nn.ConvTranspose(self.features, (4, 4), (2, 2), padding=((2, 2), (2, 2)),
                              use_bias=False, kernel_init=torch_deconv_init, dtype=self.dtype,
                              param_dtype=jnp.float32, name='deconv')(x)
    kernel = _Kernel(4, self.features, torch_deconv_init, name='deconv')(x)
    [(kernel, bias)] = _fold_and_split(kernel, fold, ())
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if impl == 'lax':
      y = lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DN)
    else:
      y = xla_cpu.deconv_matmul(x, kernel)
    return y if bias is None else y + bias.astype(self.dtype)


class InvertedResidual(nn.Module):
  """MobileNetV2 block: 1x1 expand (BN, ReLU6) -> k x k depthwise (BN, ReLU6) -> 1x1 (BN),
  plus the input when stride is 1 and the width is unchanged."""
  features: int
  stride: int
  kernel_size: int
  expansion: int
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool, masks=None):
    """masks (super-net): (hidden [H], out [features]) channel masks, or None."""
    unit = functools.partial(conv_bn, train=train, dtype=self.dtype, folded=self.folded)
    conv = functools.partial(Conv, dtype=self.dtype, impl=self.conv_impl, folded=self.folded)
    hidden_mask, out_mask = (None, None) if masks is None else masks
    cin = x.shape[-1]
    hidden = make_divisible(round(cin * self.expansion), 8)
    y = relu6(unit([(conv(hidden, 1, name='expand'), x)], 'expand_bn', mask=hidden_mask))
    dw = DepthwiseConv(self.kernel_size, self.stride, self.depthwise_impl, self.dtype,
                       name='depthwise')
    y = relu6(unit([(dw, y)], 'depthwise_bn', mask=hidden_mask))
    y = unit([(conv(self.features, 1, name='project'), y)], 'project_bn', mask=out_mask)
    if self.stride == 1 and cin == self.features:
      y = y + x
    return y


class SepConv(nn.Module):
  """Output layer: depthwise 5x5 (BN, ReLU) -> 1x1 conv to `features`, no bias, no BN after.

  split (folded mode): the 1x1 conv's output channel groups, returned as separate tensors.
  """
  features: int
  kernel_size: int = 5
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool, split: Sequence[int] = (), in_mask=None):
    """in_mask (super-net): the input's channel mask [Cin], or None."""
    dw = DepthwiseConv(self.kernel_size, 1, self.depthwise_impl, self.dtype, name='depthwise')
    y = relu(conv_bn([(dw, x)], 'depthwise_bn', train, self.dtype, self.folded, in_mask))
    return Conv(self.features, 1, dtype=self.dtype, impl=self.conv_impl, folded=self.folded,
                name='pointwise')(y, split=split)


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
