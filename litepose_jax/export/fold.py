"""BatchNorm folding: a LitePose module + variables -> an inference-only pure function.

Every BN (running statistics) that follows a conv or transposed conv is folded into it:
  y = gamma * (conv(x, K) - mean) / sqrt(var + eps) + beta
    = conv(x, K * s) + (beta - mean * s),   s = gamma / sqrt(var + eps)
(scale on the kernel's output axis, which is the last axis of HWIO for dense, depthwise and
transposed kernels alike). The head's fusion level sums two transposed convs before its BN, so the
scale goes into both kernels and the shift becomes the bias of the refined one.

`folded_apply` uses plain `lax.conv_general_dilated` / `lax.conv_transpose` with a bias add, the
pattern the TFLite converter turns into CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV with a fused
bias (and fused RELU / RELU6). The tag and heatmap halves of the stride-4 output use separate 1x1
kernels so that heatmaps and tags come out as separate tensors without a slice op.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
from jax import lax
import numpy as np

from litepose_jax.models import LitePose

BN_EPS = 1e-5  # layers.batch_norm (PyTorch default)
_DN = ('NHWC', 'HWIO', 'NHWC')


def _get(tree: Mapping[str, Any], path: str):
  node = tree
  for key in path.split('/'):
    if not isinstance(node, Mapping) or key not in node:
      raise ValueError(f'variables lack {path!r} (missing key {key!r}); do they belong to this '
                       'LitePose architecture?')
    node = node[key]
  return np.asarray(node, np.float32)


def _bn(variables: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
  """(scale, shift) of the BN `name` (a '/'-separated path below params / batch_stats)."""
  gamma = _get(variables['params'], f'{name}/scale')
  beta = _get(variables['params'], f'{name}/bias')
  mean = _get(variables['batch_stats'], f'{name}/mean')
  var = _get(variables['batch_stats'], f'{name}/var')
  if np.any(var < 0):
    raise ValueError(f'batch_stats {name}/var has negative entries: the checkpoint is corrupt')
  scale = gamma / np.sqrt(var + BN_EPS)
  return scale, beta - mean * scale


def _conv_bn(variables, kernel_path: str, bn_name: str, stride: int = 1) -> dict:
  kernel = _get(variables['params'], kernel_path)
  scale, shift = _bn(variables, bn_name)
  if kernel.shape[-1] != scale.shape[0]:
    raise ValueError(f'{kernel_path} has {kernel.shape[-1]} output channels but {bn_name} has '
                     f'{scale.shape[0]}')
  return {'kernel': kernel * scale, 'bias': shift, 'stride': stride}


def fold_variables(module: LitePose, variables: Mapping[str, Any],
                   band_depthwise: bool = True) -> dict:
  """Folds every BN of `module`'s variables into conv kernels and biases (numpy leaves).

  band_depthwise: compute 7x7 depthwise convs as three row-band convs (numerically the same
  sum in another order; much faster under XNNPACK, see `_ROW_BANDS`).

  The result mixes numpy arrays and python ints (strides): close over it (as the export does)
  instead of passing it through `jax.jit` as an argument.
  """
  for col in ('params', 'batch_stats'):
    if col not in variables:
      raise ValueError(f'variables lack the {col!r} collection (have {sorted(variables)})')
  v, j = variables, module.num_joints
  folded: dict[str, Any] = {
      'num_joints': j,
      'band_depthwise': bool(band_depthwise),
      'stem': [_conv_bn(v, 'stem_conv/conv/kernel', 'stem_conv_bn', 2),
               _conv_bn(v, 'stem_dw/kernel', 'stem_dw_bn'),
               _conv_bn(v, 'stem_pw/conv/kernel', 'stem_pw_bn')],
      'stages': [],
  }
  for si, stage in enumerate(module.arch.stages):
    blocks = []
    for bi in range(len(stage.blocks)):
      p = f'stage{si}_block{bi}'
      blocks.append({
          'expand': _conv_bn(v, f'{p}/expand/conv/kernel', f'{p}/expand_bn'),
          'depthwise': _conv_bn(v, f'{p}/depthwise/kernel', f'{p}/depthwise_bn',
                                stage.stride if bi == 0 else 1),
          'project': _conv_bn(v, f'{p}/project/conv/kernel', f'{p}/project_bn'),
      })
    folded['stages'].append(blocks)

  deconvs = []
  for i in range(len(module.arch.deconv_setting)):
    scale, shift = _bn(v, f'deconv_bn{i}')
    level = {'refined': _get(v['params'], f'deconv_refined{i}/deconv/kernel') * scale,
             'bias': shift}
    if module.fusion:
      level['raw'] = _get(v['params'], f'deconv_raw{i}/deconv/kernel') * scale
    deconvs.append(level)
  folded['deconv'] = deconvs

  finals = []
  branches = ('refined', 'raw') if module.fusion else ('refined',)
  for k in range(2):
    level = {}
    for b in branches:
      name = f'final_{b}{k}'
      level[b] = {'depthwise': _conv_bn(v, f'{name}/depthwise/kernel', f'{name}/depthwise_bn'),
                  'pointwise': _get(v['params'], f'{name}/pointwise/conv/kernel')}
    finals.append(level)
  folded['final'] = finals
  return folded


def _conv(x, layer: Mapping[str, Any], band: bool = False):
  """Conv (dense or depthwise, chosen by the kernel's input axis) + bias, symmetric padding."""
  kernel = jnp.asarray(layer['kernel'])
  k, s = kernel.shape[0], layer.get('stride', 1)
  groups = x.shape[-1] if kernel.shape[2] == 1 and x.shape[-1] > 1 else 1
  if band and groups > 1 and k in _ROW_BANDS:
    return _depthwise_banded(x, kernel, s, jnp.asarray(layer['bias']))
  p = k // 2
  y = lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)), dimension_numbers=_DN,
                               feature_group_count=groups)
  return y + jnp.asarray(layer['bias'])


