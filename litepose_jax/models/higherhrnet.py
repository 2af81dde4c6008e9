"""HigherHRNet (Cheng et al. 2020) as the official lib/models/pose_higher_hrnet.py builds it from a
config, with LitePose's two changes (configurable STEM_INPLANES; a branch of 0 blocks is one
3x3 conv-BN-ReLU6 placeholder): the baseline and the gradual-shrinking family of the LitePose paper.

Topology (NHWC; hrnet_arch.py describes the config):
  stem: conv1 3x3/2 (64) -BN-ReLU, conv2 3x3/2 (64) -BN-ReLU;
  layer1: 4 Bottlenecks of width STEM_INPLANES (outputs 4 x STEM_INPLANES);
  transition1, stage2, transition2, stage3, transition3, stage4: HighResolutionModules of parallel
    branches (stride 4 * 2^b) of BasicBlocks, each module ending in a SUM fusion (to branch i from
    j > i: 1x1 conv-BN + nearest upsample; from j < i: a chain of 3x3/2 conv-BN, ReLU between),
    then ReLU; the last module of stage4 outputs branch 0 only;
  head: final_layers_0 (1x1 or 3x3 conv with bias) -> out4 = J heatmaps then J tags at stride 4;
    deconv_layers_0: [features, out4] (CAT_OUTPUT) -> ConvTranspose 4x4/2 -BN-ReLU ->
    NUM_BASIC_BLOCKS BasicBlocks; final_layers_1 (conv with bias) -> out2 = J heatmaps at stride 2.
Every conv+BN goes through layers.conv_bn, so `folded=True` (BN folded, inference only), the
conv / deconv implementations, dtype and op counting (counting.py) work as for LitePose.

Variable names follow the official state_dict keys: a torch module path with each numeric index
joined to the name before it by '_' is the flax module path; a Conv2d's weight is <path>/conv/kernel
(HWIO), a ConvTranspose2d's <path>/deconv/kernel (HWIO, spatially flipped: layers.Deconv), a
BatchNorm2d's weight / bias / running_mean / running_var are params <path>/scale, <path>/bias and
batch_stats <path>/mean, <path>/var. For example
  conv1.weight                                 params/conv1/conv/kernel
  bn1.running_mean                             batch_stats/bn1/mean
  layer1.0.conv2.weight, layer1.0.downsample.1.weight
                                               params/layer1_0/conv2/conv/kernel,
                                               params/layer1_0/downsample_1/scale
  transition1.0.0.weight, transition1.1.0.1.bias
                                               params/transition1_0_0/conv/kernel,
                                               params/transition1_1_0_1/bias
  stage3.2.branches.1.3.conv1.weight           params/stage3_2/branches_1_3/conv1/conv/kernel
  stage2.0.branches.0.0.weight (0-block placeholder conv), .1.* (its BN)
                                               params/stage2_0/branches_0_0/conv/kernel,
                                               params/stage2_0/branches_0_1/scale
  stage4.0.fuse_layers.0.3.1.weight (j > i: conv 0, BN 1)
                                               params/stage4_0/fuse_layers_0_3_1/scale
  stage4.0.fuse_layers.3.0.2.0.weight (j < i: link k, conv 0 / BN 1)
                                               params/stage4_0/fuse_layers_3_0_2_0/conv/kernel
  deconv_layers.0.0.0.weight (ConvTranspose), deconv_layers.0.0.1.* (its BN)
                                               params/deconv_layers_0_0_0/deconv/kernel,
                                               params/deconv_layers_0_0_1/...
  deconv_layers.0.1.0.conv1.weight (BasicBlock 0 of the head)
                                               params/deconv_layers_0_1_0/conv1/conv/kernel
  final_layers.0.weight, final_layers.0.bias   params/final_layers_0/conv/conv/kernel,
                                               params/final_layers_0/bias  (the one exception: a
                                               biased conv holds its conv as child 'conv')
"""
from __future__ import annotations

