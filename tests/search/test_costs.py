"""search.costs: the official parameter / MAC figures through arch_costs, conventions, memo."""
from __future__ import annotations

import json

import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib
from litepose_jax.search import costs
from tests.search.helpers import SPACE


def _preset(name: str) -> dict:
  # The official mobile_configs/search-*.json, shipped as the model-zoo presets.
  return arch_lib.load_preset_dict(name)


@pytest.mark.parametrize('arch,params,true_g,paper_g', [
    # SUPERNET_SPEC.md §8.2 (recomputed on the official code, J = 14).
    (lambda: _preset('XS'), 1_675_552, 0.883, 1.202),
    (lambda: _preset('L'), 5_738_120, 9.962, 13.713),
    (lambda: nas.largest(nas.OFFICIAL), 5_812_744, 10.895, 15.280),
    (lambda: nas.uniform(nas.OFFICIAL, 0.5, 512), 1_709_032, 3.486, 4.685),
])
def test_official_numbers(arch, params, true_g, paper_g):
  c = costs.arch_costs(arch())
  assert c['params'] == params
  assert round(c['macs_true'] / 1e9, 3) == true_g
  assert round(c['macs_paper'] / 1e9, 3) == paper_g


def test_official_json_file(reference_dir):
  # The official mobile_configs/search-XS.json as shipped with the reference material.
  with open(reference_dir / 'arch' / 'litepose-XS.json') as f:
    c = costs.arch_costs(json.load(f))
  assert c == {'params': 1_675_552, 'macs_true': costs.arch_costs(_preset('XS'))['macs_true'],
               'macs_paper': costs.arch_costs(_preset('XS'))['macs_paper']}
  assert round(c['macs_paper'] / 1e9, 3) == 1.202


def test_archspec_and_dict_agree_and_17_joints_cost_more():
  xs = _preset('XS')
  assert costs.arch_costs(models.resolve_arch(xs)) == costs.arch_costs(xs)
  # NUMBERS.md: XS for COCO (17 joints) has 1,675,912 parameters.
  assert costs.arch_costs(xs, 17)['params'] == 1_675_912


def test_paper_convention_exceeds_true_on_sub_nets():
  for arch in (nas.smallest(SPACE), nas.largest(SPACE), nas.sample(SPACE, 3)):
    c = costs.arch_costs(arch)
    assert 0 < c['macs_true'] < c['macs_paper']
    assert costs.arch_macs(arch, 'paper') == c['macs_paper']
    assert costs.arch_macs(arch) == c['macs_true']


def test_fusion_head_ablation_costs_less():
  arch = nas.largest(SPACE)
  full, plain = costs.arch_costs(arch), costs.arch_costs(arch, fusion=False)
  assert plain['params'] < full['params'] and plain['macs_true'] < full['macs_true']


def test_memoised_per_architecture_not_per_object():
  costs.clear_cache()
  arch = nas.sample(SPACE, 7)
  first = costs.arch_costs(arch)
  first['params'] = -1  # the caller's copy: the memo must not change
  # The same sub-net as a fresh dict with its keys in another order, and as an ArchSpec.
  shuffled = json.loads(json.dumps(dict(reversed(list(arch.items())))))
  again = costs.arch_costs(shuffled)
  spec = costs.arch_costs(models.resolve_arch(arch))
  assert again == spec and again['params'] > 0
  assert costs.cache_info() == {'hits': 2, 'misses': 1, 'size': 1}
  # Other joints or head: other entries.
  costs.arch_costs(arch, 17)
  costs.arch_costs(arch, fusion=False)
  assert costs.cache_info()['misses'] == 3


def test_bad_arguments_are_user_errors():
  arch = nas.smallest(SPACE)
  with pytest.raises(UserError, match='num_joints'):
    costs.arch_costs(arch, 0)
  with pytest.raises(UserError, match='fusion'):
    costs.arch_costs(arch, fusion='yes')
  with pytest.raises(UserError, match='arch must be'):
    costs.arch_costs('XS')
  with pytest.raises(UserError, match='img_size'):
    costs.arch_costs(dict(arch, img_size=100))
  with pytest.raises(UserError, match='convention'):
    costs.arch_macs(arch, 'flops')


def _traced(arch, num_joints, fusion):
  """Params, MACs and per-kind latency features of the model itself (an abstract trace)."""
  import math

  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from litepose_jax.models import counting
  from litepose_jax.models import layers
  model = models.create_model(arch, num_joints, fusion=fusion, depthwise_impl='lax',
                              conv_impl='lax')
  c = counting.count(model, arch['img_size'])
  kinds = {'dense_macs': 0, 'depthwise_macs': 0, 'deconv_macs': 0, 'elements': 0}

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    m, x = context.module, args[0]
    if context.method_name == '__call__' and isinstance(
        m, (layers.Conv, layers.DepthwiseConv, layers.Deconv)):
      if isinstance(m, layers.Conv):
        kinds['dense_macs'] += math.prod(out.shape) * x.shape[-1] * m.kernel_size ** 2
      elif isinstance(m, layers.DepthwiseConv):
        kinds['depthwise_macs'] += math.prod(out.shape) * m.kernel_size ** 2
      else:
        kinds['deconv_macs'] += math.prod(x.shape) * m.features * 16
      kinds['elements'] += math.prod(out.shape)
    return out

  x = jnp.zeros((1, arch['img_size'], arch['img_size'], 3), jnp.float32)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  return ({'params': c.params, 'macs_true': c.macs('true'), 'macs_paper': c.macs('paper')},
          kinds)


@pytest.mark.parametrize('seed', range(6))
def test_closed_form_equals_the_traced_model(seed):
  """costs.layer_table (what the search uses, microseconds) against the model's own trace."""
  from litepose_jax.search import latency
  space = nas.OFFICIAL if seed % 2 else SPACE
  arch = nas.sample(space, seed)
  num_joints, fusion = (17, seed % 3 != 0) if seed % 2 else (14, seed % 3 != 0)
  want, kinds = _traced(arch, num_joints, fusion)
  assert costs.arch_costs(arch, num_joints, fusion=fusion) == want
  f = dict(zip(latency.FEATURES, latency.features(arch, num_joints, fusion=fusion)))
  for key in ('dense_macs', 'depthwise_macs'):
    assert f[f'{key}_s8'] + f[f'{key}_s16'] == kinds[key], key
    assert f[f'{key}_s8'] > 0 and f[f'{key}_s16'] > 0, key
  assert f['deconv_macs'] == kinds['deconv_macs']
  assert f['elements_x_side'] == pytest.approx(kinds['elements'] * arch['img_size'] / 512)
