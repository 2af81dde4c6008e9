"""Channel sorting by importance: super-net initialisation from a trained largest network.

A super-net's sub-nets are the first-k channels of every layer (extract.py), so a super-net
initialised from a trained standalone largest net should hold the most important channels first
(official pose_supermobilenet.py `re_organize_weights`, SUPERNET_SPEC.md §2.6). The importance of
a feature channel is the L1 norm, over (out, kh, kw), of the input weights of the layers that
read it. `sort_channels` permutes each channel space in stable descending order of importance,
and permutes it everywhere it appears, so that the network computes exactly the same function:
- its producers: the conv kernels' output axes, their BatchNorm scale, bias AND running mean and
  variance (the official code leaves the running statistics in the old order, a bug);
- the layers it passes through channel by channel (a depthwise conv and its BN);
- its consumers: the input axes of the convs and transposed convs that read it, head included.

A channel space is a set of channels that share one index: the stem output, each stage's output
(its blocks' residual additions tie every block's project output to it, and a stage whose first
block adds a residual shares the previous stage's space), each block's hidden channels (expand
output, depthwise, project input) and each deconv level's output.

scope='official' sorts what the official code sorts: the stem and stages 0..n-2, each ordered by
the next stage's first expand conv alone; the head keeps its weights (the official code
re-initialises it) so its raw-feature inputs are permuted too. scope='all' sorts every elastic
channel space (adds the last stage, the hidden channels and the deconv levels) and orders each by
the SUM of the L1 norms over every layer that reads it (a stage: its later blocks' expand convs,
the next stage's first expand conv and the head layers that read its output). The sum counts
every reader as the sliced sub-nets use them all; being a plain (not normalised) sum, it weights
readers by the size of their kernels (a 4x4 deconv's column outweighs a 1x1 conv's). The
fixed 32-channel stem layers and the J output channels are not elastic and are never permuted.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import types
from typing import Any

import jax
import numpy as np

from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.nas import space as space_lib

SCOPES = ('official', 'all')

# (variable path (collection, *module path, leaf name), axis): one axis of one leaf.
_Axis = tuple[tuple[str, ...], int]


@dataclasses.dataclass
class _Space:
  """One channel space: every leaf axis it indexes, and whose input weights rank it."""
  name: str
  members: list[_Axis] = dataclasses.field(default_factory=list)
  readers: list[_Axis] = dataclasses.field(default_factory=list)  # scope='all'
  official: list[_Axis] = dataclasses.field(default_factory=list)  # scope='official'

  def read_by(self, axis: _Axis, official: bool = False) -> None:
    """A consumer's input axis: permuted with the space and counted in its importance."""
    self.members.append(axis)
    self.readers.append(axis)
    if official:
      self.official.append(axis)


def _conv(name: str) -> tuple[str, ...]:
  return ('params', *name.split('/'), 'conv', 'kernel')


def _deconv(name: str) -> tuple[str, ...]:
  return ('params', name, 'deconv', 'kernel')


def _dw(name: str) -> tuple[str, ...]:
  return ('params', *name.split('/'), 'kernel')


def _bn(name: str) -> list[_Axis]:
  """The four per-channel leaves of BatchNorm `name` (a module path joined by '/')."""
  parts = tuple(name.split('/'))
  return [(('params', *parts, 'scale'), 0), (('params', *parts, 'bias'), 0),
          (('batch_stats', *parts, 'mean'), 0), (('batch_stats', *parts, 'var'), 0)]


def _sep_conv_reads(space: _Space, name: str) -> None:
  """Output layer `name` (SepConv) reads `space`: its depthwise conv and BN pass the channels
  through to the pointwise conv's input; the depthwise kernel ranks them."""
  space.read_by((_dw(f'{name}/depthwise'), 3))
  space.members.extend(_bn(f'{name}/depthwise_bn'))
  space.members.append((_conv(f'{name}/pointwise'), 2))


