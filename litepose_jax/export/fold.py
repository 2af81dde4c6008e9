"""BatchNorm folding for the export: a LitePose module + variables -> an inference-only function.

The network is not re-coded here: the export applies the model itself in its folded mode
(`LitePose(folded=True)`, see models/layers.py), where every BN that follows a conv or
transposed conv is folded into it,
  y = gamma * (conv(x, K) - mean) / sqrt(var + eps) + beta
    = conv(x, K * s) + (beta - mean * s),   s = gamma / sqrt(var + eps),
and the convs run as plain `lax.conv_general_dilated` / `lax.conv_transpose` plus a bias, the
pattern the TFLite converter turns into CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV with a fused
bias (and fused RELU / RELU6). The fusion head sums two transposed convs before its BN: both
kernels are scaled and the bias is added once. The heatmap and tag halves of the stride-4 output
are separate 1x1 convs, so they come out as separate tensors without a slice op. 7x7 / 9x9
depthwise convs are sums of small dilated sub-convs (models/depthwise_split.py) unless
band_depthwise=False.

The variables are numpy: the folded kernels are computed in numpy while tracing and enter the
graph as constants (the converter does not always constant-fold ops traced on constants).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.models import LitePose
from litepose_jax.models import variable_shapes


def _check_variables(module: LitePose, variables: Mapping[str, Any]) -> None:
  """Raises a UserError listing the variables missing from, or mis-shaped for, `module`."""
  want = variable_shapes(module)
  have = {tuple(p.key for p in path): np.shape(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(dict(variables))[0]}
  missing = sorted('/'.join(p) for p in want if p not in have)
  bad = sorted(f'{"/".join(p)} {have[p]} (expected {s})' for p, s in want.items()
               if p in have and have[p] != s)
  if missing or bad:
    shown = (missing + bad)[:10]
    raise UserError(f'variables do not fit LitePose {module.arch.name} with {module.num_joints} '
                    f'joints (do they belong to this architecture?): {len(missing)} missing, '
                    f'{len(bad)} mis-shaped: ' + ', '.join(shown))
  for path, leaf in jax.tree_util.tree_flatten_with_path(dict(variables['batch_stats']))[0]:
    if path[-1].key == 'var' and np.any(np.asarray(leaf) < 0):
      name = '/'.join(p.key for p in path)
      raise UserError(f'batch_stats {name} has negative entries: the checkpoint is corrupt')


def fold_variables(module: LitePose, variables: Mapping[str, Any],
                   band_depthwise: bool = True) -> dict:
  """The export form of `module` with `variables`: {'module': its folded clone, 'variables':
  float32 numpy copies}, checked against the module's own variable tree.

  band_depthwise: compute 7x7 / 9x9 depthwise convs as sums of small dilated sub-convs
  (numerically the same sum in another order; much faster under XNNPACK).

  The result holds numpy arrays and a module: close over it (as the export does) instead of
  passing it through `jax.jit` as an argument.
  """
  for col in ('params', 'batch_stats'):
    if col not in variables:
      raise UserError(f'variables lack the {col!r} collection (have {sorted(variables)})')
  variables = {col: jax.tree.map(lambda v: np.asarray(v, np.float32), dict(variables[col]))
               for col in ('params', 'batch_stats')}
  _check_variables(module, variables)
  folded = module.clone(folded=True, depthwise_impl='split' if band_depthwise else 'lax',
                        conv_impl='lax', dtype=jnp.float32)
  return {'module': folded, 'variables': variables}


def folded_apply(folded: Mapping[str, Any], images):
  """images [B, H, W, 3] normalised -> (heatmaps4 [B,H/4,W/4,J], tags4 [B,H/4,W/4,J],
  heatmaps2 [B,H/2,W/2,J]); equal to the unfolded model's outputs."""
  heatmaps4, tags4, heatmaps2 = folded['module'].apply(folded['variables'],
                                                       images.astype(jnp.float32))
  return heatmaps4, tags4, heatmaps2


def random_variables(module: LitePose, size: int, seed: int = 0) -> dict:
  """Randomly initialised variables with non-trivial BN parameters and statistics.

  For benchmarking and tests only (the folding is exercised, the predictions are meaningless).
  gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), mean ~ N(0, 0.1), var ~ U(0.5, 2).
  """
  variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, size, size, 3), jnp.float32))
  rng = np.random.default_rng(seed)

  def perturb(path, leaf):
    name = path[-1].key
    shape = np.shape(leaf)
    if name == 'scale':
      return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if name in ('bias', 'mean'):
      return rng.normal(0.0, 0.1, shape).astype(np.float32)
    if name == 'var':
      return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return np.asarray(leaf, np.float32)

  params = jax.tree_util.tree_map_with_path(perturb, dict(variables['params']))
  stats = jax.tree_util.tree_map_with_path(perturb, dict(variables['batch_stats']))
  return {'params': params, 'batch_stats': stats}
