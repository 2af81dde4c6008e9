"""HigherHRNet module: preset sizes against the reference numbers, a tiny net's forward in train /
eval / folded modes, official-key variable names, model.json round trip, `litepose macs`."""
from __future__ import annotations

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax import models
from litepose_jax.export import fold
from litepose_jax.models import counting
from litepose_jax.models import higherhrnet

J = 3
TINY = {
    'STEM_INPLANES': 8, 'FINAL_CONV_KERNEL': 3,
    'STAGE2': {'NUM_MODULES': 1, 'NUM_BRANCHES': 2, 'BLOCK': 'BASIC', 'NUM_BLOCKS': [1, 1],
               'NUM_CHANNELS': [8, 16], 'FUSE_METHOD': 'SUM'},
    'STAGE3': {'NUM_MODULES': 1, 'NUM_BRANCHES': 3, 'BLOCK': 'BASIC', 'NUM_BLOCKS': [0, 1, 1],
               'NUM_CHANNELS': [8, 16, 32], 'FUSE_METHOD': 'SUM'},
    'STAGE4': {'NUM_MODULES': 2, 'NUM_BRANCHES': 4, 'BLOCK': 'BASIC', 'NUM_BLOCKS': [1, 1, 1, 1],
               'NUM_CHANNELS': [8, 16, 32, 64], 'FUSE_METHOD': 'SUM'},
    'DECONV': {'NUM_DECONVS': 1, 'NUM_CHANNELS': [8], 'KERNEL_SIZE': [4], 'NUM_BASIC_BLOCKS': 1,
               'CAT_OUTPUT': [True]},
}


def _slides_macs(model: nn.Module, size: int) -> float:
  """GMACs as the LitePose slides count them: the 'paper' convention plus nn.Upsample and conv-bias
  output elements (hrnet_arch.py, the shrinking-study comment)."""
  extra = [0]

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and isinstance(
        context.module, (higherhrnet.Upsample, higherhrnet.BiasConv)):
      extra[0] += math.prod(out.shape)
    return out

  with nn.intercept_methods(interceptor):
    c = counting.count(model, size)
  return (c.macs('paper') + extra[0]) / 1e9


def test_shrink3_macs_cli(capsys):
  # SUPERNET_SPEC.md §7.1 [checked on the official code, CrowdPose J = 14, 512 px]: 7.38 M
  # parameters, 9.14 G paper-convention MACs, 7.87 G true.
  assert cli.main(['macs', '--arch', 'shrink3', '--convention', 'paper']) == 0
  out = capsys.readouterr().out
  assert 'params: 7,375,166' in out and 'MACs (paper): 9.140 G' in out
  assert cli.main(['macs', '--arch', 'shrink3']) == 0
  assert 'MACs (true): 7.875 G' in capsys.readouterr().out
  assert cli.main(['macs', '--arch', 'shrink3', '--size', '496']) == 2
  assert 'multiples of 32' in capsys.readouterr().err


def test_w32_matches_the_reference():
  # SUPERNET_SPEC.md §7.1 "For contrast W32 (w32_512): 28.6 M, 48.0 G" (same check, J = 14).
  c = counting.count(models.create_model('higherhrnet-w32', 14), 512)
  assert round(c.params / 1e6, 1) == 28.6 and round(c.macs('paper') / 1e9, 1) == 48.0
  assert c.params == 28_641_962 and c.macs('true') < c.macs('paper')


@pytest.mark.parametrize('name, slides', [('higherhrnet-w16', 12.50), ('shrink1', 10.12),
                                          ('shrink2', 10.02), ('shrink3', 9.15)])
def test_shrinking_study_reproduces_the_slides_gmacs(name, slides):
  # Slide 10 (SUPERNET_SPEC.md §7.1): 12.50 / 10.12 / 10.02 / 9.15 GMACs; the inferred presets
  # must give them in the slides' counting.
  m = models.create_model(name, 14)
  assert round(_slides_macs(m, 512), 2) == slides


def _tiny(**kw) -> higherhrnet.HigherHRNet:
  return models.create_model(TINY, J, conv_impl='lax', **kw)


def _random_variables(model, seed: int = 0) -> dict:
  """Fresh variables with non-trivial BN statistics and biases (so folding is exercised)."""
  v = models.init_variables(model, 64, seed)
  rng = np.random.default_rng(seed)

  def perturb(path, leaf):
    name = path[-1].key
    if name == 'scale':
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    if name in ('bias', 'mean'):
      return rng.normal(0.0, 0.1, leaf.shape).astype(np.float32)
    if name == 'var':
      return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
    return leaf

  return jax.tree_util.tree_map_with_path(perturb, v)


