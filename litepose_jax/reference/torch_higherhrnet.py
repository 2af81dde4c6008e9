"""A PyTorch HigherHRNet written from the description of the official model, with the official
module and state_dict names (LitePose's lib/models/pose_higher_hrnet.py; SUPERNET_SPEC.md §7,
LITEPOSE_SPEC.md §8).

Built from the official yaml's MODEL.EXTRA dict: a stem of two 3x3/2 conv-BN-ReLU (64 channels,
as in the official code whatever STEM_INPLANES says), layer1 of 4 Bottlenecks of width
STEM_INPLANES (x4 out; LitePose made it configurable, the original HigherHRNet has 64), stages
2-4 of HighResolutionModules (BasicBlocks, SUM fusion), transitions, `final_layers` (conv with
bias) and the deconv head. LitePose's change: a branch with NUM_BLOCKS 0 is one conv3x3-BN-ReLU6.

state_dict key families (every one checked against the official file):
  conv1, bn1, conv2, bn2                          stem
  layer1.{i}.{conv1..3,bn1..3}, layer1.0.downsample.{0,1}   (downsample only when 64 != 4 x STEM)
  transition{s}.{b}.{0,1}                         width change of an existing branch
  transition{s}.{b}.{k}.{0,1}                     new branch: chain of 3x3/2 conv-BN-ReLU
  stage{s}.{m}.branches.{b}.{i}.{conv1,bn1,conv2,bn2[,downsample.{0,1}]}   BasicBlocks
  stage{s}.{m}.branches.{b}.{0,1}                 0-block branch: conv3x3-BN(-ReLU6)
  stage{s}.{m}.fuse_layers.{i}.{j}.{0,1}          j > i: 1x1 conv-BN (+ nearest upsample)
  stage{s}.{m}.fuse_layers.{i}.{j}.{k}.{0,1}      j < i: chain of 3x3/2 conv-BN(-ReLU)
  final_layers.{d}.{weight,bias}                  d = 0: stride 4 (2J), d >= 1: after deconv d-1
  deconv_layers.{d}.0.{0,1}                       ConvTranspose2d, BN (then ReLU)
  deconv_layers.{d}.{1+n}.0.{conv1,bn1,conv2,bn2} BasicBlocks (each wrapped in a Sequential)
The last module of stage 4 keeps only fuse_layers.0 (multi_scale_output=False).

Outputs follow the LitePose / HigherHRNet CrowdPose configs (TAG_PER_JOINT True, WITH_AE_LOSS
[True, False, ...]): [(N, 2J, H/4, W/4), (N, J, H/2, W/2), ...], one per deconv after the first.

It is the independent reference of the HigherHRNet checkpoint importer and the PyTorch baseline of
the benchmarks. Needs torch; the library never imports it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from litepose_jax.errors import UserError
from litepose_jax.reference.torch_litepose import randomize_bn

# The official stem always has 64 channels; STEM_INPLANES is layer1's Bottleneck width.
STEM_CHANNELS = 64
BOTTLENECK_EXPANSION = 4
BLOCK_EXPANSION = {'BASIC': 1, 'BOTTLENECK': BOTTLENECK_EXPANSION}
# Official _get_deconv_cfg: ConvTranspose2d kernel -> (padding, output_padding), all stride 2.
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}

__all__ = ['TorchHigherHRNet', 'randomize_bn', 'count_parameters']


def conv_bn(cin: int, cout: int, k: int, stride: int, act: nn.Module | None) -> nn.Sequential:
  """Conv (no bias, 'same' padding k // 2) -> BN [-> act]: official keys .0 / .1."""
  mods: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                           nn.BatchNorm2d(cout)]
  if act is not None:
    mods.append(act)
  return nn.Sequential(*mods)


class BasicBlock(nn.Module):
  """Two 3x3 conv-BN with a residual (1x1 conv-BN `downsample` when widths differ), then ReLU."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.downsample = conv_bn(cin, cout, 1, 1, None) if cin != cout else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
    shortcut = x if self.downsample is None else self.downsample(x)
    return torch.relu(y + shortcut)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 -> 1x1 (x4 width) conv-BN with a residual (`downsample` when widths differ)."""

  def __init__(self, cin: int, planes: int):
    super().__init__()
    cout = planes * BOTTLENECK_EXPANSION
    self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(cout)
    self.downsample = conv_bn(cin, cout, 1, 1, None) if cin != cout else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = torch.relu(self.bn1(self.conv1(x)))
    y = torch.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.downsample is None else self.downsample(x)
    return torch.relu(y + shortcut)


