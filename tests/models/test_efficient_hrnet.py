"""EfficientHRNet: preset sizes against SUPERNET_SPEC.md §7.2, the backbone taps, 'SAME' padding,
a tiny net's forward in train / eval / folded modes, official-key names, config errors, dispatch."""
from __future__ import annotations

import copy
import dataclasses
import json

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax import models
from litepose_jax import torch_import
from litepose_jax.errors import UserError
from litepose_jax.export import fold
from litepose_jax.models import counting
from litepose_jax.models import efficient_hrnet
from litepose_jax.models import efficient_hrnet_arch as ea

J = 3


def _tiny_config() -> dict:
  """H-4's config shrunk: widths 8..80 / 6..45, one block per group and branch, 64 px."""
  cfg = ea.PRESETS['efficienthrnet-h4'].to_config(J)
  cfg['MODEL'].update(SCALE_FACTOR=-8, WIDTH_MULT=0.25, DEPTH_MULT=0.25)
  for key in ('STAGE2', 'STAGE3', 'STAGE4'):
    stage = cfg['MODEL']['EXTRA'][key]
    stage['NUM_MODULES'] = 1
    stage['NUM_BLOCKS'] = [1] * stage['NUM_BRANCHES']
  cfg['MODEL']['EXTRA']['DECONV']['NUM_BASIC_BLOCKS'] = 1
  cfg['DATASET']['INPUT_SIZE'] = 64
  return cfg


# SUPERNET_SPEC.md §7.2 [checked on the official code, J = 14]: params (M), paper / true GMACs.
SPEC = {'efficienthrnet-h1': (13.0, 1, 14.22, 13.09), 'efficienthrnet-h2': (8.26, 2, 7.73, 7.00),
        'efficienthrnet-h3': (5.36, 2, 4.21, 3.74), 'efficienthrnet-h4': (2.76, 2, 2.10, 1.79)}


@pytest.mark.parametrize('name', list(SPEC))
def test_presets_match_the_spec(name):
  params, digits, paper, true = SPEC[name]
  m = models.create_model(name, 14)
  c = counting.count(m, m.arch.img_size)
  assert round(c.params / 1e6, digits) == params
  assert round(c.macs('true') / 1e9, 2) == true
  assert abs(c.macs('paper') / 1e9 - paper) < 0.01 * paper
  if name != 'efficienthrnet-h1':  # H-1 gives 14.215 (see counting.py's convention note)
    assert round(c.macs('paper') / 1e9, 2) == paper


def test_macs_cli(capsys):
  assert cli.main(['macs', '--arch', 'efficienthrnet-h4', '--convention', 'paper']) == 0
  out = capsys.readouterr().out
  assert 'params: 2,763,227' in out and 'MACs (paper): 2.098 G' in out
  assert cli.main(['macs', '--arch', 'efficienthrnet-h4', '--size', '400']) == 2
  assert 'multiples of 32' in capsys.readouterr().err
  assert counting.preset_names('efficienthrnet') == tuple(ea.PRESETS)


@pytest.mark.parametrize('depth_mult, taps', [
    # The official forward's hard-coded splits (features[0:a], [a:b], [b:c], [c:d]): taps a-1 ...
    (0.483, (2, 3, 7, 10)), (0.578, (3, 5, 9, 13)), (0.694, (3, 5, 11, 15)),
    (0.833, (3, 5, 11, 16)), (1.0, (3, 5, 11, 16)), (1.2, (5, 8, 16, 23)), (1.4, (5, 8, 18, 26)),
    (1.8, (6, 10, 22, 32)),
    # ... and a value the official code fails on.
    (0.3, (2, 3, 5, 8))])
def test_backbone_taps_are_the_official_split_points(depth_mult, taps):
  spec = ea.PRESETS['efficienthrnet-h3']
  spec = ea.EfficientHRNetSpec(spec.scale_factor, 1.0, depth_mult, spec.stages, spec.deconv)
  blocks, got = spec.backbone()
  assert got == taps
  assert [blocks[t - 1].out_width for t in got] == [24, 40, 112, 320]


