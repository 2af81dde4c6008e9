"""Official PyTorch super-net import: the reference super-net's state_dict layout, parity of the
imported super-net (largest net, masked sub-nets, extracted sub-nets) with the torch sliced
forward, error messages and the `import-torch --arch supernet` command."""
import copy
import json

import jax
import numpy as np
import pytest
import torch

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.nas import supernet as supernet_lib
from litepose_jax.nas.torch_import import import_torch_supernet
from litepose_jax.reference.torch_supernet import TorchSuperLitePose
from litepose_jax.reference.torch_supernet import randomize_bn

SIZE = 64
J = 14
# Shallow super-net (2/3/3/2 blocks) with the official widths; sub-nets have 2 blocks per stage.
SPACE = nas.SearchSpace(depths=(2, 2, 2, 2), supernet_depths=(2, 3, 3, 2))
# Linear5x5 / Linear3x3 weight + bias per block.
SKIPPED_PER_BLOCK = 4


def _torch_supernet(depths=SPACE.supernet_depths, seed=0):
  torch.manual_seed(seed)
  return randomize_bn(TorchSuperLitePose(J, depths), seed).eval()


def _x(seed=1):
  return np.random.default_rng(seed).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)


def _torch_forward(tm, x, arch=None):
  with torch.no_grad():
    outs = tm(torch.from_numpy(x.transpose(0, 3, 1, 2)), arch)
  return [o.numpy().transpose(0, 2, 3, 1) for o in outs]


def _assert_close(ours, ref):
  assert len(ours) == len(ref) == 2
  for o, r in zip(ours, ref):
    o = np.asarray(o)
    assert o.shape == r.shape
    scale = max(1.0, float(np.abs(r).max()))
    assert np.abs(o - r).max() <= 1e-4 * scale, np.abs(o - r).max()


@pytest.fixture(scope='module')
def shallow():
  """(torch super-net, its numpy state_dict, the imported variables)."""
  tm = _torch_supernet()
  sd = {k: v.numpy() for k, v in tm.state_dict().items()}
  return tm, sd, import_torch_supernet({'module.' + k: v for k, v in sd.items()}, J, SPACE)


def test_official_supernet_state_dict_has_815_entries():
  sd = TorchSuperLitePose(J).state_dict()
  assert len(sd) == 815
  # One per BatchNorm: 3 per block, 3 in the stem, 3 deconv levels, 4 output layers.
  assert sum(k.endswith('num_batches_tracked') for k in sd) == 3 * 34 + 3 + 3 + 4
  assert sum('.Linear' in k for k in sd) == SKIPPED_PER_BLOCK * 34
  assert tuple(sd['stage.3.9.inv.0.weight'].shape) == (960, 160, 1, 1)
  assert tuple(sd['stage.2.0.depth_conv.0.weight'].shape) == (384, 1, 7, 7)
  assert tuple(sd['deconv_raw.0.weight'].shape) == (96, 64, 4, 4)
  assert tuple(sd['final_raw.1.conv.3.weight'].shape) == (J, 24, 1, 1)


def test_largest_net_matches_torch(shallow, capsys):
  tm, sd, variables = shallow
  model = models.create_model(nas.max_arch(SPACE), J)
  _assert_close(jax.jit(model.apply)(variables, _x()), _torch_forward(tm, _x()))
  # The official transfer script's '1.' prefix gives the same variables, with one note.
  capsys.readouterr()
  again = import_torch_supernet({'1.' + k: v for k, v in sd.items()}, J, SPACE)
  assert jax.tree.all(jax.tree.map(np.array_equal, again, variables))
  notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith('note:')]
  n_blocks = sum(SPACE.supernet_depths)
  assert len(notes) == 1 and f'skipped {SKIPPED_PER_BLOCK * n_blocks} ' in notes[0]
  assert 'Linear5x5' in notes[0] and 'k = 7' in notes[0]


def _subnets():
  a = nas.sample(SPACE, 3)
  b = nas.sample(SPACE, 4)
  b['backbone_setting'][1].update(num_blocks=1, block_setting=[[6, 7]])
  return [a, b]


@pytest.fixture(scope='module')
def masked_apply():
  """The super-net and its jitted apply, compiled once for every sub-net's masks."""
  net = nas.create_supernet(J, SPACE)
  return net, jax.jit(net.apply)


@pytest.mark.parametrize('index', [0, 1])
def test_subnets_match_the_torch_sliced_forward(shallow, masked_apply, index):
  tm, _, variables = shallow
  arch = _subnets()[index]
  x = _x(index + 2)
  ref = _torch_forward(tm, x, copy.deepcopy(arch))
  sub = models.create_model(arch, J)
  _assert_close(jax.jit(sub.apply)(nas.extract_subnet(variables, arch, J), x), ref)
  net, apply = masked_apply
  _assert_close(apply(variables, x, supernet_lib.subnet_masks(net, arch)), ref)
  # The sub-net is really smaller than the largest net (the comparison is not vacuous).
  assert not np.allclose(_torch_forward(tm, x)[0], ref[0], atol=1e-3)


def test_key_errors_are_named(shallow):
  _, sd, _ = shallow
  bad = dict(sd)
  bad.pop('stage.2.2.point_conv.1.running_var')
  bad['stage.2.3.inv.0.weight'] = np.zeros((1,), np.float32)
  bad['deconv_raw.1.weight'] = np.zeros((64, 40, 4, 4), np.float32)
  with pytest.raises(UserError) as e:
    import_torch_supernet(bad, J, SPACE)
  msg = str(e.value)
  assert 'does not match LitePose supernet' in msg
  assert 'missing keys (1): stage.2.2.point_conv.1.running_var' in msg
  assert 'unexpected keys (1): stage.2.3.inv.0.weight' in msg
  assert 'deconv_raw.1.weight: checkpoint (64, 40, 4, 4)' in msg
  # The official-size space expects 6/8/10/10 blocks: a shallow state_dict is refused.
  with pytest.raises(UserError, match=r'missing keys \(\d+\): stage\.0\.2\.'):
    import_torch_supernet(sd, J)


def test_cli_writes_a_loadable_supernet_checkpoint(tmp_path, capsys):
  tm = TorchSuperLitePose(J)
  sd = tm.state_dict()
  pth = tmp_path / 'supernet.pth'
  torch.save({'state_dict': {'1.' + k: v for k, v in sd.items()}}, pth)
  out = tmp_path / 'ckpt'
  assert cli.main(['import-torch', '--arch', 'supernet', '--checkpoint', str(pth), '--out',
                   str(out)]) == 0
  printed = capsys.readouterr().out
  assert 'skipped 136 state_dict entries' in printed and 'supernet' in printed
  cfg = json.loads((out / checkpoints.MODEL_JSON).read_text())
  assert nas.space_from_json(cfg[supernet_lib.SUPERNET_FIELD]) == nas.OFFICIAL
  assert cfg['source'] == 'supernet.pth' and cfg['num_joints'] == J
  net, variables, _ = nas.load_supernet(out)
  assert isinstance(net, nas.SuperLitePose) and net.space == nas.OFFICIAL
  kernel = np.asarray(variables['params']['stage3_block9']['project']['conv']['kernel'])
  np.testing.assert_array_equal(kernel,
                                sd['stage.3.9.point_conv.0.weight'].numpy().transpose(2, 3, 1, 0))


def test_arch_help_mentions_supernet(capsys):
  with pytest.raises(SystemExit):
    cli.main(['import-torch', '--help'])
  assert "'supernet'" in capsys.readouterr().out
