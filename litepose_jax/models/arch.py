"""LitePose architecture descriptions: the official JSON schema, presets and validation.

The official `mobile_configs/*.json` schema is accepted as is:
  {"img_size": 448, "input_channel": 16, "deconv_setting": [32, 24, 32],
   "backbone_setting": [{"num_blocks": 6, "stride": 2, "channel": 16,
                         "block_setting": [[6, 7], ...]}, ... x4]}
where each block_setting entry is [expansion t, depthwise kernel k].
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from importlib import resources
import json
import os
from typing import Any

from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError

PRESET_NAMES = ('XS', 'S', 'M', 'L')
ALLOWED_KERNELS = (3, 5, 7, 9)
# Fixed by the official model: a 32-channel stem, four stages, three deconv levels
# (docs/OFFICIAL.md, "Architecture").
STEM_CHANNELS = 32
NUM_STAGES = 4
NUM_DECONVS = 3


def make_divisible(v: float, divisor: int = 8) -> int:
  """The official `_make_divisible`: rounds to a multiple of divisor, never below 90% of v."""
  new = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new < 0.9 * v:
    new += divisor
  return new


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  expansion: int
  kernel: int


@dataclasses.dataclass(frozen=True)
class StageSpec:
  channels: int
  stride: int
  blocks: tuple[BlockSpec, ...]


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """A resolved, validated architecture (hashable so it can be a flax module attribute)."""
  img_size: int
  input_channel: int
  deconv_setting: tuple[int, ...]
  stages: tuple[StageSpec, ...]
  name: str = 'custom'

  @property
  def channels(self) -> tuple[int, ...]:
    """[C0, C1, C2, C3, C4]: stem and stage output channels."""
    return (self.input_channel,) + tuple(s.channels for s in self.stages)

  def to_json_dict(self) -> dict:
    """Back to the official JSON schema."""
    return {
        'img_size': self.img_size,
        'input_channel': self.input_channel,
        'deconv_setting': list(self.deconv_setting),
        'backbone_setting': [{
            'num_blocks': len(s.blocks), 'stride': s.stride, 'channel': s.channels,
            'block_setting': [[b.expansion, b.kernel] for b in s.blocks]} for s in self.stages],
    }

  def replace(self, *, kernel_size: int | None = None, width_mult: float = 1.0) -> ArchSpec:
    """Applies the ablation overrides: a global depthwise kernel and a width multiplier."""
    if kernel_size is not None and kernel_size not in ALLOWED_KERNELS:
      raise UserError(f'kernel_size must be one of {ALLOWED_KERNELS}, got {kernel_size}')
    if not width_mult > 0:
      raise UserError(f'width_mult must be positive, got {width_mult}')
    stages = tuple(
        StageSpec(make_divisible(s.channels * width_mult), s.stride,
                  tuple(BlockSpec(b.expansion, kernel_size or b.kernel) for b in s.blocks))
        for s in self.stages)
    return dataclasses.replace(self, input_channel=make_divisible(self.input_channel * width_mult),
                               stages=stages)


def _field(d: Mapping[str, Any], key: str, where: str) -> Any:
  if key not in d:
    raise UserError(f'{where}: missing field {key!r} (have {sorted(d)})')
  return d[key]


def _positive_int(v: Any, where: str) -> int:
  if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
    raise UserError(f'{where} must be a positive integer, got {v!r}')
  return v


def arch_from_dict(d: Mapping[str, Any], name: str = 'custom') -> ArchSpec:
  """Validates a dict in the official JSON schema and returns an ArchSpec."""
  if not isinstance(d, Mapping):
    raise UserError(f'{name}: architecture must be a JSON object, got {type(d).__name__}')
  img = _positive_int(_field(d, 'img_size', name), f'{name}: img_size')
  if img % 16:
    raise UserError(f'{name}: img_size must be a multiple of 16, got {img}')
  c0 = _positive_int(_field(d, 'input_channel', name), f'{name}: input_channel')
  deconv = _field(d, 'deconv_setting', name)
  if not isinstance(deconv, (list, tuple)) or len(deconv) != NUM_DECONVS:
    raise UserError(f'{name}: deconv_setting must be a list of {NUM_DECONVS} channel counts, '
                     f'got {deconv!r}')
  deconv = tuple(_positive_int(c, f'{name}: deconv_setting[{i}]') for i, c in enumerate(deconv))
  backbone = _field(d, 'backbone_setting', name)
  if not isinstance(backbone, (list, tuple)) or len(backbone) != NUM_STAGES:
    raise UserError(f'{name}: backbone_setting must list {NUM_STAGES} stages, got '
                     f'{len(backbone) if isinstance(backbone, (list, tuple)) else backbone!r}')
  stages = []
  for si, st in enumerate(backbone):
    w = f'{name}: backbone_setting[{si}]'
    if not isinstance(st, Mapping):
      raise UserError(f'{w} must be an object, got {st!r}')
    ch = _positive_int(_field(st, 'channel', w), f'{w}.channel')
    stride = _field(st, 'stride', w)
    if stride not in (1, 2):
      raise UserError(f'{w}.stride must be 1 or 2, got {stride!r}')
    blocks = _field(st, 'block_setting', w)
    n = _positive_int(_field(st, 'num_blocks', w), f'{w}.num_blocks')
    if not isinstance(blocks, (list, tuple)) or len(blocks) != n:
      raise UserError(f'{w}.block_setting must have num_blocks={n} entries, got '
                       f'{len(blocks) if isinstance(blocks, (list, tuple)) else blocks!r}')
    specs = []
    for bi, b in enumerate(blocks):
      if not isinstance(b, (list, tuple)) or len(b) != 2:
        raise UserError(f'{w}.block_setting[{bi}] must be [expansion, kernel], got {b!r}')
      t = _positive_int(b[0], f'{w}.block_setting[{bi}] expansion')
      k = b[1]
      if k not in ALLOWED_KERNELS:
        raise UserError(f'{w}.block_setting[{bi}] kernel must be one of {ALLOWED_KERNELS}, '
                         f'got {k!r}')
      specs.append(BlockSpec(t, k))
    stages.append(StageSpec(ch, stride, tuple(specs)))
  # The head adds stage outputs of equal size: total stride must be 16 with stages 2 and 3 equal.
  strides = [s.stride for s in stages]
  if strides != [2, 2, 2, 1]:
    raise UserError(f'{name}: stage strides must be [2, 2, 2, 1] (the fusion head needs feature '
                     f'strides 4, 8, 16, 16), got {strides}')
  return ArchSpec(img, c0, deconv, tuple(stages), name=name)


def load_preset_dict(name: str) -> dict:
  """The official JSON of a preset ('XS', 'S', 'M', 'L') as a dict."""
  key = name.upper()
  if key not in PRESET_NAMES:
    raise UserError(f'unknown preset {name!r}; choose one of {list(PRESET_NAMES)}')
  text = resources.files('litepose_jax.models').joinpath(f'presets/litepose-{key}.json').read_text()
  return json.loads(text)


ArchLike = str | os.PathLike | Mapping[str, Any] | ArchSpec


def resolve_arch(arch: ArchLike) -> ArchSpec:
  """Accepts a preset name, a dict in the official schema, a JSON path or an ArchSpec."""
  if isinstance(arch, ArchSpec):
    return arch
  if isinstance(arch, Mapping):
    return arch_from_dict(arch)
  if isinstance(arch, (str, os.PathLike)):
    s = os.fspath(arch)
    if s.upper() in PRESET_NAMES:
      return arch_from_dict(load_preset_dict(s), name=s.upper())
    if s.endswith('.json') or os.path.sep in s or os.path.exists(s):
      if not os.path.isfile(s):
        raise FileNotFoundError(f'architecture file not found: {s}')
      try:
        with open(s) as f:
          d = json.load(f)
      except json.JSONDecodeError as e:
        raise UserError(f'{s}: not valid JSON ({e})') from e
      return arch_from_dict(d, name=s)
    raise UserError(f'unknown architecture {s!r}: use a preset ({", ".join(PRESET_NAMES)}), '
                     'a path to an official architecture JSON, or a dict in that schema')
  raise TypeError(f'arch must be a preset name, JSON path, dict or ArchSpec, got {type(arch)}')


@dataclasses.dataclass(frozen=True)
class Preset:
  """A model-zoo entry: architecture, input size and the joint sets it is published for."""
  name: str
  arch: ArchSpec
  joint_sets: tuple[joints_lib.JointSet, ...] = (joints_lib.CROWDPOSE, joints_lib.COCO)

  @property
  def img_size(self) -> int:
    return self.arch.img_size


def get_preset(name: str) -> Preset:
  """The zoo entry for 'XS', 'S', 'M' or 'L'."""
  return Preset(name.upper(), resolve_arch(name))
