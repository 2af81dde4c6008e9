"""A PyTorch LitePose super-net written from the description of the official one
(SUPERNET_SPEC.md section 2), with the official module and state_dict names (official
lib/models/pose_supermobilenet.py, lib/models/layers/super_layers.py).

It is the independent reference for the super-net importer: a random-weight instance gives a
state_dict in the official layout, and its sliced forward of a sub-net is what the imported Flax
super-net (masked) and the extracted standalone sub-net must both compute. Differences from the
official module: the architecture is an argument of `forward` instead of an ArchManager draw, the
transposed convs call `F.conv_transpose2d` directly (the official `_output_padding` call fails on
current PyTorch; output_padding is 0 anyway), and depthwise kernels other than 7x7 (the unused
kernel transforms) are refused. Needs torch; the library never imports it.
"""
from torch import nn
from torch.nn import functional as F

from litepose_jax.reference.torch_litepose import conv_bn
from litepose_jax.reference.torch_litepose import randomize_bn  # re-exported for tests

OFFICIAL_DEPTHS = (6, 8, 10, 10)
OFFICIAL_STRIDES = (2, 2, 2, 1)
MAX_KERNEL = 7
MAX_EXPANSION = 6


class SuperConv2d(nn.Conv2d):
  """1x1 conv (no bias) whose weight is sliced to [:out, :in], in = the input's channel count."""

  def forward(self, x, out_channels):  # pylint: disable=arguments-differ
    return F.conv2d(x, self.weight[:out_channels, :x.size(1)], None, self.stride, self.padding)


class SuperBatchNorm2d(nn.BatchNorm2d):
  """One BatchNorm shared by every width: buffers and affine parameters sliced to [:C].

  In training mode the running statistics of the first C channels are updated in place (the
  slices are views); num_batches_tracked never moves (functional call), as in the official one.
  """

  def forward(self, x):
    c = x.size(1)
    return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                        self.bias[:c], self.training, self.momentum, self.eps)


class SuperConvTranspose2d(nn.ConvTranspose2d):
  """Kernel-4, stride-2, padding-1 transposed conv, weight (IOHW) sliced to [:in, :out]."""

  def forward(self, x, out_channels):  # pylint: disable=arguments-differ
    return F.conv_transpose2d(x, self.weight[:x.size(1), :out_channels], None, self.stride,
                              self.padding)