from collections.abc import Sequence
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from litepose_jax.models import layers
from litepose_jax.models.hrnet_arch import BOTTLENECK_EXPANSION
from litepose_jax.models.hrnet_arch import LAYER1_BLOCKS
from litepose_jax.models.hrnet_arch import STEM_WIDTH

Dtype = Any


def conv_units(module: nn.Module, train: bool):
  """(conv_bn unit, Conv factory) bound to a module's dtype / conv_impl / folded fields."""
  unit = functools.partial(layers.conv_bn, train=train, dtype=module.dtype, folded=module.folded)
  conv = functools.partial(layers.Conv, dtype=module.dtype, impl=module.conv_impl,
                           folded=module.folded)
  return unit, conv


class Upsample(nn.Module):
  """Nearest-neighbour upsampling by a power of 2: [B, H, W, C] -> [B, fH, fW, C].

  A module so that op counting sees it (old ptflops counts nn.Upsample's output elements).
  Computed as doublings, each two concatenations of a tensor with itself + reshapes: exact, and
  ops that the TFLite XNNPACK delegate takes (BROADCAST_TO, the plain formulation, is not, and
  would cut the graph into several delegate partitions).
  """
  factor: int

  def __call__(self, x):
    f = self.factor
    if f < 1 or f & (f - 1):
      raise ValueError(f'Upsample factor must be a power of 2, got {f}')
    while f > 1:
      b, h, w, c = x.shape
      # [.., w, c] twice along channels is [.., 2w, c] with every column repeated.
      x = jnp.concatenate([x, x], axis=-1).reshape(b, h, 1, 2 * w * c)
      # Then every row twice.
      x = jnp.concatenate([x, x], axis=2).reshape(b, 2 * h, 2 * w, c)
      f //= 2
    return x


class BiasConv(nn.Module):
  """k x k conv (stride 1, padding k//2) with a bias: the official final_layers (nn.Conv2d's
  default bias=True). [B, H, W, Cin] -> [B, H, W, features].

  folded: the bias is added by the conv (layers.Conv's fold hook), and `split` returns one tensor
  per group of output channels (heatmaps and tags without a slice op).
  """
  features: int
  kernel_size: int = 1
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, split: Sequence[int] = ()):
    conv = layers.Conv(self.features, self.kernel_size, dtype=self.dtype, impl=self.conv_impl,
                       folded=self.folded, name='conv')
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    if self.folded:
      return conv(x, fold=lambda kernel: (kernel, bias), split=split)
    if split:
      raise ValueError('BiasConv: split applies to folded=True only')
    return conv(x) + bias.astype(self.dtype)


class BasicBlock(nn.Module):
  """conv3x3-BN-ReLU, conv3x3-BN, + input, ReLU (width unchanged): [B,H,W,C] -> [B,H,W,C]."""
  features: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    if x.shape[-1] != self.features:
      raise ValueError(f'BasicBlock of width {self.features} got {x.shape[-1]} channels')
    unit, conv = conv_units(self, train)
    y = layers.relu(unit([(conv(self.features, 3, name='conv1'), x)], 'bn1'))
    y = unit([(conv(self.features, 3, name='conv2'), y)], 'bn2')
    return layers.relu(y + x)


class Bottleneck(nn.Module):
  """1x1 (planes) -BN-ReLU, 3x3 -BN-ReLU, 1x1 (4 planes) -BN, + input (through a 1x1 conv-BN
  `downsample` when the width changes), ReLU: [B,H,W,Cin] -> [B,H,W,4 planes]."""
  planes: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    unit, conv = conv_units(self, train)
    out = self.planes * BOTTLENECK_EXPANSION
    y = layers.relu(unit([(conv(self.planes, 1, name='conv1'), x)], 'bn1'))
    y = layers.relu(unit([(conv(self.planes, 3, name='conv2'), y)], 'bn2'))
    y = unit([(conv(out, 1, name='conv3'), y)], 'bn3')
    residual = x
    if x.shape[-1] != out:
      residual = unit([(conv(out, 1, name='downsample_0'), x)], 'downsample_1')
    return layers.relu(y + residual)