def test_same_padding_matches_explicit_padding():
  # The official ZeroPad2d (k - 2) // 2 before, k // 2 after, then an unpadded stride-2 conv.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32)
  dn = ('NHWC', 'HWIO', 'NHWC')
  for k in (3, 5):
    pads = (((k - 2) // 2, k // 2),) * 2
    for impl in ('lax', 'matmul'):
      conv = efficient_hrnet.SameConv(6, k, 2, impl=impl)
      v = conv.init(jax.random.PRNGKey(k), x)
      want = lax.conv_general_dilated(x, v['params']['conv']['kernel'], (2, 2), pads,
                                      dimension_numbers=dn)
      np.testing.assert_allclose(conv.apply(v, x), want, atol=1e-5)
    for impl in ('lax', 'shift'):
      dw = efficient_hrnet.SameDepthwiseConv(k, 2, impl)
      v = dw.init(jax.random.PRNGKey(k), x)
      want = lax.conv_general_dilated(x, v['params']['kernel'], (2, 2), pads,
                                      dimension_numbers=dn, feature_group_count=4)
      np.testing.assert_allclose(dw.apply(v, x), want, atol=1e-5)


def _tiny(**kw) -> efficient_hrnet.EfficientHRNet:
  return models.create_model(_tiny_config(), J, conv_impl='lax', depthwise_impl='lax', **kw)


def _random_variables(model, seed: int = 0) -> dict:
  """Fresh variables with non-trivial BN statistics and biases (so folding is exercised)."""
  v = models.init_variables(model, 64, seed)
  rng = np.random.default_rng(seed)
  draw = {'scale': lambda s: rng.uniform(0.5, 1.5, s), 'bias': lambda s: rng.normal(0, 0.1, s),
          'mean': lambda s: rng.normal(0, 0.1, s), 'var': lambda s: rng.uniform(0.5, 2.0, s)}
  return jax.tree_util.tree_map_with_path(
      lambda p, leaf: draw[p[-1].key](leaf.shape).astype(np.float32) if p[-1].key in draw
      else leaf, v)


def test_tiny_forward_train_eval_folded_and_drop_connect():
  m = _tiny()
  v = _random_variables(m)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 64, 64, 3)), jnp.float32)
  out4, out2 = jax.jit(lambda v, x: m.apply(v, x))(v, x)
  assert out4.shape == (2, 16, 16, 2 * J) and out2.shape == (2, 32, 32, J)
  assert out4.dtype == jnp.float32 and np.isfinite(np.asarray(out2)).all()

  def train(v, x, rng=None):
    rngs = {} if rng is None else {'dropout': rng}
    return m.apply(v, x, train=True, mutable=['batch_stats'], rngs=rngs)

  (t4, _), updates = jax.jit(train)(v, x)
  assert not np.allclose(np.asarray(t4), np.asarray(out4), atol=1e-3)
  before = v['batch_stats']['trans3_branch4_1']['mean']
  assert not np.allclose(before, np.asarray(updates['batch_stats']['trans3_branch4_1']['mean']))
  # Drop-connect only with a 'dropout' rng: some residual branches of some samples dropped.
  (d4, _), _ = jax.jit(train)(v, x, jax.random.PRNGKey(3))
  assert not np.allclose(np.asarray(d4), np.asarray(t4), atol=1e-4)

  folded = fold.fold_variables(m, v)
  h4, tags4, h2 = jax.jit(lambda x: fold.folded_apply(folded, x))(x)
  np.testing.assert_allclose(np.concatenate([h4, tags4], -1), out4, atol=1e-4)
  np.testing.assert_allclose(h2, out2, atol=1e-4)
  with pytest.raises(ValueError, match='inference only'):
    folded['module'].apply(folded['variables'], x, train=True)
  with pytest.raises(ValueError, match='multiples of 32'):
    m.apply(v, jnp.zeros((1, 48, 64, 3)))