def _blocks(kind: str, cin: int, width: int, n: int) -> tuple[nn.Sequential, int]:
  """n residual blocks of `kind` ('BASIC' / 'BOTTLENECK') -> (Sequential, output width)."""
  layers = []
  for _ in range(n):
    block = BasicBlock(cin, width) if kind == 'BASIC' else Bottleneck(cin, width)
    layers.append(block)
    cin = width * BLOCK_EXPANSION[kind]
  return nn.Sequential(*layers), cin


class _Upsample(nn.Module):
  """Nearest upsampling by an integer factor (official nn.Upsample: no parameters)."""

  def __init__(self, factor: int):
    super().__init__()
    self.factor = factor

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.interpolate(x, scale_factor=self.factor, mode='nearest')


def _down_chain(cin: int, cout: int, steps: int) -> nn.Sequential:
  """`steps` 3x3/2 conv-BN: all but the last keep width `cin` and end in ReLU (fusion j < i)."""
  chain = [conv_bn(cin, cin, 3, 2, nn.ReLU()) for _ in range(steps - 1)]
  chain.append(conv_bn(cin, cout, 3, 2, None))
  return nn.Sequential(*chain)


class HighResolutionModule(nn.Module):
  """Parallel branches, then SUM fusion of every branch into each output resolution + ReLU."""

  def __init__(self, widths: Sequence[int], kind: str, num_blocks: Sequence[int],
               multi_scale_output: bool):
    super().__init__()
    branches = []
    out_widths = []
    for cin, width, n in zip(widths, widths, num_blocks):
      if n == 0:
        # LitePose's placeholder: the emptied branch still refines its feature before fusion.
        branches.append(conv_bn(cin, width, 3, 1, nn.ReLU6()))
        out_widths.append(width)
      else:
        seq, cout = _blocks(kind, cin, width // BLOCK_EXPANSION[kind], n)
        branches.append(seq)
        out_widths.append(cout)
    self.branches = nn.ModuleList(branches)
    self.out_widths = out_widths
    nb = len(widths)
    self.fuse_layers = None
    if nb > 1:
      fuse = []
      for i in range(nb if multi_scale_output else 1):
        row: list[nn.Module | None] = []
        for j in range(nb):
          if j > i:
            row.append(nn.Sequential(nn.Conv2d(out_widths[j], out_widths[i], 1, bias=False),
                                     nn.BatchNorm2d(out_widths[i]), _Upsample(2 ** (j - i))))
          elif j == i:
            row.append(None)
          else:
            row.append(_down_chain(out_widths[j], out_widths[i], i - j))
        fuse.append(nn.ModuleList(row))
      self.fuse_layers = nn.ModuleList(fuse)

  def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    xs = [branch(x) for branch, x in zip(self.branches, xs)]
    if self.fuse_layers is None:
      return xs
    out = []
    for i, row in enumerate(self.fuse_layers):
      y = xs[i]
      for j, layer in enumerate(row):
        if j != i:
          y = y + layer(xs[j])
      out.append(torch.relu(y))
    return out


def _stage_cfg(extra: Mapping[str, Any], name: str) -> tuple[int, str, list[int], list[int]]:
  """(NUM_MODULES, BLOCK, NUM_BLOCKS, NUM_CHANNELS x expansion) of EXTRA[name], checked."""
  if name not in extra:
    raise UserError(f'MODEL.EXTRA.{name}: missing')
  cfg = extra[name]
  kind = cfg['BLOCK']
  if kind not in BLOCK_EXPANSION:
    raise UserError(f'MODEL.EXTRA.{name}.BLOCK: expected one of {sorted(BLOCK_EXPANSION)}, got '
                    f'{kind!r}')
  if cfg.get('FUSE_METHOD', 'SUM') != 'SUM':
    raise UserError(f'MODEL.EXTRA.{name}.FUSE_METHOD: only SUM exists, got {cfg["FUSE_METHOD"]!r}')
  blocks, chans = list(cfg['NUM_BLOCKS']), list(cfg['NUM_CHANNELS'])
  if not len(blocks) == len(chans) == cfg['NUM_BRANCHES']:
    raise UserError(f'MODEL.EXTRA.{name}: NUM_BRANCHES {cfg["NUM_BRANCHES"]}, NUM_BLOCKS {blocks} '
                    f'and NUM_CHANNELS {chans} disagree')
  if kind != 'BASIC' and 0 in blocks:
    # Official quirk: the placeholder outputs NUM_CHANNELS but the fusion expects x4 width.
    raise UserError(f'MODEL.EXTRA.{name}: a 0-block branch needs BLOCK BASIC')
  return cfg['NUM_MODULES'], kind, blocks, [c * BLOCK_EXPANSION[kind] for c in chans]


class TorchHigherHRNet(nn.Module):
  """HigherHRNet from MODEL.EXTRA. forward(x (N,3,H,W)) -> [(N,2J,H/4,W/4), (N,J,H/2,W/2), ...]."""

  def __init__(self, extra: Mapping[str, Any], num_joints: int = 14):
    super().__init__()
    j = num_joints
    stem = extra.get('STEM_INPLANES', 64)  # absent from the original HigherHRNet yamls: 64
    self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
    self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, 2, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
    layer1 = [Bottleneck(STEM_CHANNELS, stem)] + [
        Bottleneck(stem * BOTTLENECK_EXPANSION, stem) for _ in range(3)]
    self.layer1 = nn.Sequential(*layer1)
    pre = [stem * BOTTLENECK_EXPANSION]
    self.num_branches = []
    for s in (2, 3, 4):
      modules, kind, blocks, widths = _stage_cfg(extra, f'STAGE{s}')
      if s > 2 and widths[:len(pre)] != pre:
        # The official forward feeds such a transition the lowest-resolution feature (a crash).
        raise UserError(f'MODEL.EXTRA.STAGE{s}.NUM_CHANNELS {widths}: existing branches must keep '
                        f'their widths {pre}')
      setattr(self, f'transition{s - 1}', self._transition(pre, widths))
      mods = [HighResolutionModule(widths, kind, blocks, s < 4 or m < modules - 1)
              for m in range(modules)]
      setattr(self, f'stage{s}', nn.Sequential(*mods))
      pre = mods[-1].out_widths
      self.num_branches.append(len(widths))
    deconv = extra['DECONV']
    kernel = extra.get('FINAL_CONV_KERNEL', 1)
    with_ae = [True] + [False] * deconv['NUM_DECONVS']
    outs = [j + j if ae else j for ae in with_ae]
    finals = [nn.Conv2d(pre[0], outs[0], kernel, 1, kernel // 2)]
    deconvs = []
    cin = pre[0]
    for d in range(deconv['NUM_DECONVS']):
      if deconv['CAT_OUTPUT'][d]:
        cin += outs[d]
      cout = deconv['NUM_CHANNELS'][d]
      k = deconv['KERNEL_SIZE'][d]
      if k not in DECONV_PADDING:
        raise UserError(f'MODEL.EXTRA.DECONV.KERNEL_SIZE: expected one of '
                        f'{sorted(DECONV_PADDING)}, got {k}')
      pad, out_pad = DECONV_PADDING[k]
      layers = [nn.Sequential(nn.ConvTranspose2d(cin, cout, k, 2, pad, out_pad, bias=False),
                              nn.BatchNorm2d(cout), nn.ReLU())]
      layers += [nn.Sequential(BasicBlock(cout, cout)) for _ in range(deconv['NUM_BASIC_BLOCKS'])]
      deconvs.append(nn.Sequential(*layers))
      finals.append(nn.Conv2d(cout, outs[d + 1], kernel, 1, kernel // 2))
      cin = cout
    self.final_layers = nn.ModuleList(finals)
    self.deconv_layers = nn.ModuleList(deconvs)
    self.cat_output = list(deconv['CAT_OUTPUT'])

  @staticmethod
  def _transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Per new-stage branch: None (same width), conv3x3-BN-ReLU (width change), or a chain of
    3x3/2 conv-BN-ReLU from the lowest-resolution branch (new branch)."""
    layers: list[nn.Module | None] = []
    for i, width in enumerate(cur):
      if i < len(pre):
        layers.append(None if width == pre[i] else conv_bn(pre[i], width, 3, 1, nn.ReLU()))
      else:
        steps = i + 1 - len(pre)
        layers.append(nn.Sequential(*[
            conv_bn(pre[-1], width if k == steps - 1 else pre[-1], 3, 2, nn.ReLU())
            for k in range(steps)]))
    return nn.ModuleList(layers)

  def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
    x = torch.relu(self.bn1(self.conv1(x)))
    x = torch.relu(self.bn2(self.conv2(x)))
    ys = [self.layer1(x)]
    for s, n in zip((2, 3, 4), self.num_branches):
      transition = getattr(self, f'transition{s - 1}')
      xs = []
      for i in range(n):
        if transition[i] is None:
          xs.append(ys[i])
        else:
          # Width changes only occur in transition1 (single input); new branches grow from the
          # lowest-resolution feature.
          xs.append(transition[i](ys[min(i, len(ys) - 1)]))
      ys = getattr(self, f'stage{s}')(xs)
    x = ys[0]
    y = self.final_layers[0](x)
    outputs = [y]
    for d, layer in enumerate(self.deconv_layers):
      if self.cat_output[d]:
        x = torch.cat((x, y), 1)
      x = layer(x)
      y = self.final_layers[d + 1](x)
      outputs.append(y)
    return outputs


def count_parameters(model: nn.Module) -> int:
  """Number of trainable parameters (BN running statistics excluded), as the official counts."""
  return sum(p.numel() for p in model.parameters())
