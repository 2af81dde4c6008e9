"""The search space: sampling, enumeration, genes, validation; every sub-net builds a LitePose."""
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.models import counting
from litepose_jax.models import create_model
from litepose_jax.models import init_variables
from litepose_jax.models import resolve_arch
from litepose_jax.models import variable_shapes

SPACE = nas.SearchSpace.official()
SHIPPED = nas.SearchSpace.official(shipped_depths=True)


def _widths(arch):
  return ([arch['input_channel']] + arch['deconv_setting']
          + [s['channel'] for s in arch['backbone_setting']])


def _depths(arch):
  return [s['num_blocks'] for s in arch['backbone_setting']]


def test_official_widths_follow_make_divisible():
  # Official arch_manager.py rand_channel: _make_divisible(base * m, 8); the stem's 0.75 (18)
  # rounds up to 24 and deconv 1's 0.75 (36) up to 40.
  assert [SPACE.widths(g) for g in range(8)] == [
      (24, 24, 16, 8), (64, 48, 32, 16), (48, 40, 24, 16), (32, 24, 16, 8),
      (32, 24, 16, 8), (64, 48, 32, 16), (96, 72, 48, 24), (160, 120, 80, 40)]
  assert SPACE.choices(0) == (24, 16, 8)
  assert SPACE.num_choices() == (5, 3, 4, 4, 4, 4, 4, 4, 4)


def test_space_size_counts_distinct_subnets():
  # 5 x 4^8 = 327,680 multiplier draws, but the stem has 3 distinct widths: 5 x 3 x 4^7.
  assert nas.space_size(SPACE) == 5 * 3 * 4 ** 7 == 245_760
  assert nas.space_size(SHIPPED) == 245_760  # depth is fixed either way


def test_largest_and_smallest_match_the_official_table():
  big, small = nas.largest(SPACE), nas.smallest(SPACE)
  assert big['img_size'] == 512 and _widths(big) == [24, 64, 48, 32, 32, 64, 96, 160]
  assert small['img_size'] == 256 and _widths(small) == [8, 16, 16, 8, 8, 16, 24, 40]
  assert _depths(big) == _depths(small) == [6, 8, 10, 10]
  assert {tuple(b) for s in big['backbone_setting'] for b in s['block_setting']} == {(6, 7)}
  assert [s['stride'] for s in big['backbone_setting']] == [2, 2, 2, 1]
  # The largest sub-net is the super-net and the official mobile_configs/prune-L.json.
  assert nas.max_arch(SPACE) == big


def test_counts_of_largest_and_smallest_match_the_official_numbers():
  # Official figures for J = 14: largest 5,812,744 params and 15.28 G paper MACs; smallest
  # 0.42 G; with the shipped 4/6/8/8 depth 4,629,000 params, 12.92 G and 0.35 G.
  def counts(arch):
    return counting.count(create_model(arch), arch['img_size'])
  big = counts(nas.largest(SPACE))
  assert big.params == 5_812_744 and round(big.macs('paper') / 1e9, 2) == 15.28
  assert round(counts(nas.smallest(SPACE)).macs('paper') / 1e9, 2) == 0.42
  shipped = counts(nas.largest(SHIPPED))
  assert shipped.params == 4_629_000 and round(shipped.macs('paper') / 1e9, 2) == 12.92
  assert round(counts(nas.smallest(SHIPPED)).macs('paper') / 1e9, 2) == 0.35


def test_shipped_depths_keep_the_full_supernet():
  assert _depths(nas.largest(SHIPPED)) == [4, 6, 8, 8]
  assert _depths(nas.sample(SHIPPED, 0)) == [4, 6, 8, 8]
  top = nas.max_arch(SHIPPED)
  assert _depths(top) == [6, 8, 10, 10] and _widths(top) == _widths(nas.largest(SHIPPED))
  # A shipped-sampler sub-net is inside the super-net (first n blocks), not in the 6/8/10/10 space.
  nas.validate(nas.sample(SHIPPED, 1), SPACE, elastic_depth=True)
  with pytest.raises(UserError, match=r'backbone_setting\[0\]\.num_blocks: 4 is not the depth'):
    nas.validate(nas.sample(SHIPPED, 1), SPACE)


