"""Import official LitePose PyTorch checkpoints (`litepose import-torch`).

The official state_dict key of every variable is derived from the variable's path in the model's
own variable tree (`models.variable_shapes`), by one naming rule per module kind below (official
lib/models/pose_mobilenet.py module names; docs/OFFICIAL.md, "Weight layout"). Layouts: conv
OIHW -> HWIO, depthwise (C, 1, k, k) -> (k, k, 1, C), transposed conv IOHW -> spatially flipped
HWIO (used with transpose_kernel=False).

`--arch supernet` imports the official super-net (pose_supermobilenet.py): the same keys at the
largest widths, plus dead kernel-transform layers that are skipped (SUPERNET_SKIPPED), written as
a super-net checkpoint (nas.supernet.supernet_model_config).

A HigherHRNet arch (preset 'higherhrnet-w32', 'shrink3', ..., a MODEL.EXTRA / whole-yaml dict or a
.yaml path) imports the official lib/models/pose_higher_hrnet.py state_dict (also the key names of
the HigherHRNet authors' released checkpoints): models/higherhrnet.py names every flax module after
its torch path with the numeric indices joined by '_' (hrnet_torch_key). An EfficientHRNet arch
('efficienthrnet-h1'..'-h4', an official yaml / dict) imports pose_efficient_hrnet.py's state_dict
by the same rule (models/efficient_hrnet.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import os
import pickle
import re
from typing import Any
import zipfile

import jax
import numpy as np

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.models import hrnet_arch

# Official module names of the children of each flax module kind: (flax name pattern, official
# name, the table of its own children). SepConv is the official SepConv2d, whose `conv`
# Sequential holds depthwise, BN, ReLU, 1x1 at indices 0, 1, 2, 3.
_SEPCONV = ((r'depthwise', '0', ()), (r'depthwise_bn', '1', ()), (r'pointwise', '3', ()))
_INVERTED_RESIDUAL = (
    (r'expand', 'inv.0', ()), (r'expand_bn', 'inv.1', ()),
    (r'depthwise', 'depth_conv.0', ()), (r'depthwise_bn', 'depth_conv.1', ()),
    (r'project', 'point_conv.0', ()), (r'project_bn', 'point_conv.1', ()))
_LITEPOSE = (
    (r'stem_conv', 'first.0.0', ()), (r'stem_conv_bn', 'first.0.1', ()),
    (r'stem_dw', 'first.1.0', ()), (r'stem_dw_bn', 'first.1.1', ()),
    (r'stem_pw', 'first.2', ()), (r'stem_pw_bn', 'first.3', ()),
    (r'stage(\d+)_block(\d+)', r'stage.\1.\2', _INVERTED_RESIDUAL),
    (r'deconv_(refined|raw)(\d+)', r'deconv_\1.\2', ()),
    (r'deconv_bn(\d+)', r'deconv_bnrelu.\1.0', ()),
    (r'final_(refined|raw)(\d+)', r'final_\1.\2.conv', _SEPCONV))


# The official super-net (pose_supermobilenet.py) has the fixed net's keys at its largest widths
# plus two Linear kernel transforms per block, for 5x5 / 3x3 kernels the search space never uses.
# Its checkpoints come with a 'module.' (DataParallel) or '1.' prefix (official weight_transfer.py
# strips '1.').
SUPERNET_PREFIXES = ('module.', '1.')
SUPERNET_SKIPPED = {
    r'stage\.\d+\.\d+\.Linear(5x5|3x3)\.(weight|bias)':
        'Linear5x5 / Linear3x3: kernel transforms of 5x5 / 3x3 depthwise crops, unused since '
        'every block of the search space has k = 7'}


def _conv(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 3, 1, 0)


def _deconv(w: np.ndarray) -> np.ndarray:
  return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)


# Leaf rules by layer kind. A kernel directly in a module is a depthwise conv's; Conv and Deconv
# hold theirs in a child 'conv' / 'deconv' (flax's nn.Conv / nn.ConvTranspose path), which has
# no official counterpart. BN leaves map to the torch BatchNorm2d names.
_KERNEL_LAYOUT = {'conv': _conv, 'deconv': _deconv, None: _conv}
_BN_LEAVES = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean', 'var': 'running_var'}

Layout = Callable[[np.ndarray], np.ndarray]


def _module_key(names: Sequence[str]) -> str:
  """Official dotted module name of a flax module path ('stage0_block1', 'expand') ->
  'stage.0.1.inv.0'."""
  table, out = _LITEPOSE, []
  for name in names:
    for pattern, official, children in table:
      match = re.fullmatch(pattern, name)
      if match:
        out.append(match.expand(official))
        table = children
        break
    else:
      raise ValueError(f'no official name for the flax module {"/".join(names)}')
  return '.'.join(out)


def torch_key(path: Sequence[str]) -> tuple[str, Layout | None]:
  """(collection, *module path, leaf) of a variable -> (official key, layout transform or None)."""
  _, *modules, leaf = path
  if leaf == 'kernel':
    kind = modules[-1] if modules[-1] in ('conv', 'deconv') else None
    if kind is not None:
      modules = modules[:-1]
    return f'{_module_key(modules)}.weight', _KERNEL_LAYOUT[kind]
  return f'{_module_key(modules)}.{_BN_LEAVES[leaf]}', None


# A HigherHRNet flax module name is its official torch path with '_' before each numeric index.
_HRNET_MODULE = re.compile(r'[a-z][a-z0-9]*(_[a-z][a-z0-9]*)*(_\d+)*')


def hrnet_torch_key(path: Sequence[str]) -> tuple[str, Layout | None]:
  """(collection, *module path, leaf) of a HigherHRNet variable -> (official key, layout or None).

  'stage4_0/fuse_layers_3_0_2_0/conv/kernel' -> 'stage4.0.fuse_layers.3.0.2.0.weight' (OIHW ->
  HWIO); a biased conv (final_layers_N) holds its conv as a child 'conv', which also drops out.
  A kernel directly in a module is a depthwise conv's (EfficientHRNet): (C, 1, k, k) -> HWIO.
  """
  _, *modules, leaf = path
  layout = None
  if leaf == 'kernel':
    kind = modules[-1] if modules[-1] in ('conv', 'deconv') else None
    layout = _KERNEL_LAYOUT[kind]
    if kind is not None:
      modules = modules[:-1]
      if modules[-1] == 'conv':  # a biased conv (higherhrnet.BiasConv, efficient_hrnet.BiasedConv)
        modules = modules[:-1]
    name = 'weight'
  else:
    name = _BN_LEAVES[leaf]  # BN leaves; a BiasConv's 'bias' maps to 'bias' alike
  for m in modules:
    if not _HRNET_MODULE.fullmatch(m):
      raise ValueError(f'no official name for the flax module {m!r} in {"/".join(path)}')
  return '.'.join([re.sub(r'_(\d)', r'.\1', m) for m in modules] + [name]), layout


def _key_fn(model: Any) -> Callable[[Sequence[str]], tuple[str, Layout | None]]:
  """The naming rule of `model`'s family: hrnet_torch_key for the HRNet families, torch_key
  else."""
  return hrnet_torch_key if _family(model) != 'LitePose' else torch_key


def _family(model: Any) -> str:
  """'LitePose', 'HigherHRNet' or 'EfficientHRNet' (for messages and the naming rule)."""
  if isinstance(model, models.EfficientHRNet):
    return 'EfficientHRNet'
  return 'HigherHRNet' if isinstance(model, models.HigherHRNet) else 'LitePose'


def key_map(model: Any) -> dict[tuple[str, ...], tuple[str, Layout | None]]:
  """(collection, *flax path) -> (official key, layout transform) for every variable of `model`
  (a LitePose, a HigherHRNet or an EfficientHRNet)."""
  key_fn = _key_fn(model)
  return {path: key_fn(path) for path in models.variable_shapes(model)}


def _to_numpy(v: Any) -> np.ndarray:
  if hasattr(v, 'detach'):  # torch.Tensor, without importing torch
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def _strip_prefix(key: str, prefixes: Sequence[str]) -> str:
  """`key` without the first of `prefixes` it starts with (at most one is removed)."""
  for prefix in prefixes:
    if key.startswith(prefix):
      return key[len(prefix):]
  return key


def _skip(sd: dict[str, Any], skipped: Mapping[str, str]) -> dict[str, Any]:
  """`sd` without the keys matching a pattern of `skipped`; one printed note per pattern used."""
  counts = dict.fromkeys(skipped, 0)
  kept = {}
  for key, v in sd.items():
    pattern = next((p for p in skipped if re.fullmatch(p, key)), None)
    if pattern is None:
      kept[key] = v
    else:
      counts[pattern] += 1
  for pattern, n in counts.items():
    if n:
      print(f'note: skipped {n} state_dict entries ({skipped[pattern]})')
  return kept


def torch_state_dict_to_variables(state_dict: Mapping[str, Any], arch: models.ArchLike,
                                  num_joints: int = 14, *, fusion: bool = True,
                                  prefixes: Sequence[str] = ('module.',),
                                  skipped: Mapping[str, str] | None = None) -> dict:
  """Official state_dict (numpy or torch values, optional 'module.' prefix) -> Flax variables.

  arch: a LitePose (pose_mobilenet.py keys), a HigherHRNet (pose_higher_hrnet.py keys) or an
  EfficientHRNet (pose_efficient_hrnet.py keys); see models.create_model for the accepted forms
  (fusion must stay True for the HRNet families).

  prefixes: leading key prefixes to strip (the first that matches, once per key).
  skipped: {regex matching whole keys (after the prefix): why} of entries to drop without
  importing them (e.g. SUPERNET_SKIPPED); a note says how many were dropped and why.
  Returns {'params': ..., 'batch_stats': ...} as nested dicts of float32 numpy arrays. Raises a
  UserError listing every missing, unexpected or mis-shaped key.
  """
  model = models.create_model(arch, num_joints, fusion=fusion, depthwise_impl='lax')
  sd = {_strip_prefix(k, prefixes): v for k, v in state_dict.items()}
  if skipped:
    sd = _skip(sd, skipped)
  shapes = models.variable_shapes(model)
  key_fn = _key_fn(model)
  keys = {path: key_fn(path) for path in shapes}
  missing, bad_shape = [], []
  flat = {}
  for path, (tkey, layout) in keys.items():
    if tkey not in sd:
      missing.append(tkey)
      continue
    v = _to_numpy(sd[tkey]).astype(np.float32)
    v = layout(v) if layout is not None else v
    if v.shape != shapes[path]:
      bad_shape.append(f'{tkey}: checkpoint {tuple(_to_numpy(sd[tkey]).shape)}, model expects '
                       f'{shapes[path]} (as {"/".join(path)})')
      continue
    flat[path] = np.ascontiguousarray(v)
  used = {tkey for tkey, _ in keys.values()}
  unexpected = sorted(k for k in sd if k not in used and not k.endswith('num_batches_tracked'))
  if missing or unexpected or bad_shape:
    parts = [f'state_dict does not match {_family(model)} {model.arch.name} with {num_joints} joints:']
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                         ('shape mismatches', bad_shape)):
      if items:
        shown = items[:20] + ([f'... and {len(items) - 20} more'] if len(items) > 20 else [])
        parts.append(f'  {title} ({len(items)}): ' + ', '.join(shown))
    raise UserError('\n'.join(parts))
  return models.nest_variables(flat)


def load_torch_checkpoint(path: str | os.PathLike) -> dict:
  """Reads a .pth (plain state_dict, or a dict holding 'state_dict' / 'model') as numpy arrays."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError('reading .pth files needs PyTorch: pip install torch==2.13.0 (CPU build is '
                     'enough)') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile) as e:
    # What torch.load raises for a corrupt or non-checkpoint file; anything else is a bug.
    raise UserError(f'{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})') from e
  for key in ('state_dict', 'model'):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
  if not isinstance(obj, Mapping):
    raise UserError(f'{path}: expected a state_dict (mapping of names to tensors), got '
                     f'{type(obj).__name__}')
  return {k: _to_numpy(v) for k, v in obj.items() if hasattr(v, 'shape')}


