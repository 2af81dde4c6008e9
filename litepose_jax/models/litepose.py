"""The LitePose network: MobileNetV2-style backbone with large-kernel depthwise convs and the
Fusion Deconv Head (official lib/models/pose_mobilenet.py; docs/OFFICIAL.md, "Architecture").

This module is the one description of the topology. Everything else derives from it:
- training and evaluation apply it as is;
- the export applies it with `folded=True` (every BN folded into its conv, plain lax ops,
  depthwise_impl='split'), see export/fold.py;
- the PyTorch importer (torch_import.py) maps the variable tree that `init` creates, path by
  path, to the official state_dict keys;
- op counting (counting.py) intercepts its layer calls.

A weight-shared super-net (sub-nets are the first-k channels of each layer, as the official
pose_supermobilenet.py / weight_transfer.py slice them) plugs in without a copy of this code:
the super-net is this module built on the largest ArchSpec; a sampled sub-net is an ArchSpec with
smaller widths, whose variables are the super-net's sliced leaf by leaf to the shapes its own
`init` has (the leading channels of every axis; a smaller depthwise kernel takes the centred
crop), so folding, export and import work on it unchanged. Training the super-net with masks
adds one thing: a per-unit channel mask in `layers.conv_bn`, through which every conv+BN passes.
"""
from __future__ import annotations

import functools
import operator
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from litepose_jax.models import layers
from litepose_jax.models.arch import STEM_CHANNELS
from litepose_jax.models.arch import ArchSpec


class LitePose(nn.Module):
  """images [B, H, W, 3] (normalised) -> (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]).

  out4 holds J heatmaps then J associative-embedding tags; out2 holds J heatmaps.
  `fusion=False` is the plain deconv head ablation (no raw branches). depthwise_impl / conv_impl
  pick the depthwise and the dense / transposed conv implementations ('auto': best for the
  backend, see depthwise.py and layers.Conv).
  folded=True: inference with every BN folded into the conv before it, over the same variables
  (see layers.py); returns (heatmaps4, tags4, heatmaps2), the two halves of out4 computed by
  separate 1x1 convs.
  """
  arch: ArchSpec
  num_joints: int = 14
  fusion: bool = True
  depthwise_impl: str = 'auto'
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'
  folded: bool = False

  def check_input(self, x) -> None:
    """Raises a ValueError naming what is wrong with an input batch."""
    layers.check_images(x, 'LitePose', 16, 'backbone stride')

  @nn.compact
  def __call__(self, x, train: bool = False, masks=None):
    """masks: a super-net's channel masks of one sub-net (nas/supernet.py, `subnet_masks`), or
    None for the whole network."""
    self.check_input(x)
    if self.folded and train:
      raise ValueError('a folded LitePose runs inference only (train=False)')
    m = masks or {}
    y = self._stem(x, train, m)
    feats = [y]
    for si, stage in enumerate(self.arch.stages):
      for bi in range(len(stage.blocks)):
        y = self.block(si, bi)(y, train, m['blocks'][si][bi] if m else None)
      feats.append(y)
    return self._head(feats, train, m)

  @nn.nowrap  # not a flax method: called unbound, it must not become the block's parent
  def block(self, si: int, bi: int, channels: int | None = None, folded: bool | None = None,
            standalone: bool = False) -> layers.InvertedResidual:
    """Block bi of stage si as an unbound module (its variables: `stage{si}_block{bi}`).

    channels / folded: another output width / folding than this net's (a sub-net's block);
    standalone: unnamed, to be applied alone on its own variables (search/sliced.py)."""
    stage = self.arch.stages[si]
    block = stage.blocks[bi]
    name = None if standalone else f'stage{si}_block{bi}'
    return layers.InvertedResidual(
        stage.channels if channels is None else channels, stage.stride if bi == 0 else 1,
        block.kernel, block.expansion, self.depthwise_impl, self.dtype, self.conv_impl,
        self.folded if folded is None else folded, name=name)

  def _stem(self, x, train: bool, masks):
    """Stem: 3x3/2 conv (BN, ReLU6) -> dw 3x3 (BN, ReLU6) -> 1x1 (BN, linear):
    [B, H, W, 3] -> [B, H/2, W/2, input_channel]; masks: {} or the sub-net's ('stem')."""
    dt, impl, ci, folded = self.dtype, self.depthwise_impl, self.conv_impl, self.folded
    unit = functools.partial(layers.conv_bn, train=train, dtype=dt, folded=folded)
    conv = functools.partial(layers.Conv, dtype=dt, impl=ci, folded=folded)
    x = x.astype(dt)
    y = layers.relu6(unit([(conv(STEM_CHANNELS, 3, 2, name='stem_conv'), x)], 'stem_conv_bn'))
    y = layers.relu6(unit([(layers.DepthwiseConv(3, 1, impl, dt, name='stem_dw'), y)],
                          'stem_dw_bn'))
    return unit([(conv(self.arch.input_channel, 1, name='stem_pw'), y)], 'stem_pw_bn',
                mask=masks.get('stem'))

  def _head(self, feats, train: bool, masks):
    """Fusion Deconv Head over [stem, stage0..3] features -> the outputs (see the class).

    masks: {} or the sub-net's masks, of which the head reads 'deconv' and the feature masks
    'stem' and 'stages' (of its raw inputs)."""
    dt, impl, ci, folded = self.dtype, self.depthwise_impl, self.conv_impl, self.folded
    branches = ('refined', 'raw') if self.fusion else ('refined',)
    j = self.num_joints
    outputs = []
    refined = feats[-1]
    feat_masks = [masks.get('stem')] + list(masks.get('stages', [None] * len(self.arch.stages)))
    deconv_masks = masks.get('deconv', [None] * len(self.arch.deconv_setting))
    # Level i upsamples the refined path and adds the raw feature at that resolution
    # (x_list[-(i+2)]); levels 1 and 2 feed the two output heads.
    for i, ch in enumerate(self.arch.deconv_setting):
      inputs = {'refined': refined, 'raw': feats[-(i + 2)]}
      deconvs = [(layers.Deconv(ch, dt, ci, folded, name=f'deconv_{b}{i}'), inputs[b])
                 for b in branches]
      refined = layers.relu(layers.conv_bn(deconvs, f'deconv_bn{i}', train, dt, folded,
                                           deconv_masks[i]))
      if i == 0:
        continue
      out_ch = 2 * j if i == 1 else j
      # stage0 output (stride 4) for level 1, stem output for level 2.
      inputs = {'refined': refined, 'raw': feats[-(i + 3)]}
      in_masks = {'refined': deconv_masks[i], 'raw': feat_masks[-(i + 3)]}
      split = (j, j) if folded and i == 1 else ()
      heads = [layers.SepConv(out_ch, 5, impl, dt, ci, folded, name=f'final_{b}{i - 1}')(
          inputs[b], train, split, in_masks[b]) for b in branches]
      parts = zip(*[h if split else (h,) for h in heads])
      outputs.extend(functools.reduce(operator.add, p).astype(jnp.float32) for p in parts)
    return tuple(outputs)
