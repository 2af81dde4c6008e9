"""Shared builders of the nas tests: a shallow super-net space, quick-to-compile layers,
variables with non-trivial BatchNorm, flat views of variable trees, a data-only config file."""
import jax
import numpy as np

from litepose_jax import nas

# The official widths with 2 / 3 / 3 / 2 super-net blocks (sub-nets: 2 per stage): every code path
# of the official super-net at a fraction of the compile time.
SHALLOW_SPACE = nas.SearchSpace(depths=(2, 2, 2, 2), supernet_depths=(2, 3, 3, 2))
# XLA's own convolutions compile several times faster on CPU than the 'auto' CPU kernels.
LAX = {'depthwise_impl': 'lax', 'conv_impl': 'lax'}


def randomise_bn(variables, seed):
  """BN scale / var from U(0.5, 1.5), bias / mean from N(0, 0.2), in place (numpy leaves), so
  that BatchNorm handling errors show; returns `variables`."""
  rng = np.random.default_rng(seed)
  for path, a in jax.tree_util.tree_flatten_with_path(variables)[0]:
    name = path[-1].key
    if name in ('scale', 'var'):
      a[...] = rng.uniform(0.5, 1.5, a.shape)
    elif name in ('bias', 'mean'):
      a[...] = rng.normal(0, 0.2, a.shape)
  return variables


def flat(variables):
  """{'params/stem_pw/conv/kernel': numpy leaf} of a variable tree."""
  return {'/'.join(str(p.key) for p in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(variables)[0]}


def write_data_config(path, data_dir=None):
  """A config file whose only section is the pipeline's data (split 'train', eval split 'val');
  data_dir None leaves it to a --config.data.data_dir override. Returns `path`."""
  lines = ['import ml_collections', 'from litepose_jax.data import pipeline',
           'def get_config(arg=None):', '  c = ml_collections.ConfigDict()',
           '  c.data = pipeline.default_data_config()', '  c.data.split = "train"',
           '  c.data.num_parallel_calls = 1', '  c.eval = dict(split="val")', '  return c']
  if data_dir is not None:
    lines.insert(5, f'  c.data.data_dir = {str(data_dir)!r}')
  path.write_text('\n'.join(lines) + '\n')
  return path


def random_supernet(size=64, seed=0):
  """(super-net of SHALLOW_SPACE with LAX layers, its variables with randomised BatchNorm)."""
  from litepose_jax import models  # pylint: disable=g-import-not-at-top
  net = nas.create_supernet(14, SHALLOW_SPACE, **LAX)
  return net, randomise_bn(models.init_variables(net, size, seed), seed)


def shortened_sample(seed):
  """A sampled sub-net of SHALLOW_SPACE whose stage 2 runs 1 of the super-net's 3 blocks."""
  a = nas.sample(SHALLOW_SPACE, seed)
  a['backbone_setting'][2].update(num_blocks=1, block_setting=[[6, 7]])
  return a