def _channel_spaces(arch: models.ArchSpec, fusion: bool) -> list[_Space]:
  """Every elastic channel space of LitePose(arch), with the data flow of models/litepose.py."""
  stem = _Space('stem', [(_conv('stem_pw'), 3), *_bn('stem_pw_bn')])
  spaces = [stem]
  feats = [stem]  # the space of each backbone feature: stem, stage 0, .., stage n-1
  widths = arch.channels
  for si, stage in enumerate(arch.stages):
    if stage.stride == 1 and widths[si] == stage.channels:
      out = feats[-1]  # the first block adds its input: output and input share one index
      out.name += f'+stage{si}'
    else:
      out = _Space(f'stage{si}')
      spaces.append(out)
    for bi in range(len(stage.blocks)):
      block = f'stage{si}_block{bi}'
      if bi == 0:
        # The official ranking of a stage's channels: the next stage's first expand conv.
        feats[-1].read_by((_conv(f'{block}/expand'), 2), official=True)
      else:
        out.read_by((_conv(f'{block}/expand'), 2))
      hidden = _Space(f'{block}/hidden', [(_conv(f'{block}/expand'), 3), *_bn(f'{block}/expand_bn'),
                                          (_dw(f'{block}/depthwise'), 3),
                                          *_bn(f'{block}/depthwise_bn')])
      hidden.read_by((_conv(f'{block}/project'), 2))
      spaces.append(hidden)
      out.members.extend([(_conv(f'{block}/project'), 3), *_bn(f'{block}/project_bn')])
    feats.append(out)

  # Fusion Deconv Head: level i reads the refined path and the raw feature feats[-(i + 2)];
  # levels i >= 1 feed final_refined{i-1} and final_raw{i-1} (raw input feats[-(i + 3)]).
  refined = feats[-1]
  for i in range(len(arch.deconv_setting)):
    level = _Space(f'deconv{i}', [(_deconv(f'deconv_refined{i}'), 3)])
    refined.read_by((_deconv(f'deconv_refined{i}'), 2))
    if fusion:
      level.members.append((_deconv(f'deconv_raw{i}'), 3))
      feats[-(i + 2)].read_by((_deconv(f'deconv_raw{i}'), 2))
    level.members.extend(_bn(f'deconv_bn{i}'))
    if i > 0:
      _sep_conv_reads(level, f'final_refined{i - 1}')
      if fusion:
        _sep_conv_reads(feats[-(i + 3)], f'final_raw{i - 1}')
    spaces.append(level)
    refined = level
  return spaces


def _flatten(variables: Any, argument: str) -> dict[tuple[str, ...], Any]:
  """{(collection, *module path, leaf name): leaf} of a nested variable tree."""
  if not isinstance(variables, Mapping) or 'params' not in variables:
    raise UserError(f"{argument} must be a LitePose variable tree {{'params': ..., "
                    f"'batch_stats': ...}}, got {type(variables).__name__}"
                    + (f' with keys {sorted(variables)}' if isinstance(variables, Mapping) else ''))
  leaves = jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  return {tuple(str(getattr(p, 'key', p)) for p in path): v for path, v in leaves}


def _check_shapes(flat: Mapping[tuple[str, ...], Any],
                  shapes: Mapping[tuple[str, ...], tuple[int, ...]], argument: str,
                  what: str) -> None:
  """UserError naming the first leaf of `flat` missing, of another shape, or extra."""
  for path, want in shapes.items():
    name = '/'.join(path)
    if path not in flat:
      raise UserError(f'{argument}: {name} is missing ({what} has shape {want} there)')
    got = tuple(np.shape(flat[path]))
    if got != want:
      raise UserError(f'{argument}: {name} has shape {got}, {what} has {want}')
  extra = sorted(set(flat) - set(shapes))
  if extra:
    raise UserError(f'{argument}: {"/".join(extra[0])} is not a variable of {what}'
                    + (f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''))


def _model_shapes(arch: models.ArchLike, num_joints: int, fusion: bool):
  """(LitePose, its variable_shapes) for `arch`; cached, as tracing the shapes takes a while."""
  return _cached_model_shapes(models.resolve_arch(arch), num_joints, fusion)


@functools.lru_cache(maxsize=16)
def _cached_model_shapes(spec: models.ArchSpec, num_joints: int, fusion: bool):
  model = models.create_model(spec, num_joints, fusion=fusion, depthwise_impl='lax')
  return model, types.MappingProxyType(models.variable_shapes(model))


def _importance(flat: Mapping[tuple[str, ...], Any], sources: list[_Axis]) -> np.ndarray:
  """Sum over `sources` of the L1 norm of each leaf over every axis but the channel axis [C]."""
  total = None
  for path, axis in sources:
    a = np.abs(np.asarray(flat[path], np.float64))
    norm = a.sum(axis=tuple(i for i in range(a.ndim) if i != axis))
    total = norm if total is None else total + norm
  return total


def _sorted_spaces(arch: models.ArchSpec, fusion: bool, scope: str) -> list[tuple[_Space, list]]:
  if scope not in SCOPES:
    raise UserError(f'scope must be one of {SCOPES}, got {scope!r}')
  spaces = _channel_spaces(arch, fusion)
  if scope == 'official':
    return [(s, s.official) for s in spaces if s.official]
  return [(s, s.readers) for s in spaces]


