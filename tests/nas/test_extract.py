"""Sub-net extraction from super-net variables: identity on the super-net's own architecture,
hand-sliced leaves, forward equivalence with the super-net, loading into the standalone model,
error messages."""
import jax
import numpy as np
import pytest

from litepose_jax.errors import UserError
from litepose_jax.models import create_model
from litepose_jax.models import init_variables
from litepose_jax.models import variable_shapes
from litepose_jax.nas.extract import extract_subnet
from tests.nas.helpers import flat
from tests.nas.helpers import randomise_bn

SIZE = 64  # input side of every forward here: small, so the CPU test stays quick


def arch_dict(c0, deconv, widths, depths, kernels=None):
  """An architecture in the official JSON schema; kernels: {(stage, block): k}, else 7."""
  kernels = kernels or {}
  return {
      'img_size': SIZE, 'input_channel': c0, 'deconv_setting': list(deconv),
      'backbone_setting': [
          {'num_blocks': n, 'stride': s, 'channel': c,
           'block_setting': [[6, kernels.get((si, b), 7)] for b in range(n)]}
          for si, (c, n, s) in enumerate(zip(widths, depths, (2, 2, 2, 1)))]}


# The "super-net": the official maximum widths (litepose-L-like), shallower stages for speed.
SUPER = arch_dict(24, (64, 48, 32), (32, 64, 96, 160), (2, 3, 3, 2))
# A sub-net: smaller widths everywhere, fewer blocks in three stages, one 5x5 depthwise kernel.
SUB = arch_dict(16, (32, 24, 16), (16, 48, 48, 80), (1, 2, 3, 1), kernels={(1, 1): 5})


def leaf(variables, path):
  node = variables
  for p in path.split('/'):
    node = node[p]
  return np.asarray(node)


@pytest.fixture(scope='module')
def supernet():
  """Super-net variables with random BN statistics and affine parameters (not the 0 / 1 init)."""
  return randomise_bn(init_variables(create_model(SUPER), SIZE, seed=1), 2)


def test_own_architecture_is_identity(supernet):
  out = extract_subnet(supernet, SUPER)
  got, want = flat(out), flat(supernet)
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert got[k].dtype == want[k].dtype
  # Copies: editing the extracted net leaves the super-net alone.
  got['params/stem_pw/conv/kernel'][...] = 0
  assert np.abs(leaf(supernet, 'params/stem_pw/conv/kernel')).max() > 0


def test_leaves_are_the_leading_channels(supernet):
  sub = extract_subnet(supernet, SUB)
  s = lambda p: leaf(supernet, p)
  e = lambda p: leaf(sub, p)
  # Stage 1's first block: in = stage 0 width 16, hidden 6 * 16 = 96, out 48.
  np.testing.assert_array_equal(e('params/stage1_block0/expand/conv/kernel'),
                                s('params/stage1_block0/expand/conv/kernel')[..., :16, :96])
  np.testing.assert_array_equal(e('params/stage1_block0/depthwise/kernel'),
                                s('params/stage1_block0/depthwise/kernel')[..., :96])
  np.testing.assert_array_equal(e('params/stage1_block0/project/conv/kernel'),
                                s('params/stage1_block0/project/conv/kernel')[..., :96, :48])
  for col, name in (('params', 'scale'), ('params', 'bias'), ('batch_stats', 'mean'),
                    ('batch_stats', 'var')):
    np.testing.assert_array_equal(e(f'{col}/stage1_block0/expand_bn/{name}'),
                                  s(f'{col}/stage1_block0/expand_bn/{name}')[:96])
  # A 5x5 depthwise kernel is the centre of the 7x7 one.
  dw = e('params/stage1_block1/depthwise/kernel')
  assert dw.shape == (5, 5, 1, 288)
  np.testing.assert_array_equal(dw, s('params/stage1_block1/depthwise/kernel')[1:6, 1:6, :, :288])
  # Deconv level 1: refined input = level-0 width 32, output 24; raw input = stage 1 width 48.
  np.testing.assert_array_equal(e('params/deconv_refined1/deconv/kernel'),
                                s('params/deconv_refined1/deconv/kernel')[:, :, :32, :24])
  np.testing.assert_array_equal(e('params/deconv_raw1/deconv/kernel'),
                                s('params/deconv_raw1/deconv/kernel')[:, :, :48, :24])
  # Output layer: input channels sliced (stem width 16), all J outputs kept.
  np.testing.assert_array_equal(e('params/final_raw1/pointwise/conv/kernel'),
                                s('params/final_raw1/pointwise/conv/kernel')[..., :16, :])
  # Fixed stem layers whole; blocks beyond the sub-net's depth not copied.
  np.testing.assert_array_equal(e('params/stem_conv/conv/kernel'),
                                s('params/stem_conv/conv/kernel'))
  assert 'stage0_block1' not in sub['params'] and 'stage3_block1' not in sub['batch_stats']
  assert flat(sub).keys() == {'/'.join(k) for k in variable_shapes(create_model(SUB))}


