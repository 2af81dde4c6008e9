"""A PyTorch EfficientHRNet written from the description of the official model, with the official
module and state_dict names (LitePose's lib/models/pose_efficient_hrnet.py; SUPERNET_SPEC.md §7.2).

Built from the official whole config (MODEL.SCALE_FACTOR / WIDTH_MULT / DEPTH_MULT / EXTRA):
  features.0                  ZeroPad2d, 3x3/2 conv, BN, Swish (keys .1 / .2)
  features.{i}.conv.*         MBConv: [ZeroPad2d-1x1-BN-Swish,] ZeroPad2d-depthwise-BN-Swish,
                              SqueezeExcitation (.se.1 / .se.3: 1x1 convs with bias), 1x1 conv, BN;
                              the ZeroPad2d of a k x k stride-s conv pads (p // 2, p - p // 2),
                              p = max(k - s, 0)
  trans{s}_branch{b}.{0,1}    3x3 conv WITH bias, BN (then ReLU)
  stage{s}.{m}.*, final_layers.*, deconv_layers.*   as HigherHRNet (torch_higherhrnet.py)
Widths: EfficientNet's make_divisible(c * WIDTH_MULT, 8) (unchanged at 1.0), block counts
ceil(n * DEPTH_MULT); HRNet / deconv widths ceil(c * 1.2455^SCALE_FACTOR).
The backbone taps are the official forward's table, keyed by the exact DEPTH_MULT (an independent
check of the port's derivation); other values are a UserError here, as they fail officially.
Drop-connect is a training regulariser and is left out (the reference runs in eval mode).

It is the independent reference of the EfficientHRNet checkpoint importer. Needs torch; the library
never imports it.
"""
from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

import torch
from torch import nn

from litepose_jax.errors import UserError
from litepose_jax.reference.torch_higherhrnet import BasicBlock
from litepose_jax.reference.torch_higherhrnet import HighResolutionModule
from litepose_jax.reference.torch_higherhrnet import count_parameters
from litepose_jax.reference.torch_higherhrnet import randomize_bn

__all__ = ['TorchEfficientHRNet', 'count_parameters', 'randomize_bn']

