"""A standalone LitePose cut out of super-net variables (official weight_transfer.py).

The super-net's variables are those of `LitePose` built on the largest architecture (see
models/litepose.py). A sub-net is any smaller architecture in the official JSON schema; its
variables are the super-net's, path by path, sliced to the shapes the sub-net's own `init` has:
- every channel axis keeps its leading channels (official lib/models/layers/super_layers.py:
  conv weight `[:out, :in]`, transposed conv `[:in, :out]`, BatchNorm scale, bias, mean and var
  `[:C]`; in our HWIO kernels both are kernel[..., :in, :out]);
- a depthwise kernel's spatial axes take the centred k x k crop of the super-net's kernel (the
  whole 7x7 for k = 7; official pose_supermobilenet.py crops the centre for k = 5 / 3);
- a stage with fewer blocks keeps its first n blocks (blocks beyond are not copied);
- the output layers keep all 2J / J output channels (official weight_transfer.py copies whole
  rows), so both nets must have the same number of joints.
Unlike the official transfer, the whole network is copied, head included.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from litepose_jax import models
from litepose_jax.errors import UserError

# Shown per kind of problem in an error message; the rest are counted.
_MAX_LISTED = 20


def _flatten(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
  """{(collection, *module path, leaf name): leaf} of a nested variable tree (dict or FrozenDict)."""
  if not isinstance(variables, Mapping) or 'params' not in variables:
    raise UserError('supernet_variables must be a LitePose variable tree '
                    f"{{'params': ..., 'batch_stats': ...}}, got {type(variables).__name__}"
                    + (f' with keys {sorted(variables)}' if isinstance(variables, Mapping) else ''))
  leaves = jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  return {tuple(str(getattr(p, 'key', p)) for p in path): v for path, v in leaves}


def _is_head_output(path: tuple[str, ...]) -> bool:
  """The 1x1 conv of an output layer (final_*/pointwise): its output axis is never sliced."""
  return len(path) > 2 and path[1].startswith('final_') and path[2] == 'pointwise'


def _slices(path: tuple[str, ...], big: tuple[int, ...], small: tuple[int, ...]) -> tuple:
  """The index that cuts a leaf of shape `big` down to `small` (checked to fit by the caller).

  Spatial axes of a kernel [kh, kw, in, out] take the centred crop (offset (K - k) // 2, as the
  official l = 3 - k // 2 for a 7x7 kernel); every other axis its leading entries.
  """
  spatial = 2 if path[-1] == 'kernel' and len(big) == 4 else 0
  index = []
  for axis, (b, s) in enumerate(zip(big, small)):
    lo = (b - s) // 2 if axis < spatial else 0
    index.append(slice(lo, lo + s))
  return tuple(index)


def _problem(path: tuple[str, ...], big: tuple[int, ...] | None, small: tuple[int, ...],
             num_joints: int) -> str | None:
  """Why the super-net leaf (shape `big`, None if absent) cannot give the sub-net's, or None."""
  name = '/'.join(path)
  if big is None:
    return f'{name}: missing in the super-net (the sub-net needs shape {small})'
  if len(big) != len(small):
    return f'{name}: the sub-net needs shape {small}, the super-net has {big}'
  if _is_head_output(path) and big[-1] != small[-1]:
    return (f'{name}: the super-net has {big[-1]} output channels, the sub-net {small[-1]} '
            f'(num_joints={num_joints}); output channels are copied whole, so both nets need '
            'the same number of joints')
  if any(s > b for b, s in zip(big, small)):
    return f'{name}: the sub-net needs shape {small}, larger than the super-net\'s {big}'
  return None


def _check_residuals(flat: Mapping[tuple[str, ...], Any], arch: models.ArchSpec) -> None:
  """Raises a UserError where a first block's residual differs between sub-net and super-net.

  LitePose adds a residual where stride is 1 and the block keeps its width: for a stage's first
  block, from its own widths; the official super-net decides from its maximum widths (official
  pose_supermobilenet.py). Inside the official space they agree (stage 2 and stage 3 widths never
  coincide); an architecture outside it could make the extracted net compute something else.
  """
  widths = arch.channels
  for si, stage in enumerate(arch.stages):
    expand = flat.get(('params', f'stage{si}_block0', 'expand', 'conv', 'kernel'))
    project = flat.get(('params', f'stage{si}_block0', 'project', 'conv', 'kernel'))
    if stage.stride != 1 or expand is None or project is None:
      continue  # stride 2 never adds; a missing block is reported with the other paths
    sub_res = widths[si] == widths[si + 1]
    super_res = expand.shape[2] == project.shape[3]
    if sub_res != super_res:
      raise UserError(
          f'backbone_setting[{si}]: the first block of stage {si} maps {widths[si]} -> '
          f'{widths[si + 1]} channels, {"with" if sub_res else "without"} a residual connection, '
          f'but the super-net\'s ({expand.shape[2]} -> {project.shape[3]}) is '
          f'{"with" if super_res else "without"} one: the extracted net would not compute the '
          'super-net\'s sub-net')


def extract_subnet(supernet_variables: Mapping[str, Any], arch: models.ArchLike,
                   num_joints: int = 14, *, fusion: bool = True) -> dict:
  """Variables of the standalone `create_model(arch, num_joints, fusion=fusion)`, cut out of the
  super-net's (first-k channels, centred kernel crops, first-n blocks; see the module docstring).

  supernet_variables: {'params', 'batch_stats'} of LitePose built on the largest architecture
  (numpy or jax arrays); leaves the sub-net does not use (deeper blocks) are ignored.
  arch: a preset name, a dict in the official JSON schema, a JSON path or an ArchSpec.
  Returns nested dicts of numpy arrays (copies, the super-net's dtypes), the tree the sub-net's
  `init` creates, e.g. params/stage1_block0/expand/conv/kernel [1, 1, C1, hidden].
  Raises a UserError listing every leaf missing in the super-net or larger than its own, output
  layers whose joint count differs, and a stride-1 first block whose residual would differ.
  """
  flat_super = _flatten(supernet_variables)
  model = models.create_model(arch, num_joints, fusion=fusion, depthwise_impl='lax')
  shapes = models.variable_shapes(model)
  problems, flat = [], {}
  for path, small in shapes.items():
    leaf = flat_super.get(path)
    big = None if leaf is None else tuple(np.shape(leaf))
    problem = _problem(path, big, small, num_joints)
    if problem is not None:
      problems.append(problem)
      continue
    # np.array copies: the sub-net's arrays never alias the super-net's buffers.
    flat[path] = np.array(np.asarray(leaf)[_slices(path, big, small)])
  if problems:
    shown = problems[:_MAX_LISTED]
    if len(problems) > _MAX_LISTED:
      shown.append(f'... and {len(problems) - _MAX_LISTED} more')
    raise UserError(f'cannot extract the sub-net (architecture {model.arch.name}) from the '
                    f'super-net variables, {len(problems)} problems:\n  ' + '\n  '.join(shown))
  _check_residuals(flat_super, model.arch)
  return models.nest_variables(flat)
