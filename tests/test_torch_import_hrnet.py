"""HigherHRNet / EfficientHRNet PyTorch references and official-checkpoint import: keys,
parameter counts, parity.

The references (litepose_jax/reference/torch_higherhrnet.py, torch_efficient_hrnet.py) are written
from the description of the official lib/models/pose_higher_hrnet.py / pose_efficient_hrnet.py;
their state_dict keys are the official ones.
"""
from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import torch
import yaml

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax import convert
from litepose_jax import models
from litepose_jax import torch_import
from litepose_jax.errors import UserError
from litepose_jax.models import efficient_hrnet_arch
from litepose_jax.reference.torch_efficient_hrnet import TorchEfficientHRNet
from litepose_jax.reference.torch_higherhrnet import TorchHigherHRNet
from litepose_jax.reference.torch_higherhrnet import count_parameters
from litepose_jax.reference.torch_higherhrnet import randomize_bn


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


# ---- The importer: litepose_jax.convert.torch_state_dict_to_variables on a HigherHRNet ----------


def _reference(extra: dict, joints: int, seed: int = 0) -> TorchHigherHRNet:
  torch.manual_seed(seed)
  return randomize_bn(TorchHigherHRNet(extra, joints), seed).eval()


def _torch_outputs(model: TorchHigherHRNet, x: np.ndarray) -> list[np.ndarray]:
  """NHWC numpy in, NHWC numpy outputs (out4, out2)."""
  with torch.no_grad():
    outs = model(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  return [o.numpy().transpose(0, 2, 3, 1) for o in outs]


@pytest.mark.parametrize('arch,official', [('shrink3', SHRINK3_EXTRA), ('higherhrnet-w32', W32_EXTRA)])
def test_presets_are_the_official_configs(arch, official):
  # What `--arch shrink3` / `--arch higherhrnet-w32` import is the official yamls' MODEL.EXTRA.
  spec = models.resolve_hrnet(arch)
  assert spec.to_extra() == {k: v for k, v in official.items() if k != 'PRETRAINED_LAYERS'}


@pytest.mark.parametrize('path,key,kind', [
    (('params', 'conv1', 'conv', 'kernel'), 'conv1.weight', 'conv'),
    (('batch_stats', 'bn2', 'mean'), 'bn2.running_mean', None),
    (('params', 'layer1_0', 'downsample_1', 'scale'), 'layer1.0.downsample.1.weight', None),
    (('params', 'transition2_2_0_0', 'conv', 'kernel'), 'transition2.2.0.0.weight', 'conv'),
    (('batch_stats', 'stage4_2', 'fuse_layers_0_3_1', 'var'),
     'stage4.2.fuse_layers.0.3.1.running_var', None),
    (('params', 'stage3_1', 'branches_2_3', 'conv2', 'conv', 'kernel'),
     'stage3.1.branches.2.3.conv2.weight', 'conv'),
    (('params', 'deconv_layers_0_0_0', 'deconv', 'kernel'), 'deconv_layers.0.0.0.weight',
     'deconv'),
    (('params', 'final_layers_0', 'conv', 'conv', 'kernel'), 'final_layers.0.weight', 'conv'),
    (('params', 'final_layers_1', 'bias'), 'final_layers.1.bias', None),
])
def test_hrnet_torch_key(path, key, kind):
  official, layout = torch_import.hrnet_torch_key(path)
  assert official == key
  w = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
  if kind is None:
    assert layout is None
  elif kind == 'conv':  # OIHW -> HWIO
    np.testing.assert_array_equal(layout(w), w.transpose(2, 3, 1, 0))
  else:  # IOHW -> spatially flipped HWIO
    np.testing.assert_array_equal(layout(w), w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))


def test_hrnet_torch_key_rejects_unknown_names():
  with pytest.raises(ValueError, match='no official name'):
    torch_import.hrnet_torch_key(('params', 'Stage2', 'conv', 'kernel'))


def test_converted_model_matches_torch():
  tm = _reference(TINY_EXTRA, TINY_JOINTS)
  sd = {'module.' + k: v for k, v in tm.state_dict().items()}  # DataParallel prefix
  variables = convert.torch_state_dict_to_variables(sd, TINY_EXTRA, TINY_JOINTS)
  x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
  ref = _torch_outputs(tm, x)
  # 'lax' convolutions: the weight layouts are what is tested here, and they compile in seconds
  # ('matmul' equals 'lax': tests/models).
  apply = jax.jit(models.create_model(TINY_EXTRA, TINY_JOINTS, conv_impl='lax').apply)
  ours = [np.asarray(o) for o in apply(variables, x)]
  assert [o.shape for o in ours] == [(2, 16, 16, 2 * TINY_JOINTS), (2, 32, 32, TINY_JOINTS)]
  for r, o in zip(ref, ours):
    assert np.abs(r).max() > 0.1  # not a trivially small output
    assert np.abs(r - o).max() <= 1e-4 * max(1.0, float(np.abs(r).max())), np.abs(r - o).max()
  # The transposed conv needs its spatial flip: without it (flipped twice) out2 differs.
  sd['module.deconv_layers.0.0.0.weight'] = sd['module.deconv_layers.0.0.0.weight'].flip(2, 3)
  unflipped = convert.torch_state_dict_to_variables(sd, TINY_EXTRA, TINY_JOINTS)
  assert np.abs(np.asarray(apply(unflipped, x)[1]) - ref[1]).max() > 1e-2


