"""HigherHRNet PyTorch reference and official-checkpoint import: keys, parameter counts, parity.

The reference (litepose_jax/reference/torch_higherhrnet.py) is written from the description of
the official lib/models/pose_higher_hrnet.py; its state_dict keys are the official ones.
"""
from __future__ import annotations

import copy

import pytest
import torch

from litepose_jax.errors import UserError
from litepose_jax.reference.torch_higherhrnet import TorchHigherHRNet
from litepose_jax.reference.torch_higherhrnet import count_parameters


def _stage(modules: int, blocks: list[int], channels: list[int]) -> dict:
  return {'NUM_MODULES': modules, 'NUM_BRANCHES': len(blocks), 'BLOCK': 'BASIC',
          'NUM_BLOCKS': blocks, 'NUM_CHANNELS': channels, 'FUSE_METHOD': 'SUM'}


def _deconv(channels: int, basic_blocks: int) -> dict:
  return {'NUM_DECONVS': 1, 'NUM_CHANNELS': [channels], 'KERNEL_SIZE': [4],
          'NUM_BASIC_BLOCKS': basic_blocks, 'CAT_OUTPUT': [True]}


# MODEL.EXTRA of the official yamls, transcribed: experiments/crowd_pose/higher_hrnet/
# w16_512_adam_lr1e-3.yaml (Shrink3) and w32_512_adam_lr1e-3.yaml.
SHRINK3_EXTRA = {
    'FINAL_CONV_KERNEL': 1, 'PRETRAINED_LAYERS': ['*'], 'STEM_INPLANES': 36,
    'STAGE2': _stage(1, [0, 4], [18, 36]),
    'STAGE3': _stage(4, [0, 0, 4], [18, 36, 72]),
    'STAGE4': _stage(3, [0, 0, 0, 4], [18, 36, 72, 144]),
    'DECONV': _deconv(32, 0)}
W32_EXTRA = {
    'FINAL_CONV_KERNEL': 1, 'PRETRAINED_LAYERS': ['*'], 'STEM_INPLANES': 64,
    'STAGE2': _stage(1, [4, 4], [32, 64]),
    'STAGE3': _stage(4, [4, 4, 4], [32, 64, 128]),
    'STAGE4': _stage(3, [4, 4, 4, 4], [32, 64, 128, 256]),
    'DECONV': _deconv(32, 4)}
# The parity net: four branches, 0-block branches in every stage, a layer1 downsample (4 x 8 !=
# 64), a width-changing transition1.0, a 3-step fusion chain (stage4 module 0), the last module's
# single fusion row, and deconv BasicBlocks; 64 px, 3 joints.
TINY_EXTRA = {
    'FINAL_CONV_KERNEL': 1, 'STEM_INPLANES': 8,
    'STAGE2': _stage(1, [1, 0], [8, 16]),
    'STAGE3': _stage(1, [0, 1, 1], [8, 16, 24]),
    'STAGE4': _stage(2, [0, 1, 0, 2], [8, 16, 24, 32]),
    'DECONV': _deconv(8, 1)}
TINY_JOINTS = 3


@pytest.mark.parametrize('extra,published', [(SHRINK3_EXTRA, 7.38), (W32_EXTRA, 28.6)])
def test_reference_parameter_counts_match_the_spec(extra, published):
  # SUPERNET_SPEC.md §7.1 [checked]: w16_512 (Shrink3) 7.38 M, w32_512 28.6 M, for 14 joints.
  n = count_parameters(TorchHigherHRNet(extra, 14))
  digits = 2 if published < 10 else 1
  assert round(n / 1e6, digits) == published, n