class HighResolutionModule(nn.Module):
  """Parallel branches of BasicBlocks, then the SUM fusion of every branch into every output
  branch (only branch 0 when not multi_scale_output): list of [B, H/2^b, W/2^b, C_b] -> list."""
  num_blocks: tuple[int, ...]
  num_channels: tuple[int, ...]
  multi_scale_output: bool = True
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  @nn.compact
  def __call__(self, xs: Sequence[Any], train: bool):
    unit, conv = conv_units(self, train)
    block = functools.partial(BasicBlock, dtype=self.dtype, conv_impl=self.conv_impl,
                              folded=self.folded)
    chans = self.num_channels
    xs = list(xs)
    for b, (n, c) in enumerate(zip(self.num_blocks, chans)):
      if n == 0:
        # LitePose's change: an emptied branch keeps one conv so that fusion gets a feature.
        xs[b] = layers.relu6(unit([(conv(c, 3, name=f'branches_{b}_0'), xs[b])],
                                  f'branches_{b}_1'))
      for k in range(n):
        xs[b] = block(c, name=f'branches_{b}_{k}')(xs[b], train)
    if len(xs) == 1:
      return xs
    fused = []
    for i in range(len(xs) if self.multi_scale_output else 1):
      y = None
      for j, x in enumerate(xs):
        if j > i:
          t = unit([(conv(chans[i], 1, name=f'fuse_layers_{i}_{j}_0'), x)],
                   f'fuse_layers_{i}_{j}_1')
          t = Upsample(2 ** (j - i))(t)
        elif j < i:
          t = x
          for k in range(i - j):
            last = k == i - j - 1
            t = unit([(conv(chans[i] if last else chans[j], 3, 2,
                            name=f'fuse_layers_{i}_{j}_{k}_0'), t)], f'fuse_layers_{i}_{j}_{k}_1')
            if not last:
              t = layers.relu(t)
        else:
          t = x
        y = t if y is None else y + t
      fused.append(layers.relu(y))
    return fused


class HRNetFamily(nn.Module):
  """What the nets with HigherHRNet's head share: the model fields every exporter / importer
  reads, the input check and the inference-only rule of folded mode. Subclasses set `family`
  (the name errors use) and give `arch` a spec with .name and .input_multiple."""
  arch: Any
  num_joints: int = 14
  depthwise_impl: str = 'auto'
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False
  family = 'HRNet'  # not a field: no annotation

  @property
  def fusion(self) -> bool:
    """Always True: the head is the one MODEL.EXTRA.DECONV describes (LitePose's plain-head
    ablation, fusion=False, does not apply to these families)."""
    return True

  def check_input(self, x) -> None:
    """Raises a ValueError naming what is wrong with an input batch."""
    layers.check_images(x, f'{self.family} {self.arch.name}', self.arch.input_multiple,
                        'stride of its lowest-resolution branch')

  def _begin(self, x, train: bool):
    """The checked input batch [B, H, W, 3] in the compute dtype."""
    self.check_input(x)
    if self.folded and train:
      raise ValueError(f'a folded {self.family} runs inference only (train=False)')
    return x.astype(self.dtype)


