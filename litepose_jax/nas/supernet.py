"""The weight-shared super-net: one LitePose at the largest widths that runs every sub-net.

Sharing is the official one (lib/models/pose_supermobilenet.py, layers/super_layers.py): a
sub-net's tensors are the first-k channels of the super-net's (conv [:in, :out] of our HWIO
kernels, depthwise [:hidden] with its whole kernel, one BatchNorm per layer sliced to the active
channels), its stages run their first n blocks, and a block has a residual iff it is not the
first of its stage. Slicing with static shapes would compile one XLA program per sub-net (245,760
of them), so the super-net always runs the largest widths and zeroes the inactive channels with
0 / 1 masks right after each BatchNorm (layers.conv_bn):
- BN, ReLU, depthwise convs are per channel and zero channels add nothing to a 1x1 conv or a
  transposed conv, so active channels compute exactly what the sliced sub-net computes, and the
  masked channels' weights get zero gradients;
- batch statistics are per channel (an inactive channel's are computed and discarded) and only
  active channels update the running statistics;
- a block beyond a stage's n has all-zero masks: its residual branch adds nothing and its running
  statistics stay.
Masks are arrays passed to the step, so a jitted step compiles once per input resolution whatever
the sub-net (`subnet_masks` outside jit, then `apply(variables, images, masks)`).

The variables are exactly those of `LitePose` on the largest architecture (`max_arch(space)`), so
extraction (extract.py), the PyTorch importer and checkpoints treat them as a LitePose.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.models.litepose import LitePose
from litepose_jax.nas import space as space_lib

# model.json field that marks a super-net checkpoint (its value: the search space's fields).
SUPERNET_FIELD = 'supernet'


def _first(n: int, size: int) -> np.ndarray:
  """[size] float32 mask with ones on the first n entries."""
  m = np.zeros(size, np.float32)
  m[:n] = 1.0
  return m


class SuperLitePose(LitePose):
  """The super-net: `apply(variables, images [B, H, W, 3], arch=None, train=False)` ->
  (out4 [B, H/4, W/4, 2J], out2 [B, H/2, W/2, J]) of the sub-net `arch`.

  arch: a sub-net (official-schema dict, ArchSpec or JSON path, inside `space`; any num_blocks up
  to the super-net's), its `subnet_masks` (what a jitted step should pass: arrays, one compile per
  resolution), or None for the largest net. `arch` must be the super-net's largest architecture.
  """
  space: space_lib.SearchSpace = space_lib.OFFICIAL

  def __call__(self, x, arch=None, train: bool = False):  # pylint: disable=arguments-renamed
    masks = None if arch is None else (arch if is_masks(arch) else subnet_masks(self, arch))
    return LitePose.__call__(self, x, train, masks)


def is_masks(obj: Any) -> bool:
  """Whether `obj` is a `subnet_masks` tree rather than an architecture."""
  return isinstance(obj, Mapping) and 'blocks' in obj and 'stem' in obj


def subnet_masks(supernet: LitePose, arch: models.ArchLike, *, check: bool = True) -> dict:
  """Channel masks of sub-net `arch` inside `supernet` (numpy float32, 0 / 1):

  {'stem': [C0], 'stages': [[C1], .., [C4]], 'deconv': [[F0], [F1], [F2]],
   'blocks': [[(hidden [H], out [C]) per block] per stage]} at the super-net's widths.
  A block beyond the sub-net's num_blocks has zero masks (it passes its input through).
  check: validate `arch` against `supernet.space` first (elastic depth; UserError naming the
  field) when the super-net is a SuperLitePose.
  """
  big = supernet.arch
  spec = models.resolve_arch(arch)
  space = getattr(supernet, 'space', None)
  if check and space is not None:
    space_lib.validate(spec, space, elastic_depth=True)
  _check_fits(spec, big)
  widths = spec.channels
  masks = {
      'stem': _first(spec.input_channel, big.input_channel),
      'stages': [_first(s.channels, b.channels) for s, b in zip(spec.stages, big.stages)],
      'deconv': [_first(f, fb) for f, fb in zip(spec.deconv_setting, big.deconv_setting)],
      'blocks': [],
  }
  for si, (stage, bstage) in enumerate(zip(spec.stages, big.stages)):
    blocks = []
    for bi, bblock in enumerate(bstage.blocks):
      cin_big = big.channels[si] if bi == 0 else bstage.channels
      hidden_big = models.make_divisible(round(cin_big * bblock.expansion), 8)
      if bi >= len(stage.blocks):
        blocks.append((np.zeros(hidden_big, np.float32), np.zeros(bstage.channels, np.float32)))
        continue
      cin = widths[si] if bi == 0 else stage.channels
      hidden = models.make_divisible(round(cin * stage.blocks[bi].expansion), 8)
      blocks.append((_first(hidden, hidden_big), _first(stage.channels, bstage.channels)))
    masks['blocks'].append(blocks)
  return masks


def _check_fits(spec: models.ArchSpec, big: models.ArchSpec) -> None:
  """UserError where `spec` is not a first-k / first-n sub-net of `big` the masks can express."""
  def fail(field, msg):
    raise UserError(f'{spec.name}: {field}: {msg} (super-net {big.name})')
  if spec.input_channel > big.input_channel:
    fail('input_channel', f'{spec.input_channel} > the super-net\'s {big.input_channel}')
  for i, (f, fb) in enumerate(zip(spec.deconv_setting, big.deconv_setting)):
    if f > fb:
      fail(f'deconv_setting[{i}]', f'{f} > the super-net\'s {fb}')
  for si, (s, b) in enumerate(zip(spec.stages, big.stages)):
    where = f'backbone_setting[{si}]'
    if s.channels > b.channels:
      fail(f'{where}.channel', f'{s.channels} > the super-net\'s {b.channels}')
    if len(s.blocks) > len(b.blocks):
      fail(f'{where}.num_blocks', f'{len(s.blocks)} > the super-net\'s {len(b.blocks)}')
    if s.stride != b.stride:
      fail(f'{where}.stride', f'{s.stride} differs from the super-net\'s {b.stride}')
    for bi, (blk, bblk) in enumerate(zip(s.blocks, b.blocks)):
      if blk.kernel != bblk.kernel or blk.expansion > bblk.expansion:
        fail(f'{where}.block_setting[{bi}]',
             f'[{blk.expansion}, {blk.kernel}]: the super-net runs [t <= {bblk.expansion}, '
             f'k = {bblk.kernel}] there (no kernel search)')


def create_supernet(num_joints: int = 14, space: space_lib.SearchSpace = space_lib.OFFICIAL, *,
                    fusion: bool = True, depthwise_impl: str = 'auto', dtype: Any = jnp.float32,
                    conv_impl: str = 'auto') -> SuperLitePose:
  """The super-net of `space` (largest widths, `supernet_depths` blocks) for `num_joints`."""
  base = models.create_model(space_lib.max_arch(space), num_joints, fusion=fusion,
                             depthwise_impl=depthwise_impl, dtype=dtype, conv_impl=conv_impl)
  arch = dataclasses.replace(base.arch, name='supernet')
  return SuperLitePose(arch, num_joints, fusion, depthwise_impl, dtype, conv_impl, space=space)


def supernet_model_config(space: space_lib.SearchSpace, num_joints: int = 14, *,
                          fusion: bool = True, joint_set: str | None = None, **extra: Any) -> dict:
  """model.json of a super-net checkpoint: the largest LitePose (what `load_model` builds, so
  every command runs the super-net as its largest sub-net) plus the search space."""
  return checkpoints.model_config(
      models.arch_from_dict(space_lib.max_arch(space), name='supernet'), num_joints,
      joint_set=joint_set, fusion=fusion, **{SUPERNET_FIELD: space_lib.space_to_json(space)},
      **extra)


def supernet_from_config(cfg: Mapping[str, Any], **overrides: Any) -> SuperLitePose:
  """The SuperLitePose a super-net checkpoint's model.json describes (UserError otherwise)."""
  if SUPERNET_FIELD not in cfg:
    raise UserError(f'{checkpoints.MODEL_JSON} has no {SUPERNET_FIELD!r} field: not a super-net '
                    'checkpoint (train one with configs/supernet.py or import one with '
                    '`litepose import-torch --arch supernet`)')
  space = space_lib.space_from_json(cfg[SUPERNET_FIELD], f'{checkpoints.MODEL_JSON}: supernet')
  return create_supernet(cfg['num_joints'], space, fusion=cfg.get('fusion', True), **overrides)


def load_supernet(path, **overrides: Any):
  """(SuperLitePose, variables, model.json) from a super-net checkpoint dir or training workdir."""
  _, variables, cfg = checkpoints.load_model(path)
  return supernet_from_config(cfg, **overrides), variables, cfg
