"""The LitePose network: MobileNetV2-style backbone with large-kernel depthwise convs and the
Fusion Deconv Head (spec 1.3-1.6)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from litepose_jax.models import layers
from litepose_jax.models.arch import ArchSpec, STEM_CHANNELS


class LitePose(nn.Module):
  """images [B, H, W, 3] (normalised) -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]).

  out4 holds J heatmaps then J associative-embedding tags; out2 holds J heatmaps.
  `fusion=False` is the plain deconv head ablation (no raw branches). depthwise_impl / conv_impl
  pick the depthwise and the dense / transposed conv implementations ('auto': best for the
  backend, see depthwise.py and layers.Conv).
  """
  arch: ArchSpec
  num_joints: int = 14
  fusion: bool = True
  depthwise_impl: str = 'auto'
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'

  def check_input(self, x) -> None:
    """Raises a ValueError naming what is wrong with an input batch."""
    if x.ndim != 4:
      raise ValueError(f'LitePose expects images of shape [B, H, W, 3], got shape {x.shape}')
    if x.shape[-1] != 3:
      raise ValueError(f'LitePose expects 3 channels (RGB, NHWC), got {x.shape[-1]} in shape '
                       f'{x.shape}; channels-first input must be transposed to NHWC')
    h, w = x.shape[1:3]
    if h % 16 or w % 16:
      raise ValueError(f'LitePose input height and width must be multiples of 16 (backbone '
                       f'stride), got {h}x{w}')

  @nn.compact
  def __call__(self, x, train: bool = False):
    self.check_input(x)
    dt, impl, ci = self.dtype, self.depthwise_impl, self.conv_impl
    bn = lambda name: layers.batch_norm(train, dt, name)
    x = x.astype(dt)

    # Stem: 3x3/2 conv (BN, ReLU6) -> dw 3x3 (BN, ReLU6) -> 1x1 (BN, linear).
    y = layers.relu6(bn('stem_conv_bn')(layers.Conv(STEM_CHANNELS, 3, 2, dt, ci, name='stem_conv')(x)))
    y = layers.relu6(bn('stem_dw_bn')(layers.DepthwiseConv(3, 1, impl, dt, name='stem_dw')(y)))
    y = bn('stem_pw_bn')(layers.Conv(self.arch.input_channel, 1, dtype=dt, impl=ci, name='stem_pw')(y))
    feats = [y]
    for si, stage in enumerate(self.arch.stages):
      for bi, block in enumerate(stage.blocks):
        y = layers.InvertedResidual(stage.channels, stage.stride if bi == 0 else 1, block.kernel,
                                    block.expansion, impl, dt, ci,
                                    name=f'stage{si}_block{bi}')(y, train)
      feats.append(y)

    # Fusion Deconv Head: level i upsamples the refined path and adds the raw feature at that
    # resolution (x_list[-(i+2)]); levels 1 and 2 feed the two output heads.
    j = self.num_joints
    outputs = []
    refined = feats[-1]
    for i, ch in enumerate(self.arch.deconv_setting):
      raw = feats[-(i + 2)]
      up = layers.Deconv(ch, dt, ci, name=f'deconv_refined{i}')(refined)
      if self.fusion:
        up = up + layers.Deconv(ch, dt, ci, name=f'deconv_raw{i}')(raw)
      refined = layers.relu(bn(f'deconv_bn{i}')(up))
      if i == 0:
        continue
      out_ch = 2 * j if i == 1 else j
      skip = feats[-(i + 3)]  # stage0 output (stride 4) for level 1, stem output for level 2
      out = layers.SepConv(out_ch, 5, impl, dt, ci, name=f'final_refined{i - 1}')(refined, train)
      if self.fusion:
        out = out + layers.SepConv(out_ch, 5, impl, dt, ci, name=f'final_raw{i - 1}')(skip, train)
      outputs.append(out.astype(jnp.float32))
    return tuple(outputs)