def test_reference_has_the_official_key_families():
  sd = TorchHigherHRNet(TINY_EXTRA, TINY_JOINTS).state_dict()
  shapes = {k: tuple(v.shape) for k, v in sd.items()}
  expected = {
      'conv1.weight': (64, 3, 3, 3), 'bn2.running_var': (64,),
      'layer1.0.conv3.weight': (32, 8, 1, 1), 'layer1.0.downsample.0.weight': (32, 64, 1, 1),
      'layer1.3.bn3.weight': (32,),
      'transition1.0.0.weight': (8, 32, 3, 3), 'transition1.1.0.0.weight': (16, 32, 3, 3),
      'transition2.2.0.0.weight': (24, 16, 3, 3), 'transition3.3.0.1.running_mean': (32,),
      'stage2.0.branches.0.0.conv2.weight': (8, 8, 3, 3),
      'stage2.0.branches.1.0.weight': (16, 16, 3, 3), 'stage2.0.branches.1.1.bias': (16,),
      'stage2.0.fuse_layers.0.1.0.weight': (8, 16, 1, 1),
      'stage2.0.fuse_layers.1.0.0.0.weight': (16, 8, 3, 3),
      'stage4.0.fuse_layers.3.0.0.0.weight': (8, 8, 3, 3),
      'stage4.0.fuse_layers.3.0.2.0.weight': (32, 8, 3, 3),
      'stage4.0.fuse_layers.3.0.1.1.running_var': (8,),
      'stage4.1.branches.3.1.bn2.weight': (32,),
      'stage4.1.fuse_layers.0.3.0.weight': (8, 32, 1, 1),
      'final_layers.0.weight': (6, 8, 1, 1), 'final_layers.0.bias': (6,),
      'final_layers.1.weight': (3, 8, 1, 1),
      'deconv_layers.0.0.0.weight': (14, 8, 4, 4), 'deconv_layers.0.0.1.running_mean': (8,),
      'deconv_layers.0.1.0.conv1.weight': (8, 8, 3, 3),
  }
  assert {k: shapes.get(k) for k in expected} == expected
  # No module that the official net lacks: identity transitions, same-width downsamples, the
  # dropped fusion rows of stage 4's last module.
  for absent in ('transition2.0', 'transition2.1', 'layer1.1.downsample',
                 'stage2.0.branches.0.0.downsample', 'stage4.1.fuse_layers.1',
                 'stage2.0.fuse_layers.0.0', 'deconv_layers.0.1.0.downsample'):
    assert not any(k.startswith(absent + '.') for k in sd), absent
  # The 0-block placeholder is conv-BN-ReLU6; fusion uses plain ReLU.
  model = TorchHigherHRNet(TINY_EXTRA, TINY_JOINTS)
  assert isinstance(model.stage2[0].branches[1][2], torch.nn.ReLU6)


def test_reference_outputs_and_no_layer1_downsample_at_stem_16():
  extra = copy.deepcopy(TINY_EXTRA)
  extra['STEM_INPLANES'] = 16  # 4 x 16 = the 64-channel stem: identity shortcut
  extra['FINAL_CONV_KERNEL'] = 3
  model = TorchHigherHRNet(extra, TINY_JOINTS).eval()
  assert not any('layer1.0.downsample' in k for k in model.state_dict())
  with torch.no_grad():
    out4, out2 = model(torch.zeros(2, 3, 64, 64))
  assert out4.shape == (2, 2 * TINY_JOINTS, 16, 16) and out2.shape == (2, TINY_JOINTS, 32, 32)


@pytest.mark.parametrize('field,value,message', [
    ('BLOCK', 'DENSE', 'STAGE3.BLOCK'),
    ('NUM_BLOCKS', [1, 1], 'STAGE3: NUM_BRANCHES 3'),
    ('NUM_CHANNELS', [8, 12, 24], 'STAGE3.NUM_CHANNELS'),
])
def test_reference_rejects_unsupported_configs(field, value, message):
  extra = copy.deepcopy(TINY_EXTRA)
  extra['STAGE3'][field] = value
  with pytest.raises(UserError, match=message):
    TorchHigherHRNet(extra, TINY_JOINTS)