# EfficientNet-B0 groups: expansion, width, blocks, first stride, kernel.
B0 = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
      (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
# The official forward's feature splits: DEPTH_MULT -> end of features[0:a], [a:b], [b:c], [c:d].
OFFICIAL_SPLITS = {0.483: (3, 4, 8, 11), 0.578: (4, 6, 10, 14), 0.694: (4, 6, 12, 16),
                   0.833: (4, 6, 12, 17), 1.0: (4, 6, 12, 17), 1.1: (6, 9, 17, 24),
                   1.2: (6, 9, 17, 24), 1.4: (6, 9, 19, 27), 1.8: (7, 11, 23, 33)}


class Swish(nn.Module):
  """x * sigmoid(x)."""

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _padded_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
  """ZeroPad2d (TF 'SAME'-like), conv (no bias), BN, Swish: keys .1 (conv), .2 (BN)."""
  p = max(k - stride, 0)
  return nn.Sequential(nn.ZeroPad2d((p // 2, p - p // 2, p // 2, p - p // 2)),
                       nn.Conv2d(cin, cout, k, stride, 0, groups=groups, bias=False),
                       nn.BatchNorm2d(cout), Swish())


class SqueezeExcitation(nn.Module):
  """x * sigmoid(conv(swish(conv(mean(x))))): keys .se.1 / .se.3 (1x1 convs with bias)."""

  def __init__(self, c: int, squeeze: int):
    super().__init__()
    self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, squeeze, 1), Swish(),
                            nn.Conv2d(squeeze, c, 1), nn.Sigmoid())

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x * self.se(x)


class MBConv(nn.Module):
  """EfficientNet's MBConv (no drop-connect): keys .conv.{0..4} (.conv.{0..3} at expansion 1)."""

  def __init__(self, cin: int, cout: int, expansion: int, k: int, stride: int):
    super().__init__()
    hidden = cin * expansion
    layers: list[nn.Module] = [_padded_conv(cin, hidden, 1)] if hidden != cin else []
    layers += [_padded_conv(hidden, hidden, k, stride, hidden),
               SqueezeExcitation(hidden, max(1, int(cin / 4))),
               nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    self.conv = nn.Sequential(*layers)
    self.residual = stride == 1 and cin == cout

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x + self.conv(x) if self.residual else self.conv(x)


def _make_divisible(v: float) -> int:
  """Nearest multiple of 8, never below 90 % of v (EfficientNet's rounding)."""
  rounded = max(8, int(v + 4) // 8 * 8)
  return rounded + 8 if rounded < 0.9 * v else rounded


def _conv_bn_relu_biased(cin: int, cout: int) -> nn.Sequential:
  return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU())


class TorchEfficientHRNet(nn.Module):
  """forward(x (N, 3, H, W)) -> [(N, 2J, H/4, W/4), (N, J, H/2, W/2)]."""

  def __init__(self, cfg: Mapping[str, Any], num_joints: int = 14):
    super().__init__()
    model = cfg['MODEL']
    sf, wm, dm = model['SCALE_FACTOR'], model['WIDTH_MULT'], model['DEPTH_MULT']
    if dm not in OFFICIAL_SPLITS:
      raise UserError(f'MODEL.DEPTH_MULT: the official forward knows {sorted(OFFICIAL_SPLITS)}, '
                      f'got {dm}')
    self.splits = OFFICIAL_SPLITS[dm]

    def width(c: int) -> int:  # EfficientNet widths; the official code skips 1.0
      return c if wm == 1.0 else _make_divisible(c * wm)

    def scaled(c: int) -> int:  # HRNet and deconv widths
      return int(math.ceil(c * 1.2455 ** sf))

    cin = width(32)
    features: list[nn.Module] = [_padded_conv(3, cin, 3, 2)]
    for t, c, n, s, k in B0:
      for i in range(n if dm == 1.0 else int(math.ceil(dm * n))):
        features.append(MBConv(cin, width(c), t, k, s if i == 0 else 1))
        cin = width(c)
    self.features = nn.Sequential(*features)
    taps = [width(c) for c in (24, 40, 112, 320)]
    extra = model['EXTRA']
    pre: list[int] = []
    for s in (2, 3, 4):
      stage = extra[f'STAGE{s}']
      widths = [scaled(c) for c in stage['NUM_CHANNELS']]
      ins = pre + taps[len(pre):len(widths)]
      for b, (a, w) in enumerate(zip(ins, widths)):
        setattr(self, f'trans{s - 1}_branch{b + 1}', _conv_bn_relu_biased(a, w))
      mods = [HighResolutionModule(widths, 'BASIC', stage['NUM_BLOCKS'],
                                   s < 4 or m < stage['NUM_MODULES'] - 1)
              for m in range(stage['NUM_MODULES'])]
      setattr(self, f'stage{s}', nn.Sequential(*mods))
      pre = widths
    j, k = num_joints, extra['FINAL_CONV_KERNEL']
    deconv = extra['DECONV']
    dc = scaled(deconv['NUM_CHANNELS'][0])
    self.final_layers = nn.ModuleList([nn.Conv2d(pre[0], 2 * j, k, 1, k // 2),
                                       nn.Conv2d(dc, j, k, 1, k // 2)])
    head = [nn.Sequential(nn.ConvTranspose2d(pre[0] + 2 * j, dc, 4, 2, 1, 0, bias=False),
                          nn.BatchNorm2d(dc), nn.ReLU())]
    head += [nn.Sequential(BasicBlock(dc, dc)) for _ in range(deconv['NUM_BASIC_BLOCKS'])]
    self.deconv_layers = nn.ModuleList([nn.Sequential(*head)])

  def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
    taps, start = [], 0
    for end in self.splits:
      for i in range(start, end):
        x = self.features[i](x)
      taps.append(x)
      start = end
    ys: list[torch.Tensor] = []
    for s, stage in ((1, self.stage2), (2, self.stage3), (3, self.stage4)):
      ins = ys + taps[len(ys):s + 1]
      ys = stage([getattr(self, f'trans{s}_branch{b + 1}')(t) for b, t in enumerate(ins)])
    x = ys[0]
    y = self.final_layers[0](x)
    x = self.deconv_layers[0](torch.cat((x, y), 1))
    return [y, self.final_layers[1](x)]