# --arch value that selects the official super-net (pose_supermobilenet.py) at the official size.
SUPERNET_ARCH = 'supernet'


def add_arguments(parser) -> None:
  hrnet_presets = ', '.join(hrnet_arch.preset_names())
  parser.add_argument('--arch', required=True,
                      help='preset (XS, S, M, L), the architecture JSON the checkpoint was '
                      f'trained with, or {SUPERNET_ARCH!r} for an official super-net checkpoint '
                      '(pose_supermobilenet, official search space; writes a super-net '
                      'checkpoint); for an official pose_higher_hrnet checkpoint, a HigherHRNet '
                      f'preset ({hrnet_presets}) or the experiment .yaml it was trained with; for '
                      'a pose_efficient_hrnet one, an EfficientHRNet preset (efficienthrnet-h1 '
                      '.. -h4) or its .yaml')
  parser.add_argument('--checkpoint', required=True, help='official .pth file')
  parser.add_argument('--out', required=True, help='output checkpoint directory (must be new)')
  parser.add_argument('--joints', type=int, default=14, help='14 (CrowdPose) or 17 (COCO)')
  parser.add_argument('--no-fusion', action='store_true', help='checkpoint of the plain deconv head')


def supernet_state_dict_to_variables(state_dict: Mapping[str, Any], num_joints: int = 14,
                                     space: Any = None, *, fusion: bool = True) -> dict:
  """Official super-net state_dict -> the variables of LitePose on `nas.max_arch(space)` (the
  official space when None); nas.torch_import.import_torch_supernet documents it."""
  # Imported here: nas.torch_import imports this module (the import runs after both are loaded).
  from litepose_jax.nas import space as space_lib  # pylint: disable=g-import-not-at-top
  space = space_lib.OFFICIAL if space is None else space
  arch = models.arch_from_dict(space_lib.max_arch(space), name=SUPERNET_ARCH)
  return torch_state_dict_to_variables(state_dict, arch, num_joints, fusion=fusion,
                                       prefixes=SUPERNET_PREFIXES, skipped=SUPERNET_SKIPPED)


def run(args) -> int:
  sd = load_torch_checkpoint(args.checkpoint)
  fusion = not args.no_fusion
  source = os.path.basename(args.checkpoint)
  if args.arch == SUPERNET_ARCH:
    from litepose_jax.nas import space as space_lib  # pylint: disable=g-import-not-at-top
    from litepose_jax.nas import supernet as supernet_lib  # pylint: disable=g-import-not-at-top
    variables = supernet_state_dict_to_variables(sd, args.joints, fusion=fusion)
    cfg = supernet_lib.supernet_model_config(space_lib.OFFICIAL, args.joints, fusion=fusion,
                                             source=source)
  else:
    variables = torch_state_dict_to_variables(sd, args.arch, args.joints, fusion=fusion)
    cfg = checkpoints.model_config(args.arch, args.joints, fusion=fusion, source=source)
  out = checkpoints.save_model(args.out, variables, cfg)
  n = sum(v.size for v in jax.tree.leaves(variables['params']))
  print(f'wrote {out} ({cfg["name"]}, {args.joints} joints, {n:,} parameters)')
  return 0
