"""Official PyTorch checkpoint import: key coverage, layouts, parity and error messages.

`convert` is the documented (re-exported) name of `torch_import`; both are exercised.
"""
import json
import re

import jax
import numpy as np
import pytest
import torch

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax import convert
from litepose_jax import models
from litepose_jax import torch_import
from litepose_jax.errors import UserError
from litepose_jax.reference.torch_litepose import TorchLitePose
from litepose_jax.reference.torch_litepose import randomize_bn


def _torch_model(arch, joints=14, seed=0):
  torch.manual_seed(seed)
  cfg = models.resolve_arch(arch).to_json_dict()
  return randomize_bn(TorchLitePose(cfg, joints), seed).eval()


def _run_both(arch, size, joints=14, prefix=''):
  tm = _torch_model(arch, joints)
  sd = {prefix + k: v for k, v in tm.state_dict().items()}
  variables = torch_import.torch_state_dict_to_variables(sd, arch, joints)
  x = np.random.default_rng(1).normal(size=(2, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    ref = [o.numpy().transpose(0, 2, 3, 1) for o in tm(torch.from_numpy(x.transpose(0, 3, 1, 2)))]
  model = models.create_model(arch, joints)
  ours = jax.jit(model.apply)(variables, x)
  return ref, [np.asarray(o) for o in ours]


def test_reference_model_has_official_keys_and_shapes(reference_dir):
  """The test-only torch model reproduces the official S state_dict listing exactly."""
  listing = {}
  for line in (reference_dir / 'litepose-S-state-dict.txt').read_text().splitlines():
    if line.startswith('#') or not line.strip():
      continue
    key, _, shape = line.split('\t')
    listing[key] = tuple(int(d) for d in re.findall(r'\d+', shape))
  sd = _torch_model('S').state_dict()
  assert {k: tuple(v.shape) for k, v in sd.items()} == listing


@pytest.mark.parametrize('arch,joints', [('XS', 14), ('S', 17), ('L', 14)])
def test_key_map_covers_exactly_the_model_variables(arch, joints):
  # Derived from the variable tree: one official key per variable, and together exactly the
  # official state_dict's keys (num_batches_tracked aside), for every preset.
  model = models.create_model(arch, joints)
  keys = torch_import.key_map(model)
  assert set(keys) == set(models.variable_shapes(model))
  official = {k for k in _torch_model(arch, joints).state_dict()
              if not k.endswith('num_batches_tracked')}
  assert sorted(k for k, _ in keys.values()) == sorted(official)
  assert keys[('params', 'stage2_block3', 'depthwise', 'kernel')][0] == \
      'stage.2.3.depth_conv.0.weight'
  assert keys[('batch_stats', 'deconv_bn1', 'var')][0] == 'deconv_bnrelu.1.0.running_var'
  assert keys[('params', 'final_raw1', 'pointwise', 'conv', 'kernel')][0] == \
      'final_raw.1.conv.3.weight'
  # The plain head has no raw branches: their keys drop out.
  plain = torch_import.key_map(models.create_model(arch, joints, fusion=False))
  assert {k for k, _ in plain.values()} == {k for k in official if '_raw' not in k}


@pytest.mark.parametrize('arch,size', [('XS', 128), ('S', 96)])
def test_converted_model_matches_torch(arch, size):
  ref, ours = _run_both(arch, size, prefix='module.' if arch == 'S' else '')
  for r, o in zip(ref, ours):
    assert r.shape == o.shape
    scale = max(1.0, float(np.abs(r).max()))
    assert np.abs(r - o).max() <= 1e-4 * scale, np.abs(r - o).max()


def test_converted_coco_model_matches_torch():
  ref, ours = _run_both('XS', 64, joints=17)
  assert ours[0].shape == (2, 16, 16, 34)
  np.testing.assert_allclose(ours[1], ref[1], atol=1e-4 * max(1.0, np.abs(ref[1]).max()))


def test_deconv_needs_the_spatial_flip():
  """Guards the pitfall: an unflipped transposed-conv kernel must give different outputs."""
  tm = _torch_model('XS')
  sd = dict(tm.state_dict())
  for k in list(sd):
    if k.startswith(('deconv_refined', 'deconv_raw')):
      sd[k] = sd[k].flip(2, 3)  # the converter flips again -> net effect: no flip
  variables = convert.torch_state_dict_to_variables(sd, 'XS')
  x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
  with torch.no_grad():
    ref = tm(torch.from_numpy(x.transpose(0, 3, 1, 2)))[1].numpy().transpose(0, 2, 3, 1)
  ours = np.asarray(jax.jit(models.create_model('XS').apply)(variables, x)[1])
  assert np.abs(ref - ours).max() > 1e-2


def test_bad_keys_are_listed():
  sd = {k: v.numpy() for k, v in _torch_model('XS').state_dict().items()}
  sd.pop('stage.1.3.inv.0.weight')
  sd['stage.9.0.inv.0.weight'] = np.zeros((1,), np.float32)
  sd['first.2.weight'] = np.zeros((8, 32, 1, 1), np.float32)
  with pytest.raises(UserError) as e:
    torch_import.torch_state_dict_to_variables(sd, 'XS')
  msg = str(e.value)
  assert 'missing keys (1): stage.1.3.inv.0.weight' in msg
  assert 'unexpected keys (1): stage.9.0.inv.0.weight' in msg
  assert 'first.2.weight: checkpoint (8, 32, 1, 1)' in msg


def test_wrong_architecture_is_reported():
  sd = _torch_model('XS').state_dict()
  with pytest.raises(UserError, match='does not match LitePose S'):
    convert.torch_state_dict_to_variables(sd, 'S')


def test_import_torch_cli_writes_loadable_checkpoint(tmp_path, capsys):
  tm = _torch_model('XS')
  pth = tmp_path / 'litepose-xs.pth'
  torch.save({'state_dict': tm.state_dict(), 'epoch': 3}, pth)
  out = tmp_path / 'ckpt'
  assert cli.main(['import-torch', '--arch', 'XS', '--checkpoint', str(pth), '--out', str(out)]) == 0
  assert 'XS' in capsys.readouterr().out
  module, variables, cfg = checkpoints.load_model(out)
  assert cfg['num_joints'] == 14 and cfg['joint_set'] == 'crowdpose'
  x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype(np.float32)
  with torch.no_grad():
    ref = tm(torch.from_numpy(x.transpose(0, 3, 1, 2)))[0].numpy().transpose(0, 2, 3, 1)
  ours = np.asarray(jax.jit(module.apply)(variables, x)[0])
  np.testing.assert_allclose(ours, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
  # Nothing is overwritten: a second import into the same directory fails cleanly.
  assert cli.main(['import-torch', '--arch', 'XS', '--checkpoint', str(pth), '--out', str(out)]) == 2
  assert 'already exists' in capsys.readouterr().err


def test_import_torch_cli_rejects_non_checkpoint(tmp_path, capsys):
  bad = tmp_path / 'bad.pth'
  bad.write_text('not a checkpoint')
  assert cli.main(['import-torch', '--arch', 'XS', '--checkpoint', str(bad), '--out',
                   str(tmp_path / 'o')]) == 2
  err = capsys.readouterr().err
  assert 'bad.pth' in err and 'not a readable PyTorch checkpoint' in err
  assert not (tmp_path / 'o').exists()


def test_checkpoint_dir_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='not a litepose checkpoint'):
    checkpoints.load_model(tmp_path)
  (tmp_path / 'model.json').write_text('{oops')
  with pytest.raises(ValueError, match='not valid JSON'):
    checkpoints.load_model(tmp_path)
  (tmp_path / 'model.json').write_text(json.dumps({'arch': 'XS'}))
  with pytest.raises(ValueError, match='num_joints'):
    checkpoints.load_model(tmp_path)