def test_sampling_is_deterministic_and_covers_the_space():
  assert nas.sample(SPACE, 7) == nas.sample(SPACE, 7)
  assert nas.sample(SPACE, (7, 3)) == nas.sample(SPACE, [7, 3])
  assert nas.sample(SPACE, np.random.default_rng(5)) == nas.sample(SPACE, 5)
  draws = [nas.sample(SPACE, (0, step)) for step in range(400)]
  assert len({json.dumps(a) for a in draws}) > 390
  assert {a['img_size'] for a in draws} == set(SPACE.resolutions)
  for g in range(8):
    assert {_widths(a)[g] for a in draws} == set(SPACE.choices(g))
  # The official draw is uniform over multipliers, so the stem's 24 (m = 1 or 0.75) is ~1/2.
  assert 0.4 < np.mean([a['input_channel'] == 24 for a in draws]) < 0.6
  for a in draws[:50]:
    nas.validate(a, SPACE)


@pytest.mark.parametrize('seed', [True, -1, 1.5, 'x', ()])
def test_bad_seeds(seed):
  with pytest.raises(UserError, match='seed must be'):
    nas.sample(SPACE, seed)


def test_uniform_is_the_official_fixed_sample():
  half = nas.uniform(SPACE, 0.5, 256)
  assert half['img_size'] == 256 and _widths(half) == [16, 32, 24, 16, 16, 32, 48, 80]
  assert nas.uniform(SPACE, 1.0, 512) == nas.largest(SPACE)
  assert nas.uniform(SPACE, 0.25, 256) == nas.smallest(SPACE)
  with pytest.raises(UserError, match=r'mult: 0\.6 is not a width multiplier'):
    nas.uniform(SPACE, 0.6, 256)
  with pytest.raises(UserError, match='resolution: 300 is not a resolution'):
    nas.uniform(SPACE, 0.5, 300)


def test_genes_round_trip():
  for seed in range(50):
    arch = nas.sample(SPACE, seed)
    genes = nas.encode(arch, SPACE)
    assert len(genes) == len(nas.GENE_NAMES) == 9
    assert nas.decode(genes, SPACE) == arch
  # Genes and distinct sub-nets are one-to-one: every gene tuple decodes and encodes back.
  ranges = [range(n) for n in SPACE.num_choices()]
  rng = np.random.default_rng(0)
  for genes in itertools.islice(itertools.product(*ranges), 0, None, 4999):
    assert nas.encode(nas.decode(genes, SPACE), SPACE) == genes
  assert nas.encode(nas.largest(SPACE)) == (4,) + (0,) * 8
  assert nas.encode(nas.smallest(SPACE)) == (0, 2) + (3,) * 7
  genes = tuple(int(rng.integers(n)) for n in SPACE.num_choices())
  assert nas.encode(resolve_arch(nas.decode(genes))) == genes  # an ArchSpec encodes too


@pytest.mark.parametrize('genes,match', [
    ((4, 0, 0), 'genes must be a sequence of 9'),
    ((5, 0, 0, 0, 0, 0, 0, 0, 0), r'genes\[0\] \(img_size\): 5 is not an index in 0\.\.4'),
    ((0, 3, 0, 0, 0, 0, 0, 0, 0), r'genes\[1\] \(input_channel\): 3 is not an index in 0\.\.2'),
    ((0, 0, 0, 0, 0, 0, 0, 0, -1), r'genes\[8\] \(backbone_setting\[3\]\.channel\): -1'),
    ((0, 0, 0, 0, 0, 0.0, 0, 0, 0), r'genes\[5\]'),
])
def test_decode_errors(genes, match):
  with pytest.raises(UserError, match=match):
    nas.decode(genes)


def _edited(path, value):
  """The largest sub-net with one field replaced; path is a list of keys / indices."""
  arch = json.loads(json.dumps(nas.largest(SPACE)))
  node = arch
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = value
  return arch


@pytest.mark.parametrize('path,value,match', [
    (['img_size'], 480, r'arch: img_size: 480 is not a resolution of this space \(256, 320'),
    (['input_channel'], 32, r'arch: input_channel: 32 is not a width of this space '
                            r'\(24 x \{1, 0\.75, 0\.5, 0\.25\} -> 24, 24, 16, 8\)'),
    (['deconv_setting', 1], 32, r'deconv_setting\[1\]: 32 is not a width .*48 x .* -> '
                                r'48, 40, 24, 16\)'),
    (['backbone_setting', 2, 'channel'], 64,
     r'backbone_setting\[2\]\.channel: 64 is not a width of this space \(96 x '
     r'\{1, 0\.75, 0\.5, 0\.25\} -> 96, 72, 48, 24\)'),
    (['backbone_setting', 1, 'block_setting', 3], [6, 5],
     r'backbone_setting\[1\]\.block_setting\[3\]: \[6, 5\] is not a block of this space '
     r'\(only \[6, 7\]\)'),
    (['backbone_setting', 0, 'stride'], 1, 'stage strides must be'),  # the schema's own check
    (['backbone_setting', 3, 'channel'], 'wide', r'backbone_setting\[3\]\.channel must be'),
])
def test_validation_names_the_field(path, value, match):
  with pytest.raises(UserError, match=match):
    nas.validate(_edited(path, value), SPACE)