def test_variable_names_follow_the_official_keys():
  m = models.create_model('efficienthrnet-h3', 14)
  keys = {k: path for path, (k, _) in torch_import.key_map(m).items()}
  shapes = models.variable_shapes(m)
  expect = {  # official key: shape of the flax variable (HWIO)
      'features.0.1.weight': (3, 3, 3, 24),  # stem, 32 * 0.751 -> 24
      'features.1.conv.0.1.weight': (3, 3, 1, 24),  # expansion 1: depthwise first
      'features.1.conv.1.se.1.weight': (1, 1, 24, 6),  # squeeze 24 / 4
      'features.1.conv.2.weight': (1, 1, 24, 16),
      'features.2.conv.0.1.weight': (1, 1, 16, 96),  # expand 16 x 6
      'features.2.conv.1.1.weight': (3, 3, 1, 96),
      'features.2.conv.2.se.3.bias': (96,),
      'features.2.conv.4.running_var': (24,),  # project BN: 24 * 0.751 -> 24
      'trans1_branch1.0.weight': (3, 3, 24, 17),  # tap 4: 24 * 0.751 -> 24 channels
      'trans1_branch1.0.bias': (17,),
      'trans3_branch4.0.weight': (3, 3, 240, 133),  # tap 32: 320 * 0.751 -> 240
      'stage4.2.fuse_layers.0.3.0.weight': (1, 1, 133, 17),
      'deconv_layers.0.0.0.weight': (4, 4, 17 + 28, 17),
      'final_layers.1.bias': (14,),
  }
  for key, shape in expect.items():
    assert shapes[keys[key]] == shape, key
  assert 'features.14.conv.0.1.weight' not in keys and 'features.13.conv.4.weight' in keys
  assert not any(k.startswith('stage4.2.fuse_layers.1') for k in keys)


def test_config_errors_name_the_field():
  good = _tiny_config()
  for path, value, match in [
      (('MODEL', 'WIDTH_MULT'), 'x', r'MODEL\.WIDTH_MULT'),
      (('MODEL', 'SCALE_FACTOR'), 1.5, r'MODEL\.SCALE_FACTOR'),
      (('MODEL', 'EXTRA', 'STAGE3', 'NUM_BLOCKS'), [1, 0, 1], r'STAGE3\.NUM_BLOCKS'),
      (('MODEL', 'EXTRA', 'DECONV', 'KERNEL_SIZE'), [3], r'DECONV\.KERNEL_SIZE'),
      (('DATASET', 'INPUT_SIZE'), 80, 'multiple of 32')]:
    bad = copy.deepcopy(good)
    node = bad
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = value
    with pytest.raises(UserError, match=match):
      models.create_model(bad, J)
  bad = copy.deepcopy(good)
  del bad['MODEL']['DEPTH_MULT']
  with pytest.raises(UserError, match='missing field DEPTH_MULT'):
    models.create_model(bad, J)
  bad = copy.deepcopy(good)
  stage3 = bad['MODEL']['EXTRA']['STAGE3']
  stage3.update(NUM_BRANCHES=2, NUM_BLOCKS=[1, 1], NUM_CHANNELS=[32, 64])
  with pytest.raises(UserError, match=r'STAGE3\.NUM_BRANCHES: must be 3'):
    models.create_model(bad, J)
  with pytest.raises(UserError, match='LitePose ablations'):
    models.create_model('efficienthrnet-h4', 14, kernel_size=3)
  with pytest.raises(UserError, match='unknown EfficientHRNet'):
    ea.resolve_efficient_hrnet('efficienthrnet-h9')


def test_dispatch_and_model_json_round_trip(tmp_path):
  for name in ea.PRESETS:
    assert isinstance(models.create_model(name.upper()), efficient_hrnet.EfficientHRNet)
    assert models.is_efficient_hrnet(name) and not models.is_hrnet(name)
  path = tmp_path / 'H-tiny.yaml'
  path.write_text(yaml.safe_dump(_tiny_config()))
  m = models.create_model(str(path), J)
  assert isinstance(m, efficient_hrnet.EfficientHRNet) and m.arch.img_size == 64
  assert dataclasses.replace(m.arch, name='custom') == models.resolve_model_arch(_tiny_config())
  assert isinstance(models.create_model('shrink3'), models.HigherHRNet)
  assert models.resolve_model_arch('efficienthrnet-h2').img_size == 448
  assert ea.resolve_efficient_hrnet('efficienthrnet-h2', img_size=480).img_size == 480

  cfg = json.loads(json.dumps(checkpoints.model_config(m.arch, J)))
  assert cfg['family'] == 'efficienthrnet'
  back = checkpoints.model_from_config(cfg, conv_impl='lax')
  assert back.arch == m.arch and back.num_joints == J
  preset = checkpoints.model_from_config(checkpoints.model_config('efficienthrnet-h3', 14))
  assert preset.arch == ea.PRESETS['efficienthrnet-h3']
