"""EfficientHRNet (Neff et al.) as LitePose's lib/models/pose_efficient_hrnet.py builds it: the
other baseline of the LitePose paper's tables (H-1..H-4; efficient_hrnet_arch.py has the config).

Topology (NHWC):
  features_0: 3x3/2 conv -BN-Swish (EfficientNet's stem);
  features_1..N: MBConv blocks: [1x1 expand -BN-Swish,] k x k depthwise (stride s) -BN-Swish,
    squeeze-excitation (global mean -> 1x1 conv + bias -> Swish -> 1x1 conv + bias -> sigmoid ->
    scale), 1x1 project -BN, + input (drop-connect) when stride 1 and the width is unchanged;
    the last blocks of the 24-, 40-, 112- and 320-channel groups are the stride 4/8/16/32 taps;
  trans1_branch1..2 (taps 4, 8), stage2, trans2_branch1..3 (stage-2 outputs, tap 16), stage3,
    trans3_branch1..4 (stage-3 outputs, tap 32), stage4: every transition a 3x3 conv with bias
    -BN-ReLU, the stages HigherHRNet's HighResolutionModules (higherhrnet.py), stage4's last
    module fusing into branch 0 only;
  head: HigherHRNet's: final_layers_0 -> out4 (J heatmaps, J tags, stride 4); [features, out4]
    -> deconv_layers_0 (4x4/2 transposed conv -BN-ReLU, BasicBlocks) -> final_layers_1 -> out2.
Stride-2 convs of the backbone pad as the official ZeroPad2d does (TensorFlow 'SAME': one row /
column less before than after, (k - 2) // 2 and k // 2), not symmetrically; the HRNet part pads
k // 2 on both sides. Every conv+BN goes through layers.conv_bn (folded mode, conv_impl, dtype and
op counting work as for LitePose); depthwise convs are layers.DepthwiseConv.

Drop-connect (official rate 0.2) runs only with train=True and a 'dropout' rng passed to apply
(the project's trainer passes none, so it is off there).

Variable names follow the official state_dict keys as in higherhrnet.py (torch path, numeric
indices joined by '_'; a conv's kernel in its child 'conv', a biased conv's conv one level deeper):
  features.0.1.weight                 params/features_0_1/conv/kernel   (stem conv)
  features.3.conv.0.2.running_var     batch_stats/features_3/conv_0_2/var (expand BN)
  features.3.conv.1.1.weight          params/features_3/conv_1_1/kernel (depthwise, [k, k, 1, C])
  features.3.conv.2.se.1.bias         params/features_3/conv_2/se_1/bias
  features.3.conv.3.weight            params/features_3/conv_3/conv/kernel (project)
  features.1.conv.0.1.weight          params/features_1/conv_0_1/kernel (expansion 1: no expand,
                                      the depthwise is conv.0, SE conv.1, project conv.2 / 3)
  trans2_branch3.0.weight, .0.bias    params/trans2_branch3_0/conv/conv/kernel, .../bias
  stage3.0.fuse_layers.0.1.0.weight, deconv_layers.0.0.0.weight, final_layers.1.bias: as HigherHRNet
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from litepose_jax.models import depthwise
from litepose_jax.models import layers
from litepose_jax.models import xla_cpu
from litepose_jax.models.efficient_hrnet_arch import MBConvSpec
from litepose_jax.models.higherhrnet import BiasConv
from litepose_jax.models.higherhrnet import HighResolutionModule
from litepose_jax.models.higherhrnet import HRNetFamily
from litepose_jax.models.higherhrnet import conv_units
from litepose_jax.models.higherhrnet import deconv_head

Dtype = Any
_DN = ('NHWC', 'HWIO', 'NHWC')


def _same_pads(k: int) -> tuple[int, int]:
  """TensorFlow 'SAME' padding (before, after) of a k x k stride-2 conv on an even side."""
  return (k - 2) // 2, k // 2


def _shifted_symmetric(fn, x):
  """A stride-2 conv `fn` with symmetric k // 2 padding, made 'SAME': one more leading row /
  column moves its windows onto the 'SAME' ones, whose extra first output row / column goes."""
  return fn(jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0))))[:, 1:, 1:]


class Swish(nn.Module):
  """x * sigmoid(x); a module so that op counting sees it (old ptflops did not count it)."""

  def __call__(self, x):
    return x * jax.nn.sigmoid(x)


class Sigmoid(nn.Module):
  """sigmoid(x); a module so that op counting sees it (old ptflops did not count it)."""

  def __call__(self, x):
    return jax.nn.sigmoid(x)


class GlobalMean(nn.Module):
  """[B, H, W, C] -> [B, 1, 1, C] (nn.AdaptiveAvgPool2d(1); old ptflops counts its input)."""

  def __call__(self, x):
    return jnp.mean(x, axis=(1, 2), keepdims=True)


class SameConv(layers.Conv):
  """layers.Conv at stride 2 with 'SAME' padding (the official stem's ZeroPad2d + conv):
  [B, H, W, Cin] -> [B, H/2, W/2, features]; same variables and fold hook as layers.Conv."""

  @nn.compact
  def __call__(self, x, fold: layers.Fold | None = None, split: Sequence[int] = ()):
    if self.stride != 2 or split or (fold is not None and not self.folded):
      raise ValueError('SameConv: stride 2 only, no split, fold with folded=True only')
    k, dt = self.kernel_size, self.dtype
    kernel = layers._Kernel(k, self.features, layers.torch_conv_init, name='conv')(x)  # pylint: disable=protected-access
    bias = None
    if fold is not None:
      kernel, bias = fold(kernel)
    x, kernel = x.astype(dt), kernel.astype(dt)
    impl = layers.default_conv_impl() if self.impl == 'auto' else self.impl
    if impl == 'lax':
      lo, hi = _same_pads(k)
      y = lax.conv_general_dilated(x, kernel, (2, 2), ((lo, hi), (lo, hi)), dimension_numbers=_DN)
    else:
      y = _shifted_symmetric(lambda xp: xla_cpu.conv_matmul(xp, kernel, 2), x)
    return y if bias is None else y + bias.astype(dt)


class SameDepthwiseConv(layers.DepthwiseConv):
  """layers.DepthwiseConv at stride 2 with 'SAME' padding (the official MBConv's ZeroPad2d):
  [B, H, W, C] -> [B, H/2, W/2, C]; same variables and fold hook as layers.DepthwiseConv."""

  @nn.compact
  def __call__(self, x, fold: layers.Fold | None = None):
    if self.stride != 2:
      raise ValueError('SameDepthwiseConv: stride 2 only (stride 1 is layers.DepthwiseConv)')
    c, k, dt = x.shape[-1], self.kernel_size, self.dtype
    kernel = self.param('kernel', layers.torch_conv_init, (k, k, 1, c), jnp.float32)
    bias = None
    if fold is not None:
      kernel, bias = fold(kernel)
      bias = bias.astype(dt)
    x, kernel = x.astype(dt), kernel.astype(dt)
    impl = depthwise.default_impl() if self.impl == 'auto' else self.impl
    if impl == 'shift':
      # The CPU kernel (its own gradient) pads symmetrically.
      return _shifted_symmetric(lambda xp: depthwise.depthwise_conv2d(xp, kernel, 2, impl, bias), x)
    lo, hi = _same_pads(k)
    y = lax.conv_general_dilated(x, kernel, (2, 2), ((lo, hi), (lo, hi)), dimension_numbers=_DN,
                                 feature_group_count=c)
    return y if bias is None else y + bias


class BiasedConv(nn.Module):
  """k x k conv (stride 1, padding k // 2) with a bias, for a BN to follow (the official
  transitions' nn.Conv2d(..., bias=True)): [B, H, W, Cin] -> [B, H, W, features].

  folded: the BN's fold hook also scales this bias into the folded one.
  """
  features: int
  kernel_size: int = 3
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, fold: layers.Fold | None = None):
    conv = layers.Conv(self.features, self.kernel_size, dtype=self.dtype, impl=self.conv_impl,
                       folded=self.folded, name='conv')
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    if not self.folded:
      return conv(x) + bias.astype(self.dtype)

    def fold_bias(kernel):
      # BN(conv + b) = s * conv + (beta - mean * s) + s * b; the hook's kernel scaling of a ones
      # vector gives s (numpy in, numpy out, as the export wants).
      scaled, folded_bias = fold(kernel)
      s, _ = fold(bias * 0 + 1)
      return scaled, None if folded_bias is None else folded_bias + s * bias

    return conv(x, fold=fold_bias if fold is not None else lambda kernel: (kernel, bias))


class SqueezeExcite(nn.Module):
  """x * sigmoid(se_3(swish(se_1(mean(x))))): [B, H, W, C] -> [B, H, W, C]."""
  squeeze: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x):
    kw = {'dtype': self.dtype, 'conv_impl': self.conv_impl, 'folded': self.folded}
    s = GlobalMean()(x)
    s = Swish()(BiasConv(self.squeeze, 1, name='se_1', **kw)(s).astype(self.dtype))
    s = Sigmoid()(BiasConv(x.shape[-1], 1, name='se_3', **kw)(s).astype(self.dtype))
    return x * s


class MBConv(nn.Module):
  """EfficientNet's MBConv block (see the module docstring): [B,H,W,Cin] -> [B,H/s,W/s,Cout]."""
  block: MBConvSpec
  drop_connect_rate: float = 0.0
  depthwise_impl: str = 'auto'
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    unit, conv = conv_units(self, train)
    b = self.block
    y, i = x, 0  # i: index of the depthwise unit in the official `conv` Sequential
    if b.expansion != 1:
      y = Swish()(unit([(conv(b.hidden, 1, name='conv_0_1'), y)], 'conv_0_2'))
      i = 1
    dw_cls = SameDepthwiseConv if b.stride == 2 else layers.DepthwiseConv
    dw = dw_cls(b.kernel_size, b.stride, self.depthwise_impl, self.dtype, name=f'conv_{i}_1')
    y = Swish()(unit([(dw, y)], f'conv_{i}_2'))
    y = SqueezeExcite(b.squeeze, self.dtype, self.conv_impl, self.folded, name=f'conv_{i + 1}')(y)
    y = unit([(conv(b.out_width, 1, name=f'conv_{i + 2}'), y)], f'conv_{i + 3}')
    if not b.residual:
      return y
    if train and self.drop_connect_rate > 0 and self.has_rng('dropout'):
      # Drop the whole residual branch of a sample, rescaling the kept ones.
      keep = 1.0 - self.drop_connect_rate
      mask = jax.random.bernoulli(self.make_rng('dropout'), keep, (y.shape[0], 1, 1, 1))
      y = y * (mask.astype(y.dtype) / keep)
    return x + y


class EfficientHRNet(HRNetFamily):
  """images [B, H, W, 3] (normalised) -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]).

  arch: an EfficientHRNetSpec. out4 holds J heatmaps then J tags, out2 J heatmaps, as
  HigherHRNet's. H and W must be multiples of 32. folded=True: inference with every BN folded
  into the conv before it, over the same variables; returns (heatmaps4, tags4, heatmaps2).
  """
  family = 'EfficientHRNet'

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self._begin(x, train)
    unit, _ = conv_units(self, train)
    kw = {'dtype': self.dtype, 'conv_impl': self.conv_impl, 'folded': self.folded}
    arch = self.arch
    stem = SameConv(arch.stem_width, 3, 2, self.dtype, self.conv_impl, self.folded,
                    name='features_0_1')
    x = Swish()(unit([(stem, x)], 'features_0_2'))
    blocks, taps = arch.backbone()
    feats = []
    for i, block in enumerate(blocks, 1):
      x = MBConv(block, arch.drop_connect_rate, self.depthwise_impl, name=f'features_{i}',
                 **kw)(x, train)
      if i in taps:
        feats.append(x)

    xs = []
    for s, stage in enumerate(arch.stages):
      # Existing branches come from the previous stage, the new one from the backbone's tap.
      widths = tuple(arch.scaled(c) for c in stage.num_channels)
      inputs = xs + feats[len(xs):stage.num_branches]
      xs = [self._transition(t, w, f'trans{s + 1}_branch{b + 1}', train)
            for b, (t, w) in enumerate(zip(inputs, widths))]
      for m in range(stage.num_modules):
        last = s == len(arch.stages) - 1 and m == stage.num_modules - 1
        xs = HighResolutionModule(stage.num_blocks, widths, not last, name=f'stage{s + 2}_{m}',
                                  **kw)(xs, train)
    return self._head(xs[0], train)

  def _transition(self, x, width: int, prefix: str, train: bool):
    """prefix_0 (3x3 conv with bias) -BN (prefix_1)- ReLU."""
    unit, _ = conv_units(self, train)
    conv = BiasedConv(width, 3, self.dtype, self.conv_impl, self.folded, name=f'{prefix}_0')
    return layers.relu(unit([(conv, x)], f'{prefix}_1'))

  def _head(self, x, train: bool):
    """final_layers_0 on the stride-4 features, deconv_layers_0, final_layers_1 (HigherHRNet's)."""
    a = self.arch
    return deconv_head(self, x, train, a.final_conv_kernel, a.deconv_width,
                       a.deconv.num_basic_blocks, a.deconv.cat_output)