# Rows of a 7x7 depthwise kernel per sub-conv: 7 + 21 + 21 taps. XNNPACK (ai-edge-litert 2.3)
# runs depthwise kernels of <= 25 taps with fast single-pass micro-kernels but 49 taps ~8x slower
# per MAC (measured: 1.8 vs 14 GMAC/s), so a 7x7 is cheaper as three row bands summed.
_ROW_BANDS = {7: ((0, 1), (1, 4), (4, 7))}


# Stride 1: kernel rows as (first row, rows, row dilation) around the centre: the middle three
# rows, rows -2 / +2 (dilation 4) and rows -3 / +3 (dilation 6). Each sub-conv keeps the symmetric
# 'SAME' padding of its own dilated height, so all three read the unpadded input directly (no
# PAD / SLICE copies); 21 + 14 + 14 taps, each within XNNPACK's single-pass kernels.
_DILATED_ROWS = {7: ((2, 3, 1), (1, 2, 4), (0, 2, 6))}


def _depthwise_dilated_rows(x, kernel, bias=None):
  """Stride-1 depthwise conv, symmetric padding, as a sum of row-dilated sub-convs (+ bias)."""
  k, c = kernel.shape[0], x.shape[-1]
  out = None
  for r0, n, d in _DILATED_ROWS[k]:
    sub = kernel[r0::d][:n]
    ph, pw = (n - 1) * d // 2, k // 2
    y = lax.conv_general_dilated(x, sub, (1, 1), ((ph, ph), (pw, pw)), rhs_dilation=(d, 1),
                                 dimension_numbers=_DN, feature_group_count=c)
    if out is None:
      out = y if bias is None else y + bias
    else:
      out = out + y
  return out