def test_validation_of_depth():
  arch = nas.largest(SPACE)
  stage = arch['backbone_setting'][3]
  stage['num_blocks'], stage['block_setting'] = 11, stage['block_setting'] + [[6, 7]]
  with pytest.raises(UserError, match=r'backbone_setting\[3\]\.num_blocks: 11 is not the depth'):
    nas.validate(arch)
  with pytest.raises(UserError, match=r'backbone_setting\[3\]\.num_blocks: 11 is outside 1\.\.10'):
    nas.validate(arch, elastic_depth=True)
  with pytest.raises(UserError, match=r'backbone_setting\[3\]\.num_blocks: 11'):
    nas.encode(arch)


def test_space_fields_are_checked():
  with pytest.raises(UserError, match='SearchSpace.resolutions must be multiples of 16'):
    nas.SearchSpace(resolutions=(256, 300))
  with pytest.raises(UserError, match='SearchSpace.resolutions has duplicates'):
    nas.SearchSpace(resolutions=(256, 256))
  with pytest.raises(UserError, match='SearchSpace.width_mults'):
    nas.SearchSpace(width_mults=(1.0, 0.0))
  with pytest.raises(UserError, match='SearchSpace.stage_bases'):
    nas.SearchSpace(stage_bases=(32, 64, 96))
  with pytest.raises(UserError, match=r'SearchSpace.depths \(6, 8, 10, 12\) exceed'):
    nas.SearchSpace(depths=(6, 8, 10, 12))
  with pytest.raises(UserError, match='SearchSpace.strides'):
    nas.SearchSpace(strides=(2, 2, 2, 2))
  with pytest.raises(UserError, match='SearchSpace.stem_base must be a positive integer'):
    nas.SearchSpace(stem_base=24.0)
  with pytest.raises(UserError, match='SearchSpace.kernel must be one of'):
    nas.SearchSpace(kernel=4)
  # Lists (as a config writes them) become tuples: the space stays hashable and equal.
  listed = nas.SearchSpace(resolutions=[256, 320, 384, 448, 512], depths=[6, 8, 10, 10])
  assert listed == SPACE and hash(listed) == hash(SPACE)


def test_samples_build_a_litepose():
  # Every sub-net is directly a create_model architecture: init traced abstractly (no compile).
  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  for seed in range(10):
    arch = nas.sample(SPACE if seed % 2 else SHIPPED, seed)
    model = create_model(arch, num_joints=3)
    (out4, out2), variables = jax.eval_shape(model.init_with_output, jax.random.PRNGKey(0), x)
    assert out4.shape == (1, 16, 16, 6) and out2.shape == (1, 32, 32, 3)
    assert variables['params']['stem_pw']['conv']['kernel'].shape[-1] == arch['input_channel']
    assert model.arch.to_json_dict() == arch


@pytest.mark.parametrize('which', ['smallest', 'sample'])
def test_subnets_run(which):
  # One compiled forward each at 64 px (seconds on CPU) on fresh variables.
  arch = nas.smallest(SPACE) if which == 'smallest' else nas.sample(SHIPPED, 12)
  model = create_model(arch, num_joints=3)
  out4, out2 = jax.jit(model.apply)(init_variables(model, 64), jnp.ones((1, 64, 64, 3)))
  assert out4.shape == (1, 16, 16, 6) and out2.shape == (1, 32, 32, 3)
  assert bool(jnp.isfinite(out4).all() & jnp.isfinite(out2).all())


def test_every_sample_is_cut_out_of_the_max_arch_supernet():
  # The super-net is LitePose on max_arch; a sub-net's variables are its slices (no compile).
  supernet = create_model(nas.max_arch(SHIPPED), num_joints=3)
  variables = init_variables(supernet, 64)
  for seed in range(3):
    arch = nas.sample(SPACE if seed % 2 else SHIPPED, seed)
    flat = jax.tree_util.tree_flatten_with_path(nas.extract_subnet(variables, arch, 3))[0]
    shapes = {tuple(p.key for p in path): leaf.shape for path, leaf in flat}
    assert shapes == variable_shapes(create_model(arch, num_joints=3))