def channel_importance(variables: Mapping[str, Any], arch: models.ArchLike, num_joints: int = 14,
                       *, fusion: bool = True, scope: str = 'all') -> dict[str, np.ndarray]:
  """{channel space name: importance [C] (float64)} of every space `scope` sorts.

  Names: 'stem', 'stage{s}', 'stage{s}_block{b}/hidden', 'deconv{i}' ('stem+stage{s}' etc.
  where a first block's residual joins two spaces). See the module docstring for the scopes.
  """
  model, shapes = _model_shapes(arch, num_joints, fusion)
  flat = _flatten(variables, 'variables')
  _check_shapes(flat, shapes, 'variables', f'LitePose({model.arch.name}, J={num_joints})')
  return {s.name: _importance(flat, sources)
          for s, sources in _sorted_spaces(model.arch, fusion, scope)}


def sort_channels(variables: Mapping[str, Any], arch: models.ArchLike, num_joints: int = 14, *,
                  fusion: bool = True, scope: str = 'all') -> dict:
  """Variables of `create_model(arch, num_joints, fusion=fusion)` with every channel space of
  `scope` ('official' or 'all') permuted in descending importance (stable sort), so that first-k
  slicing keeps the most important channels; the network function is unchanged.

  variables: {'params', 'batch_stats'} (numpy or jax leaves, left untouched). Returns nested
  dicts of numpy copies (same dtypes). UserError naming the first leaf whose shape differs.
  """
  model, shapes = _model_shapes(arch, num_joints, fusion)
  flat = _flatten(variables, 'variables')
  _check_shapes(flat, shapes, 'variables', f'LitePose({model.arch.name}, J={num_joints})')
  # Orders come from the input variables: a space's readers are other spaces' members only along
  # other axes, which do not change its L1 norms, so the order of the spaces does not matter.
  perms: dict[_Axis, tuple[str, np.ndarray]] = {}
  for space, sources in _sorted_spaces(model.arch, fusion, scope):
    order = np.argsort(-_importance(flat, sources), kind='stable')
    for member in space.members:
      if member in perms:
        raise AssertionError(f'{"/".join(member[0])} axis {member[1]} is in channel spaces '
                             f'{perms[member][0]} and {space.name}')
      if np.shape(flat[member[0]])[member[1]] != order.size:
        raise AssertionError(f'{"/".join(member[0])} axis {member[1]} does not index channel '
                             f'space {space.name} ({order.size} channels)')
      perms[member] = (space.name, order)
  out = {path: np.array(leaf) for path, leaf in flat.items()}
  for (path, axis), (_, order) in perms.items():
    out[path] = np.take(out[path], order, axis=axis)
  return models.nest_variables(out)


def _is_head(path: tuple[str, ...]) -> bool:
  """A leaf of the Fusion Deconv Head (the official code drops keys with 'deconv' / 'final')."""
  return path[1].startswith(('deconv_', 'final_'))


def init_supernet_from(largest_variables: Mapping[str, Any], space: space_lib.SearchSpace,
                       num_joints: int = 14, *, sort: bool = True, fresh_head: bool = False,
                       seed: int = 0, scope: str = 'all', fusion: bool = True) -> dict:
  """Super-net variables (those of LitePose(max_arch(space))) from a trained standalone largest
  net's: channels sorted by importance (`sort`, `scope`), then, with fresh_head, the head's
  deconv_* / final_* leaves re-initialised (seed) as the official get_pose_net does.

  The ordering is computed before the head is replaced, from the trained head's weights too.
  Returns nested dicts of numpy copies. UserError naming the first leaf missing, extra or of
  another shape than the largest net's.
  """
  if not isinstance(space, space_lib.SearchSpace):
    raise UserError(f'space must be a SearchSpace, got {type(space).__name__}')
  arch = space_lib.max_arch(space)
  model, shapes = _model_shapes(arch, num_joints, fusion)
  flat = _flatten(largest_variables, 'largest_variables')
  _check_shapes(flat, shapes, 'largest_variables',
                f'the largest net of the space (LitePose(max_arch(space)), J={num_joints})')
  variables = (sort_channels(largest_variables, arch, num_joints, fusion=fusion, scope=scope)
               if sort else models.nest_variables({p: np.array(v) for p, v in flat.items()}))
  if not fresh_head:
    return variables
  fresh = _flatten(models.init_variables(model, seed=seed), 'init_variables')
  out = _flatten(variables, 'variables')
  return models.nest_variables({p: fresh[p] if _is_head(p) else v for p, v in out.items()})