def test_bad_keys_are_listed():
  sd = {k: v.numpy() for k, v in TorchHigherHRNet(TINY_EXTRA, TINY_JOINTS).state_dict().items()}
  sd.pop('stage4.0.fuse_layers.3.0.2.1.running_mean')
  sd['stage5.0.branches.0.0.conv1.weight'] = np.zeros((1,), np.float32)
  sd['final_layers.1.weight'] = np.zeros((17, 8, 1, 1), np.float32)  # a COCO head
  with pytest.raises(UserError) as e:
    convert.torch_state_dict_to_variables(sd, TINY_EXTRA, TINY_JOINTS)
  msg = str(e.value)
  assert 'does not match HigherHRNet custom with 3 joints' in msg
  assert 'missing keys (1): stage4.0.fuse_layers.3.0.2.1.running_mean' in msg
  assert 'unexpected keys (1): stage5.0.branches.0.0.conv1.weight' in msg
  assert 'final_layers.1.weight: checkpoint (17, 8, 1, 1), model expects (1, 1, 8, 3)' in msg
  with pytest.raises(UserError, match='fusion=False'):  # LitePose's plain-head ablation
    convert.torch_state_dict_to_variables(sd, TINY_EXTRA, TINY_JOINTS, fusion=False)


def test_import_torch_cli_round_trip(tmp_path, capsys):
  # An official-style experiment yaml (whole config) selects the architecture.
  cfg = {'DATASET': {'INPUT_SIZE': 64}, 'LOSS': {'WITH_AE_LOSS': [True, False]},
         'MODEL': {'NAME': 'pose_higher_hrnet', 'NUM_JOINTS': TINY_JOINTS, 'TAG_PER_JOINT': True,
                   'EXTRA': TINY_EXTRA}}
  arch = tmp_path / 'tiny_hrnet.yaml'
  arch.write_text(yaml.safe_dump(cfg))
  tm = _reference(TINY_EXTRA, TINY_JOINTS, seed=3)
  pth = tmp_path / 'model_best.pth'
  torch.save({'state_dict': {'module.' + k: v for k, v in tm.state_dict().items()}, 'epoch': 9},
             pth)
  out = tmp_path / 'ckpt'
  argv = ['import-torch', '--arch', str(arch), '--checkpoint', str(pth), '--out', str(out),
          '--joints', str(TINY_JOINTS)]
  assert cli.main(argv) == 0
  assert 'wrote' in capsys.readouterr().out
  module, variables, saved = checkpoints.load_model(out)
  assert isinstance(module, models.HigherHRNet) and saved['num_joints'] == TINY_JOINTS
  assert module.arch == models.resolve_hrnet(arch) and module.arch.img_size == 64
  assert saved['source'] == 'model_best.pth'
  # The checkpoint holds the converted weights (whose forward parity the test above checks).
  expected = convert.torch_state_dict_to_variables(tm.state_dict(), TINY_EXTRA, TINY_JOINTS)
  flat = jax.tree_util.tree_leaves_with_path(variables)
  assert len(flat) == len(jax.tree.leaves(expected))
  for path, v in flat:
    node = expected
    for p in path:
      node = node[p.key]
    np.testing.assert_array_equal(v, node)
  # A preset and the wrong joint count: the error names the head's keys, nothing is written.
  bad = tmp_path / 'bad'
  assert cli.main(['import-torch', '--arch', 'shrink3', '--checkpoint', str(pth), '--out',
                   str(bad)]) == 2
  assert 'does not match HigherHRNet shrink3 with 14 joints' in capsys.readouterr().err
  assert not bad.exists()


def test_import_torch_cli_reads_the_shipped_shrink3_layout(tmp_path):
  # The shipped Shrink3 (w16_512) at full size, CrowdPose joints: import and load, no forward.
  tm = TorchHigherHRNet(SHRINK3_EXTRA, 14)
  pth = tmp_path / 'shrink3.pth'
  torch.save(tm.state_dict(), pth)
  out = tmp_path / 'ckpt'
  assert cli.main(['import-torch', '--arch', 'shrink3', '--checkpoint', str(pth), '--out',
                   str(out)]) == 0
  _, variables, saved = checkpoints.load_model(out)
  assert saved['name'] == 'shrink3' and saved['img_size'] == 512
  n = sum(v.size for v in jax.tree.leaves(variables['params']))
  assert n == count_parameters(tm) == 7_375_166
  w = tm.state_dict()['stage4.2.fuse_layers.0.3.0.weight'].numpy()
  np.testing.assert_array_equal(
      variables['params']['stage4_2']['fuse_layers_0_3_0']['conv']['kernel'],
      w.transpose(2, 3, 1, 0))