class SuperInvBottleneck(nn.Module):
  """Inverted residual at its largest (hidden = round(in * 6), 7x7 depthwise); runs any
  expansion t <= 6 and output width <= its own by first-k slicing."""

  def __init__(self, cin, cout, stride, residual):
    super().__init__()
    hidden = round(cin * MAX_EXPANSION)
    self.inv = nn.Sequential(SuperConv2d(cin, hidden, 1, bias=False), SuperBatchNorm2d(hidden),
                             nn.ReLU6())
    self.depth_conv = nn.Sequential(
        nn.Conv2d(hidden, hidden, MAX_KERNEL, stride, MAX_KERNEL // 2, groups=hidden, bias=False),
        SuperBatchNorm2d(hidden), nn.ReLU6())
    self.point_conv = nn.Sequential(SuperConv2d(hidden, cout, 1, bias=False),
                                    SuperBatchNorm2d(cout))
    # Kernel transforms of the 5x5 / 3x3 centre crops (official names). The space only has k = 7,
    # so they are dead weight kept for the state_dict layout.
    self.Linear5x5 = nn.Linear(25, 25)  # pylint: disable=invalid-name
    self.Linear3x3 = nn.Linear(9, 9)  # pylint: disable=invalid-name
    self.stride = stride
    # Decided by position (not the first block of a stage), like the official max-width rule.
    self.residual = residual

  def forward(self, x, cout, t, k):
    if k != MAX_KERNEL:
      raise ValueError(f'kernel {k}: only {MAX_KERNEL}x{MAX_KERNEL} blocks are implemented (the '
                       'kernel transforms of smaller kernels are not)')
    if t > MAX_EXPANSION:
      raise ValueError(f'expansion {t} > the super-net\'s {MAX_EXPANSION}')
    hidden = round(x.size(1) * t)
    y = self.inv[2](self.inv[1](self.inv[0](x, hidden)))
    dw = self.depth_conv[0]
    y = F.conv2d(y, dw.weight[:hidden], None, dw.stride, dw.padding, groups=hidden)
    y = self.depth_conv[2](self.depth_conv[1](y))
    y = self.point_conv[1](self.point_conv[0](y, cout))
    return x + y if self.residual else y


class SuperSepConv2d(nn.Module):
  """Depthwise kxk + BN + ReLU sliced to the input width, then a 1x1 conv to all `cout`."""

  def __init__(self, cin, cout, k=5):
    super().__init__()
    self.conv = nn.Sequential(
        nn.Conv2d(cin, cin, k, 1, k // 2, groups=cin, bias=False), SuperBatchNorm2d(cin), nn.ReLU(),
        SuperConv2d(cin, cout, 1, bias=False))
    self.cout = cout

  def forward(self, x):
    c = x.size(1)
    dw = self.conv[0]
    y = F.conv2d(x, dw.weight[:c], None, dw.stride, dw.padding, groups=c)
    return self.conv[3](self.conv[2](self.conv[1](y)), self.cout)


def largest_arch(depths=OFFICIAL_DEPTHS, stem=24, deconv=(64, 48, 32),
                 stages=(32, 64, 96, 160)):
  """The official-schema dict of the whole super-net (img_size 512)."""
  return {'img_size': 512, 'input_channel': stem, 'deconv_setting': list(deconv),
          'backbone_setting': [
              {'num_blocks': n, 'stride': s, 'channel': c,
               'block_setting': [[MAX_EXPANSION, MAX_KERNEL]] * n}
              for c, n, s in zip(stages, depths, OFFICIAL_STRIDES)]}


class TorchSuperLitePose(nn.Module):
  """forward(x [N, 3, H, W], arch=None) -> [out4 (N, 2J, H/4, W/4), out2 (N, J, H/2, W/2)] of the
  sub-net `arch` (official-schema dict; None: the largest). 815 state_dict entries for J = 14 at
  the official size."""

  def __init__(self, num_joints=14, depths=OFFICIAL_DEPTHS, stem=24, deconv=(64, 48, 32),
               stages=(32, 64, 96, 160)):
    super().__init__()
    self.largest = largest_arch(depths, stem, deconv, stages)
    self.first = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3, 1, groups=32),
                               SuperConv2d(32, stem, 1, bias=False), SuperBatchNorm2d(stem))
    chans = [stem] + list(stages)
    self.stage = nn.ModuleList(
        nn.ModuleList(SuperInvBottleneck(chans[s] if b == 0 else chans[s + 1], chans[s + 1],
                                         OFFICIAL_STRIDES[s] if b == 0 else 1, residual=b > 0)
                      for b in range(n))
        for s, n in enumerate(depths))
    self.deconv_refined = nn.ModuleList()
    self.deconv_raw = nn.ModuleList()
    self.deconv_bnrelu = nn.ModuleList()
    refined_in = chans[-1]
    for i, f in enumerate(deconv):
      self.deconv_refined.append(SuperConvTranspose2d(refined_in, f, 4, 2, 1, bias=False))
      self.deconv_raw.append(SuperConvTranspose2d(chans[-(i + 2)], f, 4, 2, 1, bias=False))
      self.deconv_bnrelu.append(nn.Sequential(SuperBatchNorm2d(f), nn.ReLU()))
      refined_in = f
    j = num_joints
    self.final_refined = nn.ModuleList([SuperSepConv2d(deconv[1], 2 * j),
                                        SuperSepConv2d(deconv[2], j)])
    self.final_raw = nn.ModuleList([SuperSepConv2d(chans[1], 2 * j), SuperSepConv2d(chans[0], j)])

  def forward(self, x, arch=None):
    arch = self.largest if arch is None else arch
    stem = self.first
    feats = [stem[3](stem[2](stem[1](stem[0](x)), arch['input_channel']))]
    for blocks, st in zip(self.stage, arch['backbone_setting']):
      if not 1 <= st['num_blocks'] <= len(blocks):
        raise ValueError(f'num_blocks {st["num_blocks"]} outside 1..{len(blocks)}')
      y = feats[-1]
      for block, (t, k) in zip(blocks[:st['num_blocks']], st['block_setting']):
        y = block(y, st['channel'], t, k)
      feats.append(y)
    outputs = []
    y = feats[-1]
    for i, f in enumerate(arch['deconv_setting']):
      raw = self.deconv_raw[i](feats[-(i + 2)], f)
      y = self.deconv_bnrelu[i](self.deconv_refined[i](y, f) + raw)
      if i > 0:
        outputs.append(self.final_refined[i - 1](y) + self.final_raw[i - 1](feats[-(i + 3)]))
    return outputs


__all__ = ['TorchSuperLitePose', 'largest_arch', 'randomize_bn']