def _depthwise_banded(x, kernel, stride: int, bias=None):
  """Depthwise conv with symmetric k//2 padding as a sum of sub-convs of <= 25 taps (same result).

  Stride 1: row-dilated sub-convs (_DILATED_ROWS); stride 2: row-band VALID convs of the padded
  input. The bias goes onto the first sub-conv so the converter fuses it into that conv.
  """
  if stride == 1 and kernel.shape[0] in _DILATED_ROWS:
    return _depthwise_dilated_rows(x, kernel, bias)
  k, p = kernel.shape[0], kernel.shape[0] // 2
  h = x.shape[1]
  ho = (h + 2 * p - k) // stride + 1
  padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  out = None
  for a0, a1 in _ROW_BANDS[k]:
    band = padded[:, a0:a0 + (ho - 1) * stride + (a1 - a0)]
    y = lax.conv_general_dilated(band, kernel[a0:a1], (stride, stride), 'VALID',
                                 dimension_numbers=_DN, feature_group_count=x.shape[-1])
    if out is None:
      out = y if bias is None else y + bias
    else:
      out = out + y
  return out


def _conv1x1(x, kernel):
  return lax.conv_general_dilated(x, jnp.asarray(kernel), (1, 1), 'VALID', dimension_numbers=_DN)


def _deconv(x, kernel):
  # Same op as layers.Deconv: flax ConvTranspose(transpose_kernel=False), padding 2 per side.
  return lax.conv_transpose(x, jnp.asarray(kernel), (2, 2), ((2, 2), (2, 2)),
                            dimension_numbers=_DN)


def _relu6(x):
  return jnp.clip(x, 0.0, 6.0)


def folded_apply(folded: Mapping[str, Any], images):
  """images [B, H, W, 3] normalised -> (heatmaps4 [B,H/4,W/4,J], tags4 [B,H/4,W/4,J],
  heatmaps2 [B,H/2,W/2,J]); equal to the unfolded model's outputs."""
  j = folded['num_joints']
  x = images.astype(jnp.float32)
  stem = folded['stem']
  y = _relu6(_conv(x, stem[0]))
  y = _relu6(_conv(y, stem[1]))
  y = _conv(y, stem[2])
  feats = [y]
  for blocks in folded['stages']:
    for block in blocks:
      z = _relu6(_conv(y, block['expand']))
      z = _relu6(_conv(z, block['depthwise'], folded.get('band_depthwise', False)))
      z = _conv(z, block['project'])
      if block['depthwise']['stride'] == 1 and z.shape == y.shape:
        z = z + y
      y = z
    feats.append(y)

  outputs = []
  refined = feats[-1]
  for i, level in enumerate(folded['deconv']):
    up = _deconv(refined, level['refined']) + jnp.asarray(level['bias'])
    if 'raw' in level:
      up = up + _deconv(feats[-(i + 2)], level['raw'])
    refined = jnp.maximum(up, 0.0)
    if i == 0:
      continue
    final = folded['final'][i - 1]
    inputs = {'refined': refined, 'raw': feats[-(i + 3)]}
    hidden = {b: jnp.maximum(_conv(inputs[b], final[b]['depthwise']), 0.0) for b in final}
    # Split the 1x1 kernels so heatmaps and tags are separate convs (no slice in the graph).
    splits = [(0, j), (j, 2 * j)] if i == 1 else [(0, j)]
    for lo, hi in splits:
      out = None
      for b in final:
        term = _conv1x1(hidden[b], final[b]['pointwise'][..., lo:hi])
        out = term if out is None else out + term
      outputs.append(out)
  heatmaps4, tags4, heatmaps2 = outputs
  return heatmaps4, tags4, heatmaps2


def random_variables(module: LitePose, size: int, seed: int = 0) -> dict:
  """Randomly initialised variables with non-trivial BN parameters and statistics.

  For benchmarking and tests only (the folding is exercised, the predictions are meaningless).
  gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), mean ~ N(0, 0.1), var ~ U(0.5, 2).
  """
  import jax  # local: keeps this module importable without initialising a backend
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