class HigherHRNet(HRNetFamily):
  """images [B, H, W, 3] (normalised) -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]).

  arch: an HRNetSpec. out4 holds J heatmaps then J associative-embedding tags; out2 holds J
  heatmaps (the official WITH_AE_LOSS [True, False], TAG_PER_JOINT True). H and W must be
  multiples of `arch.input_multiple` (32 with four branches).
  folded=True: inference with every BN folded into the conv before it, over the same variables;
  returns (heatmaps4, tags4, heatmaps2). depthwise_impl is unused (no depthwise convs) and kept
  so that code handling any model (export/fold.py) can clone it alike.
  """
  family = 'HigherHRNet'

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self._begin(x, train)
    unit, conv = conv_units(self, train)
    kw = {'dtype': self.dtype, 'conv_impl': self.conv_impl, 'folded': self.folded}
    arch = self.arch
    y = layers.relu(unit([(conv(STEM_WIDTH, 3, 2, name='conv1'), x)], 'bn1'))
    y = layers.relu(unit([(conv(STEM_WIDTH, 3, 2, name='conv2'), y)], 'bn2'))
    for i in range(LAYER1_BLOCKS):
      y = Bottleneck(arch.stem_inplanes, name=f'layer1_{i}', **kw)(y, train)

    xs, widths = [y], (arch.stem_inplanes * BOTTLENECK_EXPANSION,)
    for s, stage in enumerate(arch.stages):
      xs = self._transition(xs, widths, stage.num_channels, f'transition{s + 1}', train)
      for m in range(stage.num_modules):
        last = s == len(arch.stages) - 1 and m == stage.num_modules - 1
        xs = HighResolutionModule(stage.num_blocks, stage.num_channels, not last,
                                  name=f'stage{s + 2}_{m}', **kw)(xs, train)
      widths = stage.num_channels
    return self._head(xs[0], train)

  def _transition(self, xs, pre: Sequence[int], cur: Sequence[int], prefix: str, train: bool):
    """transitionN: existing branches pass (or get a 3x3 conv-BN-ReLU if their width changes,
    which the spec allows only into stage 2); each new branch is a chain of 3x3/2 conv-BN-ReLU
    from the last existing one."""
    unit, conv = conv_units(self, train)
    out = []
    for i, c in enumerate(cur):
      if i < len(pre):
        x = xs[i]
        if c != pre[i]:
          x = layers.relu(unit([(conv(c, 3, name=f'{prefix}_{i}_0'), x)], f'{prefix}_{i}_1'))
      else:
        x = xs[-1]
        links = i + 1 - len(pre)
        for k in range(links):
          width = c if k == links - 1 else pre[-1]
          x = layers.relu(unit([(conv(width, 3, 2, name=f'{prefix}_{i}_{k}_0'), x)],
                               f'{prefix}_{i}_{k}_1'))
      out.append(x)
    return out

  def _head(self, x, train: bool):
    """final_layers_0 on the stride-4 features, deconv_layers_0, final_layers_1 (see the module)."""
    d = self.arch.deconv
    return deconv_head(self, x, train, self.arch.final_conv_kernel, d.num_channels,
                       d.num_basic_blocks, d.cat_output)


def deconv_head(net: nn.Module, x, train: bool, final_conv_kernel: int, width: int,
                num_basic_blocks: int, cat_output: bool):
  """HigherHRNet's head inside `net`'s compact call (the family's num_joints, dtype, conv_impl,
  folded): stride-4 features [B, H/4, W/4, C] -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]),
  or (heatmaps4, tags4, heatmaps2) when folded."""
  j, dt = net.num_joints, net.dtype
  kw = {'dtype': dt, 'conv_impl': net.conv_impl, 'folded': net.folded}
  final0 = BiasConv(2 * j, final_conv_kernel, name='final_layers_0', **kw)
  parts = list(final0(x, split=(j, j))) if net.folded else [final0(x)]
  if cat_output:
    x = jnp.concatenate([x] + [p.astype(dt) for p in parts], axis=-1)
  y = layers.relu(layers.conv_bn(
      [(layers.Deconv(width, dt, net.conv_impl, net.folded, name='deconv_layers_0_0_0'), x)],
      'deconv_layers_0_0_1', train, dt, net.folded))
  for b in range(num_basic_blocks):
    y = BasicBlock(width, name=f'deconv_layers_0_{b + 1}_0', **kw)(y, train)
  out2 = BiasConv(j, final_conv_kernel, name='final_layers_1', **kw)(y)
  return tuple(p.astype(jnp.float32) for p in parts) + (out2.astype(jnp.float32),)
