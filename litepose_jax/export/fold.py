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

  band_depthwise: compute 7x7 / 9x9 depthwise convs as sums of small dilated sub-convs
  (numerically the same sum in another order; much faster under XNNPACK, see `_PIECES`).

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
  if band and groups > 1 and (k, s) in _PIECES:
    return _depthwise_split(x, np.asarray(layer['kernel']), s, jnp.asarray(layer['bias']))
  p = k // 2
  y = lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)), dimension_numbers=_DN,
                               feature_group_count=groups)
  return y + jnp.asarray(layer['bias'])


# A 7x7 (9x9) depthwise conv, symmetric padding, as a sum of 'SAME'-padded dilated sub-convs
# whose taps partition the kernel's 49 (81) taps: no PAD / SLICE copies, every sub-conv within
# XNNPACK's fast micro-kernels (ai-edge-litert 2.3: 4, 9 or 25 taps; a 49-tap depthwise conv
# runs ~25x slower than a 25-tap one). Each sub-conv is ((rows, row dilation), (columns, column
# dilation)); 'SAME' padding makes it read the kernel's taps at fixed offsets, and taps outside
# the kernel are zero.
# Per (kernel, stride) the covers in order of preference: the first that partitions the kernel on
# the input's size is used. Chosen with scripts/bench_dwcover.py (exact cover search, timed on the
# S block shapes, fp32 and int8, 2 threads; docs/BENCHMARKS.md).
_PIECES = {
    # Stride 1: 'SAME' is symmetric, offsets -(n - 1) d / 2 + i d. 21 + 8 + 20 taps (25 + 9 + 25
    # micro-kernel taps; the row split 3 / 2 / 2 it replaces ran 25 + 25 + 25). Fastest in int8
    # everywhere; in fp32 seven 9-tap sub-convs win on 28x28 maps by ~10%.
    (7, 1): ((((7, 1), (3, 2)),     # rows -3..3 x columns -2, 0, 2
              ((2, 6), (4, 2)),     # rows -3, 3 x columns -3, -1, 1, 3
              ((5, 1), (4, 2))),),  # rows -2..2 x columns -3, -1, 1, 3
    # Stride 2: on even sizes 'SAME' pads one less before than after, offsets start at
    # -((n - 1) d - 1) // 2. First: rows 0, 2 x column -3 | row -2 x column -3 | row -3 x
    # columns -3..3 | rows -1, 1, 3 x columns -3..3 | rows -2, 0, 2 x columns -2..3 (4 + 4 + 16 +
    # 24 + 24 taps; even sizes only, 1.6x faster in fp32 than the second on S). Second, for any
    # size: rows -2 | -1, 3 | 0, 2 | -3, 1 on even sizes (-3, 3 | -2, 2 | -1, 1 | 0 on odd ones)
    # x columns -3..3. Zero taps pad e.g. row -3 (k=2, d=7 reads -3 and 4). (A one-row sub-conv
    # was converted to PAD + VALID: its 'SAME' padding is negative before the clamp.)
    (7, 2): ((((2, 2), (2, 7)), ((2, 6), (2, 7)), ((2, 7), (8, 1)), ((3, 2), (8, 1)),
              ((4, 2), (6, 1))),
             (((2, 6), (8, 1)), ((2, 4), (8, 1)), ((2, 2), (8, 1)), ((3, 4), (8, 1)))),
    # 9x9 (the kernel-size sweep): rows -4, 4 | -3, 3 x columns -4..4, rows -2..2 x columns
    # -4, -2, .., 4 | -3, -1, 1, 3 (18 + 18 + 25 + 20 taps; 81 taps in one conv ran ~30x slower).
    (9, 1): ((((2, 8), (9, 1)), ((2, 6), (9, 1)), ((5, 1), (5, 2)), ((5, 1), (4, 2))),),
    # Stride 2, any size: rows -4 | -3, 4 | -2, 3 x columns -4..4, rows -1..2 x columns -4 |
    # -3, 4 | -2..3 (even sizes; 20 + 20 + 20 + 8 + 8 + 24 taps).
    (9, 2): ((((2, 9), (10, 1)), ((2, 7), (10, 1)), ((2, 5), (10, 1)), ((4, 1), (2, 9)),
              ((4, 1), (2, 7)), ((4, 1), (6, 1))),),
}


def _same_offsets(n: int, d: int, size: int, stride: int) -> list[int]:
  """Input offsets (relative to stride * output index) of the n taps of a 'SAME' conv axis."""
  extent = (n - 1) * d + 1
  out = -(-size // stride)
  before = max((out - 1) * stride + extent - size, 0) // 2
  return [i * d - before for i in range(n)]


def _cover(k: int, stride: int, height: int, width: int, covers=None):
  """[(sub-kernel row / column indices into the k x k kernel (-1: zero tap), dilations)] of the
  first cover (default: _PIECES[(k, stride)]) whose real taps partition the kernel on this input
  size."""
  p = k // 2
  for pieces in _PIECES[(k, stride)] if covers is None else covers:
    hits = np.zeros((k, k), int)
    out = []
    for (nr, dr), (nc, dc) in pieces:
      rows = [o + p if -p <= o <= p else -1 for o in _same_offsets(nr, dr, height, stride)]
      cols = [o + p if -p <= o <= p else -1 for o in _same_offsets(nc, dc, width, stride)]
      hits[np.ix_([r for r in rows if r >= 0], [c for c in cols if c >= 0])] += 1
      out.append((rows, cols, (dr, dc)))
    if (hits == 1).all():
      return out
  raise ValueError(f'no {k}x{k} stride-{stride} sub-conv cover partitions the kernel on a '
                   f'{height}x{width} input')


def _depthwise_split(x, kernel, stride: int, bias=None, covers=None):
  """Depthwise conv with symmetric k//2 padding as a sum of 'SAME'-padded dilated sub-convs of
  <= 25 taps (_PIECES, or `covers` in its format; same result). The bias goes onto the first
  sub-conv so the converter fuses it into that conv."""
  k, c = kernel.shape[0], x.shape[-1]
  # kernel: a numpy array. Sub-kernels are sliced in numpy: a gather traced on a large constant
  # is not always constant-folded by the converter (it left GATHER_ND + TRANSPOSE in a 9x9 S).
  padded_kernel = np.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index -1: 0
  out = None
  for rows, cols, dilation in _cover(k, stride, x.shape[1], x.shape[2], covers):
    sub = padded_kernel[np.asarray(rows)][:, np.asarray(cols)]
    y = lax.conv_general_dilated(x, sub, (stride, stride), 'SAME', rhs_dilation=dilation,
                                 dimension_numbers=_DN, feature_group_count=c)
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
