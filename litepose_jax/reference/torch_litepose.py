"""A PyTorch LitePose written from the description of the official model (docs/OFFICIAL.md,
"Architecture"), with the official module and state_dict names (official
lib/models/pose_mobilenet.py).

It is the independent reference for the checkpoint importer (a random-weight instance gives a
state_dict in the official layout, and its outputs are what the imported Flax model must match)
and the same-machine PyTorch baseline of scripts/bench_model.py. Needs torch; the library never
imports it.
"""
import torch
from torch import nn


def make_divisible(v, divisor=8):
  new = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new < 0.9 * v:
    new += divisor
  return new


def conv_bn(cin, cout, k, stride, groups=1, act=True):
  mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
  if act:
    mods.append(nn.ReLU6())
  return nn.Sequential(*mods)


class InvBottleneck(nn.Module):

  def __init__(self, cin, cout, stride, k, t):
    super().__init__()
    hidden = make_divisible(round(cin * t), 8)
    self.inv = conv_bn(cin, hidden, 1, 1)
    self.depth_conv = conv_bn(hidden, hidden, k, stride, groups=hidden)
    self.point_conv = conv_bn(hidden, cout, 1, 1, act=False)
    self.residual = stride == 1 and cin == cout

  def forward(self, x):
    y = self.point_conv(self.depth_conv(self.inv(x)))
    return x + y if self.residual else y


class SepConv2d(nn.Module):

  def __init__(self, cin, cout, k=5):
    super().__init__()
    self.conv = nn.Sequential(
        nn.Conv2d(cin, cin, k, 1, k // 2, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False))

  def forward(self, x):
    return self.conv(x)


class TorchLitePose(nn.Module):
  """cfg: the official architecture JSON dict. Returns [out4 (N,2J,H/4,W/4), out2 (N,J,H/2,W/2)]."""

  def __init__(self, cfg, num_joints=14):
    super().__init__()
    c0 = make_divisible(cfg['input_channel'])
    self.first = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3, 1, groups=32),
                               nn.Conv2d(32, c0, 1, bias=False), nn.BatchNorm2d(c0))
    chans = [c0]
    stages = []
    cin = c0
    for st in cfg['backbone_setting']:
      cout = make_divisible(st['channel'])
      blocks = []
      for bi, (t, k) in enumerate(st['block_setting']):
        blocks.append(InvBottleneck(cin, cout, st['stride'] if bi == 0 else 1, k, t))
        cin = cout
      stages.append(nn.Sequential(*blocks))
      chans.append(cout)
    self.stage = nn.ModuleList(stages)
    deconv = cfg['deconv_setting']
    self.deconv_refined = nn.ModuleList()
    self.deconv_raw = nn.ModuleList()
    self.deconv_bnrelu = nn.ModuleList()
    refined_in = chans[-1]
    for i, f in enumerate(deconv):
      raw_in = chans[-(i + 2)]
      self.deconv_refined.append(nn.ConvTranspose2d(refined_in, f, 4, 2, 1, 0, bias=False))
      self.deconv_raw.append(nn.ConvTranspose2d(raw_in, f, 4, 2, 1, 0, bias=False))
      self.deconv_bnrelu.append(nn.Sequential(nn.BatchNorm2d(f), nn.ReLU()))
      refined_in = f
    j = num_joints
    self.final_refined = nn.ModuleList([SepConv2d(deconv[1], 2 * j), SepConv2d(deconv[2], j)])
    self.final_raw = nn.ModuleList([SepConv2d(chans[1], 2 * j), SepConv2d(chans[0], j)])

  def forward(self, x):
    feats = [self.first(x)]
    for st in self.stage:
      feats.append(st(feats[-1]))
    outputs = []
    y = feats[-1]
    for i in range(3):
      y = self.deconv_bnrelu[i](self.deconv_refined[i](y) + self.deconv_raw[i](feats[-(i + 2)]))
      if i > 0:
        outputs.append(self.final_refined[i - 1](y) + self.final_raw[i - 1](feats[-(i + 3)]))
    return outputs


def randomize_bn(model, seed=0):
  """Non-trivial BN statistics and affine parameters, so BN conversion errors show."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, nn.BatchNorm2d):
        n = m.num_features
        m.weight.copy_(torch.rand(n, generator=g) + 0.5)
        m.bias.copy_(torch.randn(n, generator=g) * 0.1)
        m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
        m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        m.num_batches_tracked.fill_(7)
  return model