# ---- EfficientHRNet (pose_efficient_hrnet.py) ---------------------------------------------------


def _efficient_tiny() -> dict:
  """H-4's official config shrunk (widths 8..80 / 6..45, 1 block per branch, 64 px); DEPTH_MULT
  stays 0.483, one the official forward knows, so the reference's hard-coded taps apply."""
  cfg = efficient_hrnet_arch.PRESETS['efficienthrnet-h4'].to_config(TINY_JOINTS)
  cfg['MODEL'].update(SCALE_FACTOR=-8, WIDTH_MULT=0.25)
  for key, modules in (('STAGE2', 1), ('STAGE3', 1), ('STAGE4', 2)):
    stage = cfg['MODEL']['EXTRA'][key]
    stage.update(NUM_MODULES=modules, NUM_BLOCKS=[1] * stage['NUM_BRANCHES'])
  cfg['MODEL']['EXTRA']['DECONV']['NUM_BASIC_BLOCKS'] = 1
  cfg['DATASET']['INPUT_SIZE'] = 64
  return cfg


@pytest.mark.parametrize('name', ['efficienthrnet-h1', 'efficienthrnet-h4'])
def test_efficient_hrnet_reference_keys_and_sizes_match_the_port(name):
  # Every official key maps onto the port's variables by the hrnet rule, shapes included, and
  # the parameter counts agree (SUPERNET_SPEC.md §7.2: 13.0 / 8.26 / 5.36 / 2.76 M).
  cfg = efficient_hrnet_arch.PRESETS[name].to_config(14)
  tm = TorchEfficientHRNet(cfg, 14)
  sd = {k: v for k, v in tm.state_dict().items() if not k.endswith('num_batches_tracked')}
  m = models.create_model(name, 14)
  shapes = models.variable_shapes(m)
  mapped = {key: (path, layout) for path, (key, layout) in torch_import.key_map(m).items()}
  assert sorted(mapped) == sorted(sd)
  for key, (path, layout) in mapped.items():
    v = sd[key].numpy()
    assert (layout(v) if layout else v).shape == shapes[path], key
  n = count_parameters(tm)
  assert n == sum(np.prod(s) for p, s in shapes.items() if p[0] == 'params')
  assert n == {'efficienthrnet-h1': 13_001_707, 'efficienthrnet-h4': 2_763_227}[name]


def test_efficient_hrnet_converted_model_matches_torch(tmp_path, capsys):
  cfg = _efficient_tiny()
  torch.manual_seed(0)
  tm = randomize_bn(TorchEfficientHRNet(cfg, TINY_JOINTS), 0).eval()
  x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
  ref = _torch_outputs(tm, x)
  variables = convert.torch_state_dict_to_variables(tm.state_dict(), cfg, TINY_JOINTS)
  apply = jax.jit(models.create_model(cfg, TINY_JOINTS, conv_impl='lax',
                                      depthwise_impl='lax').apply)
  ours = [np.asarray(o) for o in apply(variables, x)]
  assert [o.shape for o in ours] == [(2, 16, 16, 2 * TINY_JOINTS), (2, 32, 32, TINY_JOINTS)]
  for r, o in zip(ref, ours):
    assert np.abs(r).max() > 0.1
    assert np.abs(r - o).max() <= 1e-4 * max(1.0, float(np.abs(r).max())), np.abs(r - o).max()

  # `litepose import-torch` with the official yaml; a wrong head is listed by key.
  arch = tmp_path / 'H-tiny.yaml'
  arch.write_text(yaml.safe_dump(cfg))
  pth = tmp_path / 'h.pth'
  torch.save({'state_dict': {'module.' + k: v for k, v in tm.state_dict().items()}}, pth)
  out = tmp_path / 'ckpt'
  assert cli.main(['import-torch', '--arch', str(arch), '--checkpoint', str(pth), '--out',
                   str(out), '--joints', str(TINY_JOINTS)]) == 0
  module, loaded, saved = checkpoints.load_model(out)
  assert isinstance(module, models.EfficientHRNet) and saved['family'] == 'efficienthrnet'
  assert module.arch.img_size == 64
  np.testing.assert_array_equal(loaded['params']['features_2']['conv_1_1']['kernel'],
                                variables['params']['features_2']['conv_1_1']['kernel'])
  assert cli.main(['import-torch', '--arch', 'efficienthrnet-h4', '--checkpoint', str(pth),
                   '--out', str(tmp_path / 'bad')]) == 2
  assert 'does not match EfficientHRNet efficienthrnet-h4 with 14 joints' in capsys.readouterr().err
