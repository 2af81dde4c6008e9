"""Import official LitePose PyTorch checkpoints (`litepose import-torch`).

Key names follow the official state_dict (spec 1.7, ../shared/reference/litepose-S-state-dict.txt);
layouts are converted as spec 1.8 prescribes: conv OIHW -> HWIO, depthwise (C,1,k,k) -> (k,k,1,C),
transposed conv IOHW -> spatially flipped HWIO (used with transpose_kernel=False).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import checkpoints
from litepose_jax import models

_BN = {'scale': ('params', 'weight'), 'bias': ('params', 'bias'),
       'mean': ('batch_stats', 'running_mean'), 'var': ('batch_stats', 'running_var')}


def _conv(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 3, 1, 0)


def _deconv(w: np.ndarray) -> np.ndarray:
  return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)


def _key_map(model: models.LitePose) -> dict[tuple[str, ...], tuple[str, Any]]:
  """(collection, *flax path) -> (torch key, layout transform) for every variable of `model`."""
  m: dict[tuple[str, ...], tuple[str, Any]] = {}

  def conv(flax_path, torch_prefix, fn=_conv):
    m[('params',) + flax_path + ('kernel',)] = (f'{torch_prefix}.weight', fn)

  def bn(flax_path, torch_prefix):
    for leaf, (col, tname) in _BN.items():
      m[(col,) + flax_path + (leaf,)] = (f'{torch_prefix}.{tname}', None)

  conv(('stem_conv', 'conv'), 'first.0.0')
  bn(('stem_conv_bn',), 'first.0.1')
  conv(('stem_dw',), 'first.1.0')
  bn(('stem_dw_bn',), 'first.1.1')
  conv(('stem_pw', 'conv'), 'first.2')
  bn(('stem_pw_bn',), 'first.3')
  for si, stage in enumerate(model.arch.stages):
    for bi in range(len(stage.blocks)):
      f, t = f'stage{si}_block{bi}', f'stage.{si}.{bi}'
      conv((f, 'expand', 'conv'), f'{t}.inv.0')
      bn((f, 'expand_bn'), f'{t}.inv.1')
      conv((f, 'depthwise'), f'{t}.depth_conv.0')
      bn((f, 'depthwise_bn'), f'{t}.depth_conv.1')
      conv((f, 'project', 'conv'), f'{t}.point_conv.0')
      bn((f, 'project_bn'), f'{t}.point_conv.1')
  branches = ('refined', 'raw') if model.fusion else ('refined',)
  for i in range(len(model.arch.deconv_setting)):
    for br in branches:
      m[('params', f'deconv_{br}{i}', 'deconv', 'kernel')] = (f'deconv_{br}.{i}.weight', _deconv)
    bn((f'deconv_bn{i}',), f'deconv_bnrelu.{i}.0')
  for j in range(2):
    for br in branches:
      f, t = f'final_{br}{j}', f'final_{br}.{j}.conv'
      conv((f, 'depthwise'), f'{t}.0')
      bn((f, 'depthwise_bn'), f'{t}.1')
      conv((f, 'pointwise', 'conv'), f'{t}.3')
  return m


def _to_numpy(v: Any) -> np.ndarray:
  if hasattr(v, 'detach'):  # torch.Tensor, without importing torch
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def torch_state_dict_to_variables(state_dict: Mapping[str, Any], arch: models.ArchLike,
                                  num_joints: int = 14, *, fusion: bool = True) -> dict:
  """Official state_dict (numpy or torch values, optional 'module.' prefix) -> Flax variables.

  Returns {'params': ..., 'batch_stats': ...} as nested dicts of float32 numpy arrays. Raises a
  ValueError listing every missing, unexpected or mis-shaped key.
  """
  model = models.create_model(arch, num_joints, fusion=fusion, depthwise_impl='lax')
  sd = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state_dict.items()}
  size = model.arch.img_size
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  flat_shapes = {tuple(getattr(p, 'key', p) for p in path): s.shape
                 for path, s in jax.tree_util.tree_flatten_with_path(dict(shapes))[0]}
  key_map = _key_map(model)
  assert set(key_map) == set(flat_shapes), 'converter key map out of sync with the model'

  used = set()
  missing, bad_shape = [], []
  flat = {}
  for path, (tkey, fn) in key_map.items():
    if tkey not in sd:
      missing.append(tkey)
      continue
    used.add(tkey)
    v = _to_numpy(sd[tkey]).astype(np.float32)
    v = fn(v) if fn is not None else v
    if v.shape != flat_shapes[path]:
      bad_shape.append(f'{tkey}: checkpoint {tuple(_to_numpy(sd[tkey]).shape)}, model expects '
                       f'{flat_shapes[path]} (as {"/".join(path)})')
      continue
    flat[path] = np.ascontiguousarray(v)
  unexpected = sorted(k for k in sd if k not in used and not k.endswith('num_batches_tracked'))
  if missing or unexpected or bad_shape:
    parts = [f'state_dict does not match LitePose {model.arch.name} with {num_joints} joints:']
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                         ('shape mismatches', bad_shape)):
      if items:
        shown = items[:20] + ([f'... and {len(items) - 20} more'] if len(items) > 20 else [])
        parts.append(f'  {title} ({len(items)}): ' + ', '.join(shown))
    raise ValueError('\n'.join(parts))

  variables: dict = {}
  for path, v in flat.items():
    node = variables
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = v
  return variables


def load_torch_checkpoint(path: str | os.PathLike) -> dict:
  """Reads a .pth (plain state_dict, or a dict holding 'state_dict' / 'model') as numpy arrays."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError('reading .pth files needs PyTorch: pip install torch==2.13.0 (CPU build is '
                     'enough)') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises many types for corrupt / non-checkpoint files
    raise ValueError(f'{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})') from e
  for key in ('state_dict', 'model'):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path}: expected a state_dict (mapping of names to tensors), got '
                     f'{type(obj).__name__}')
  return {k: _to_numpy(v) for k, v in obj.items() if hasattr(v, 'shape')}


def add_arguments(parser) -> None:
  parser.add_argument('--arch', required=True,
                      help='preset (XS, S, M, L) or the architecture JSON the checkpoint was trained with')
  parser.add_argument('--checkpoint', required=True, help='official .pth file')
  parser.add_argument('--out', required=True, help='output checkpoint directory (must be new)')
  parser.add_argument('--joints', type=int, default=14, help='14 (CrowdPose) or 17 (COCO)')
  parser.add_argument('--no-fusion', action='store_true', help='checkpoint of the plain deconv head')


def run(args) -> int:
  sd = load_torch_checkpoint(args.checkpoint)
  fusion = not args.no_fusion
  variables = torch_state_dict_to_variables(sd, args.arch, args.joints, fusion=fusion)
  cfg = checkpoints.model_config(args.arch, args.joints, fusion=fusion,
                                 source=os.path.basename(args.checkpoint))
  out = checkpoints.save_model(args.out, variables, cfg)
  n = sum(v.size for v in jax.tree.leaves(variables['params']))
  print(f'wrote {out} ({cfg["name"]}, {args.joints} joints, {n:,} parameters)')
  return 0