def test_tiny_forward_train_eval_and_folded():
  m = _tiny()
  v = _random_variables(m)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 64, 64, 3)), jnp.float32)
  out4, out2 = jax.jit(lambda v, x: m.apply(v, x))(v, x)
  assert out4.shape == (2, 16, 16, 2 * J) and out2.shape == (2, 32, 32, J)
  assert out4.dtype == jnp.float32 and np.isfinite(np.asarray(out2)).all()

  train = jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=['batch_stats']))
  (t4, t2), updates = train(v, x)
  assert t4.shape == out4.shape and t2.shape == out2.shape
  # Batch statistics differ from the running ones: the outputs and the statistics change.
  assert not np.allclose(np.asarray(t4), np.asarray(out4), atol=1e-3)
  before = v['batch_stats']['stage3_0']['branches_0_1']['mean']
  after = updates['batch_stats']['stage3_0']['branches_0_1']['mean']
  assert not np.allclose(before, np.asarray(after))

  folded = fold.fold_variables(m, v)
  h4, tags4, h2 = jax.jit(lambda x: fold.folded_apply(folded, x))(x)
  np.testing.assert_allclose(np.concatenate([h4, tags4], -1), out4, atol=1e-4)
  np.testing.assert_allclose(h2, out2, atol=1e-4)
  with pytest.raises(ValueError, match='inference only'):
    folded['module'].apply(folded['variables'], x, train=True)
  with pytest.raises(ValueError, match='multiples of 32'):
    m.apply(v, jnp.zeros((1, 48, 64, 3)))


def test_upsample_is_nearest_neighbour():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  for f in (1, 2, 8):
    y = higherhrnet.Upsample(f).apply({}, jnp.asarray(x))
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, f, axis=1), f, axis=2))
  with pytest.raises(ValueError, match='power of 2'):
    higherhrnet.Upsample(3).apply({}, jnp.asarray(x))


def test_variable_names_follow_the_official_keys():
  shapes = models.variable_shapes(_tiny())
  expect = {
      # conv1.weight; layer1.0.downsample.0.weight (64 -> 4 x 8); bn1.running_mean
      ('params', 'conv1', 'conv', 'kernel'): (3, 3, 3, 64),
      ('params', 'layer1_0', 'downsample_0', 'conv', 'kernel'): (1, 1, 64, 32),
      ('batch_stats', 'bn1', 'mean'): (64,),
      # transition1.0.0 (32 -> 8, 3x3), transition1.1.0.0 (new branch, 3x3/2)
      ('params', 'transition1_0_0', 'conv', 'kernel'): (3, 3, 32, 8),
      ('params', 'transition1_1_0_0', 'conv', 'kernel'): (3, 3, 32, 16),
      ('params', 'transition3_3_0_1', 'scale'): (64,),
      # stage3.0.branches.0: the 0-block placeholder conv3x3 (0) + BN (1)
      ('params', 'stage3_0', 'branches_0_0', 'conv', 'kernel'): (3, 3, 8, 8),
      ('params', 'stage3_0', 'branches_0_1', 'scale'): (8,),
      ('params', 'stage3_0', 'branches_1_0', 'conv2', 'conv', 'kernel'): (3, 3, 16, 16),
      # fuse_layers: j > i 1x1 conv; j < i chain of 3x3/2 (link 2 of 3 maps 8 -> 64)
      ('params', 'stage4_0', 'fuse_layers_0_3_0', 'conv', 'kernel'): (1, 1, 64, 8),
      ('params', 'stage4_0', 'fuse_layers_3_0_2_0', 'conv', 'kernel'): (3, 3, 8, 64),
      ('params', 'stage4_0', 'fuse_layers_3_0_1_0', 'conv', 'kernel'): (3, 3, 8, 8),
      # head: final_layers.0 (2J, bias), deconv_layers.0.0.0 (input 8 + 2J), its BasicBlock
      ('params', 'final_layers_0', 'conv', 'conv', 'kernel'): (3, 3, 8, 2 * J),
      ('params', 'final_layers_0', 'bias'): (2 * J,),
      ('params', 'deconv_layers_0_0_0', 'deconv', 'kernel'): (4, 4, 8 + 2 * J, 8),
      ('params', 'deconv_layers_0_1_0', 'conv1', 'conv', 'kernel'): (3, 3, 8, 8),
      ('params', 'final_layers_1', 'bias'): (J,),
  }
  for path, shape in expect.items():
    assert shapes.get(path) == shape, path
  # The last stage-4 module fuses into branch 0 only; the first into every branch.
  assert ('params', 'stage4_1', 'fuse_layers_0_1_0', 'conv', 'kernel') in shapes
  assert not any(p[1] == 'stage4_1' and p[2].startswith('fuse_layers_1') for p in shapes)
  assert any(p[1] == 'stage4_0' and p[2].startswith('fuse_layers_3') for p in shapes)


def test_model_json_round_trip(tmp_path):
  m = _tiny()
  cfg = checkpoints.model_config(m.arch, J, input_size=64)
  assert cfg['family'] == 'higherhrnet' and cfg['arch'] == m.arch.to_extra()
  cfg = json.loads(json.dumps(cfg))
  back = checkpoints.model_from_config(cfg, conv_impl='lax')
  assert back.arch == m.arch and back.num_joints == J
  preset = checkpoints.model_from_config(checkpoints.model_config('shrink2', 14))
  assert preset.arch == models.resolve_hrnet('shrink2')

  v = models.init_variables(m, 64, seed=5)
  checkpoints.save_model(tmp_path / 'ckpt', v, cfg)
  module, loaded, loaded_cfg = checkpoints.load_model(tmp_path / 'ckpt', conv_impl='lax')
  assert isinstance(module, higherhrnet.HigherHRNet) and module.arch == m.arch
  assert loaded_cfg['img_size'] == m.arch.img_size
  np.testing.assert_array_equal(loaded['params']['final_layers_0']['conv']['conv']['kernel'],
                                v['params']['final_layers_0']['conv']['conv']['kernel'])