def _zero_inactive(supernet, sub_arch):
  """A copy of the super-net variables whose forward is the sub-net's, by construction.

  Every BN's scale and bias are zeroed beyond the sub-net's channels (whole BNs of blocks beyond
  its depth), so inactive channels are exactly 0 after each BN (and ReLU6), contribute nothing to
  the next layer, and an extra block is the identity (its residual adds 0). The outer ring of a
  7x7 depthwise kernel whose sub-net kernel is 5x5 is zeroed, so the 7x7 conv is the 5x5 one.
  """
  shapes = {'/'.join(k): v for k, v in variable_shapes(create_model(sub_arch)).items()}
  out = jax.tree.map(np.array, supernet)
  for path, a in flat(out).items():
    name = path.rsplit('/', 1)[-1]
    if path.startswith('params/') and name in ('scale', 'bias'):
      a[shapes[path][0] if path in shapes else 0:] = 0
    elif path.endswith('depthwise/kernel') and path in shapes and shapes[path][0] < a.shape[0]:
      lo = (a.shape[0] - shapes[path][0]) // 2
      ring = np.ones(a.shape[:2], bool)
      ring[lo:a.shape[0] - lo, lo:a.shape[0] - lo] = False
      a[ring] = 0
  return out


def test_forward_equals_super_net_restricted_to_the_sub_net(supernet):
  restricted = _zero_inactive(supernet, SUB)
  sub = extract_subnet(restricted, SUB)
  x = np.random.default_rng(3).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  want = jax.jit(create_model(SUPER).apply)(restricted, x)
  got = jax.jit(create_model(SUB).apply)(sub, x)
  for g, w in zip(got, want):
    assert g.shape == w.shape and np.abs(w).max() > 1e-3
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_extracted_variables_load_and_train(supernet):
  """The plain-head ablation extracted from a fusion super-net: init's tree, and it runs."""
  model = create_model(SUB, fusion=False)
  sub = extract_subnet(supernet, SUB, fusion=False)
  init = init_variables(model, SIZE)
  assert jax.tree.structure(sub) == jax.tree.structure(init)
  assert jax.tree.map(np.shape, sub) == jax.tree.map(np.shape, init)
  x = np.random.default_rng(4).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
  (out4, out2), updates = model.apply(sub, x, train=True, mutable=['batch_stats'])
  assert out4.shape == (1, 16, 16, 28) and out2.shape == (1, 32, 32, 14)
  assert np.isfinite(out4).all() and np.isfinite(out2).all()
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(sub['batch_stats'])


@pytest.mark.parametrize('arch,kwargs,messages', [
    # A stage deeper than the super-net's.
    (arch_dict(16, (32, 24, 16), (16, 48, 48, 80), (3, 2, 3, 1)), {},
     ['params/stage0_block2/expand/conv/kernel: missing in the super-net', '(1, 1, 16, 96)']),
    # A stage wider than the super-net's.
    (arch_dict(16, (32, 24, 16), (40, 48, 48, 80), (1, 2, 3, 1)), {},
     ['params/stage0_block0/project/conv/kernel: the sub-net needs shape (1, 1, 96, 40), '
      "larger than the super-net's (1, 1, 144, 32)", 'batch_stats/stage0_block0/project_bn/mean']),
    # A depthwise kernel larger than the super-net's.
    (arch_dict(16, (32, 24, 16), (16, 48, 48, 80), (1, 2, 3, 1), {(2, 0): 9}), {},
     ['params/stage2_block0/depthwise/kernel', '(9, 9, 1, 288)', '(7, 7, 1, 384)']),
    # Another joint set: the output channels are not sliced.
    (SUB, {'num_joints': 17},
     ['params/final_refined0/pointwise/conv/kernel', '28 output channels', 'num_joints=17']),
    (SUB, {'num_joints': 10},
     ['params/final_raw1/pointwise/conv/kernel', '14 output channels, the sub-net 10']),
    # Stage 3 as wide as stage 2: a residual in its first block that the super-net lacks.
    (arch_dict(16, (32, 24, 16), (16, 48, 80, 80), (1, 2, 3, 1)), {},
     ['backbone_setting[3]', 'with a residual connection', '(96 -> 160)']),
])
def test_errors_name_the_path_and_shapes(supernet, arch, kwargs, messages):
  with pytest.raises(UserError) as e:
    extract_subnet(supernet, arch, **kwargs)
  for m in messages:
    assert m in str(e.value)


def test_bad_variables_are_rejected():
  with pytest.raises(UserError, match="'params'"):
    extract_subnet({'weights': {}}, SUB)
  with pytest.raises(UserError, match='got list'):
    extract_subnet([], SUB)


def test_long_error_lists_are_cut(supernet):
  deeper = arch_dict(16, (32, 24, 16), (16, 48, 48, 80), (6, 2, 3, 1))
  with pytest.raises(UserError, match=r'\.\.\. and \d+ more') as e:
    extract_subnet(supernet, deeper)
  assert str(e.value).count('missing in the super-net') == 20


def test_every_preset_is_a_sub_net_of_the_official_super_net():
  """XS, S, M and L extract from the official largest net (official prune-L.json: stem 24,
  deconv 64 / 48 / 32, stages 32 / 64 / 96 / 160 with 6 / 8 / 10 / 10 blocks)."""
  largest = arch_dict(24, (64, 48, 32), (32, 64, 96, 160), (6, 8, 10, 10))
  v = init_variables(create_model(largest), SIZE)
  for name in ('XS', 'S', 'M', 'L'):
    sub = extract_subnet(v, name)
    want = {'/'.join(k): s for k, s in variable_shapes(create_model(name)).items()}
    assert {k: a.shape for k, a in flat(sub).items()} == want, name
