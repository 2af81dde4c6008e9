"""EfficientHRNet architecture descriptions: the official yaml's MODEL fields, validation, presets.

EfficientHRNet (Neff et al.; LitePose's lib/models/pose_efficient_hrnet.py, SUPERNET_SPEC.md §7.2)
is an EfficientNet-B0 backbone scaled by WIDTH_MULT / DEPTH_MULT whose stride 4 / 8 / 16 / 32
features feed HRNet stages 2-4 and the HigherHRNet head, every HRNet width scaled by
1.2455^SCALE_FACTOR. The schema is that of experiments/crowd_pose/efficient_hrnet/H-{1..4}.yaml:

  MODEL:
    SCALE_FACTOR: -3                  # HRNet / deconv widths ceil(c * 1.2455^SCALE_FACTOR)
    WIDTH_MULT: 0.751                 # EfficientNet widths (rounded to multiples of 8)
    DEPTH_MULT: 0.578                 # EfficientNet block counts ceil(n * DEPTH_MULT)
    EXTRA: {FINAL_CONV_KERNEL, STAGE2..STAGE4, DECONV}   # as a HigherHRNet's (hrnet_arch.py);
                                      # STEM_INPLANES / PRETRAINED_LAYERS are ignored
  DATASET: {INPUT_SIZE: 416}

What this port fixes: the official forward picks the backbone's feature taps by comparing
DEPTH_MULT with seven hard-coded values (and fails for any other); here the taps are derived from
the scaled block counts (after the 24-, 40-, 112- and 320-channel groups), which gives exactly
the official taps for every hard-coded value and works for any DEPTH_MULT. Stages must have 2 / 3
/ 4 branches (the backbone has four taps) of at least one BasicBlock each.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import math
import os
from typing import Any

from litepose_jax.errors import UserError
from litepose_jax.models import hrnet_arch
from litepose_jax.models.hrnet_arch import HRDeconvSpec
from litepose_jax.models.hrnet_arch import HRStageSpec

MODEL_NAME = 'pose_efficient_hrnet'  # the official MODEL.NAME
# The official width scale of the HRNet part: ceil(c * 1.2455^SCALE_FACTOR).
HRNET_SCALE_BASE = 1.2455
# EfficientNet-B0: stem 3x3/2 conv of 32 channels, then groups of MBConv blocks
# (expansion t, width c, blocks n, first stride s, kernel k).
STEM_WIDTH = 32
B0_GROUPS = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
             (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
# The groups whose last block gives the stride 4 / 8 / 16 / 32 features the HRNet part takes.
TAP_GROUPS = (1, 2, 4, 6)
SE_REDUCTION = 4  # squeeze width = block input width / 4
DROP_CONNECT_RATE = 0.2
INPUT_MULTIPLE = 32  # the stride of the lowest-resolution branch
DEFAULT_IMG_SIZE = 512


def make_divisible(value: float, divisor: int = 8) -> int:
  """EfficientNet's channel rounding: nearest multiple of `divisor`, never below 90% of value."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


@dataclasses.dataclass(frozen=True)
class MBConvSpec:
  """One MBConv block: 1x1 expand (unless expansion 1), k x k depthwise, SE, 1x1 project."""
  in_width: int
  out_width: int
  expansion: int
  kernel_size: int
  stride: int

  @property
  def hidden(self) -> int:
    return self.in_width * self.expansion

  @property
  def squeeze(self) -> int:
    return max(1, int(self.in_width / SE_REDUCTION))

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_width == self.out_width


@dataclasses.dataclass(frozen=True)
class EfficientHRNetSpec:
  """A resolved, validated EfficientHRNet (hashable, so it can be a flax module attribute).

  stages / deconv hold the yaml's unscaled NUM_CHANNELS; the built widths are `branch_widths`
  and `deconv_width`.
  """
  scale_factor: int
  width_mult: float
  depth_mult: float
  stages: tuple[HRStageSpec, HRStageSpec, HRStageSpec]
  deconv: HRDeconvSpec
  final_conv_kernel: int = 1
  img_size: int = DEFAULT_IMG_SIZE
  name: str = 'custom'
  drop_connect_rate: float = DROP_CONNECT_RATE

  @property
  def input_multiple(self) -> int:
    """Input sides must be multiples of this (the lowest-resolution branch's stride)."""
    return INPUT_MULTIPLE

  def scaled(self, c: int) -> int:
    """An HRNet / deconv width of the yaml scaled as the official code does."""
    return int(math.ceil(c * pow(HRNET_SCALE_BASE, self.scale_factor)))

  @property
  def branch_widths(self) -> tuple[int, ...]:
    """Widths of the four HRNet branches (stride 4, 8, 16, 32)."""
    return tuple(self.scaled(c) for c in self.stages[-1].num_channels)

  @property
  def deconv_width(self) -> int:
    return self.scaled(self.deconv.num_channels)

  def width(self, c: int) -> int:
    """An EfficientNet width scaled by width_mult (unchanged at 1.0, as officially)."""
    return c if self.width_mult == 1.0 else make_divisible(c * self.width_mult)

  def repeats(self, n: int) -> int:
    """An EfficientNet group's block count scaled by depth_mult (unchanged at 1.0)."""
    return n if self.depth_mult == 1.0 else int(math.ceil(self.depth_mult * n))

  @property
  def stem_width(self) -> int:
    return self.width(STEM_WIDTH)

  def backbone(self) -> tuple[tuple[MBConvSpec, ...], tuple[int, int, int, int]]:
    """(the MBConv blocks in order, features index of the stride 4/8/16/32 taps).

    features index = position in the official `features` Sequential: 0 is the stem, block i is
    i + 1; a tap is taken after that entry.
    """
    blocks, taps = [], []
    cin = self.stem_width
    for g, (t, c, n, s, k) in enumerate(B0_GROUPS):
      cout = self.width(c)
      for i in range(self.repeats(n)):
        blocks.append(MBConvSpec(cin, cout, t, k, s if i == 0 else 1))
        cin = cout
      if g in TAP_GROUPS:
        taps.append(len(blocks))
    return tuple(blocks), tuple(taps)

  def tap_widths(self) -> tuple[int, ...]:
    """Backbone widths at the four taps (the transitions' input widths)."""
    return tuple(self.width(B0_GROUPS[g][1]) for g in TAP_GROUPS)

  def to_config(self, num_joints: int = 14) -> dict:
    """The official whole-config dict (MODEL.{SCALE_FACTOR, ..., EXTRA}, DATASET.INPUT_SIZE)."""
    extra = {'FINAL_CONV_KERNEL': self.final_conv_kernel}
    for key, stage in zip(hrnet_arch.STAGE_KEYS, self.stages):
      extra[key] = stage.to_dict()
    extra['DECONV'] = self.deconv.to_dict()
    return {'MODEL': {'NAME': MODEL_NAME, 'SCALE_FACTOR': self.scale_factor,
                      'WIDTH_MULT': self.width_mult, 'DEPTH_MULT': self.depth_mult,
                      'EXTRA': extra, 'NUM_JOINTS': num_joints},
            'DATASET': {'INPUT_SIZE': self.img_size}}


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
  if key not in d:
    raise UserError(f'{where}: missing field {key} (have {sorted(map(str, d))})')
  return d[key]


def _number(v: Any, where: str) -> float:
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 4:
    raise UserError(f'{where}: expected a number in (0, 4], got {v!r}')
  return float(v)


def efficient_hrnet_from_config(cfg: Mapping[str, Any], *, name: str = 'custom',
                                img_size: int | None = None) -> EfficientHRNetSpec:
  """Validates an official whole-config dict; UserErrors name the field (`name`: MODEL.FIELD)."""
  if not isinstance(cfg, Mapping):
    raise UserError(f'{name}: expected a mapping, got {type(cfg).__name__}')
  model = cfg.get('MODEL')
  if not isinstance(model, Mapping):
    raise UserError(f'{name}: MODEL: expected a mapping, got {model!r}')
  where = f'{name}: MODEL'
  if 'NAME' in model and model['NAME'] != MODEL_NAME:
    raise UserError(f'{where}.NAME: expected {MODEL_NAME!r}, got {model["NAME"]!r}')
  sf = _get(model, 'SCALE_FACTOR', where)
  if isinstance(sf, bool) or not isinstance(sf, int) or not -16 <= sf <= 16:
    raise UserError(f'{where}.SCALE_FACTOR: expected an integer in [-16, 16], got {sf!r}')
  wm = _number(_get(model, 'WIDTH_MULT', where), f'{where}.WIDTH_MULT')
  dm = _number(_get(model, 'DEPTH_MULT', where), f'{where}.DEPTH_MULT')
  if model.get('TAG_PER_JOINT', True) is not True:
    raise UserError(f'{where}.TAG_PER_JOINT: only True (one tag map per joint) is supported')
  extra = _get(model, 'EXTRA', where)
  if not isinstance(extra, Mapping):
    raise UserError(f'{where}.EXTRA: expected a mapping, got {extra!r}')
  if img_size is None:
    dataset = cfg.get('DATASET', {})
    img_size = dataset.get('INPUT_SIZE', DEFAULT_IMG_SIZE) if isinstance(dataset, Mapping) \
        else DEFAULT_IMG_SIZE
  # The stages / deconv / sizes are validated as a HigherHRNet's (whose layer1 this net lacks).
  hr = hrnet_arch.hrnet_from_extra({**extra, 'STEM_INPLANES': 64}, img_size=img_size, name=name,
                                   where=f'{where}.EXTRA')
  for key, stage, branches in zip(hrnet_arch.STAGE_KEYS, hr.stages, (2, 3, 4)):
    if stage.num_branches != branches:
      raise UserError(f'{where}.EXTRA.{key}.NUM_BRANCHES: must be {branches} (the backbone feeds '
                      f'one branch per stride 4, 8, 16, 32), got {stage.num_branches}')
    if min(stage.num_blocks) < 1:
      raise UserError(f'{where}.EXTRA.{key}.NUM_BLOCKS: every branch needs at least 1 block, got '
                      f'{list(stage.num_blocks)}')
  return EfficientHRNetSpec(sf, wm, dm, hr.stages, hr.deconv, hr.final_conv_kernel, img_size,
                            name)


def _preset(name: str, sf: int, wm: float, dm: float, modules: tuple[int, int, int],
            img_size: int) -> EfficientHRNetSpec:
  """An official H-n: 2 BasicBlocks per branch, base widths 32/64/128/256, deconv 32 + 2 blocks."""
  stages = tuple(HRStageSpec(m, (2,) * (s + 2), tuple(32 * 2 ** b for b in range(s + 2)))
                 for s, m in enumerate(modules))
  return EfficientHRNetSpec(sf, wm, dm, stages, HRDeconvSpec(32, 2), 1, img_size, name)


# experiments/crowd_pose/efficient_hrnet/H-{1..4}.yaml (SUPERNET_SPEC.md §7.2).
PRESETS: dict[str, EfficientHRNetSpec] = {
    'efficienthrnet-h1': _preset('efficienthrnet-h1', -1, 0.909, 0.833, (1, 3, 3), 480),
    'efficienthrnet-h2': _preset('efficienthrnet-h2', -2, 0.826, 0.694, (1, 2, 3), 448),
    'efficienthrnet-h3': _preset('efficienthrnet-h3', -3, 0.751, 0.578, (1, 1, 3), 416),
    'efficienthrnet-h4': _preset('efficienthrnet-h4', -4, 0.684, 0.483, (1, 1, 2), 384),
}


def preset_names() -> tuple[str, ...]:
  """The EfficientHRNet family's preset names, as create_model accepts them."""
  return tuple(PRESETS)


def is_efficient_hrnet_dict(d: Mapping[str, Any]) -> bool:
  """True for an official EfficientHRNet whole-config dict (MODEL.NAME or MODEL.SCALE_FACTOR)."""
  model = d.get('MODEL')
  return isinstance(model, Mapping) and (model.get('NAME') == MODEL_NAME
                                         or 'SCALE_FACTOR' in model)


def is_efficient_hrnet(arch: Any) -> bool:
  """True for an EfficientHRNetSpec, a preset name, an EfficientHRNet config dict or a .yaml path
  holding one."""
  if isinstance(arch, EfficientHRNetSpec):
    return True
  if isinstance(arch, Mapping):
    return is_efficient_hrnet_dict(arch)
  if not isinstance(arch, (str, os.PathLike)):
    return False
  s = os.fspath(arch)
  if s.lower() in PRESETS:
    return True
  # A yaml is either family's: its MODEL section tells (a missing file is the loader's error).
  return (s.lower().endswith(('.yaml', '.yml')) and os.path.isfile(s)
          and is_efficient_hrnet_dict(hrnet_arch.load_yaml(s)))


def resolve_efficient_hrnet(arch: Any, *, img_size: int | None = None) -> EfficientHRNetSpec:
  """A preset name, an official .yaml path / whole-config dict or a spec -> EfficientHRNetSpec.

  img_size overrides the preset's / the config's input size.
  """
  if isinstance(arch, EfficientHRNetSpec):
    spec = arch
  elif isinstance(arch, Mapping):
    return efficient_hrnet_from_config(arch, img_size=img_size)
  elif isinstance(arch, (str, os.PathLike)):
    s = os.fspath(arch)
    if s.lower() in PRESETS:
      spec = PRESETS[s.lower()]
    elif s.lower().endswith(('.yaml', '.yml')):
      return efficient_hrnet_from_config(hrnet_arch.load_yaml(s), name=s, img_size=img_size)
    else:
      raise UserError(f'unknown EfficientHRNet architecture {s!r}: use a preset '
                      f'({", ".join(PRESETS)}) or an official experiment .yaml')
  else:
    raise TypeError(f'arch must be a preset name, yaml path, dict or EfficientHRNetSpec, got '
                    f'{type(arch)}')
  if img_size is not None and img_size != spec.img_size:
    spec = efficient_hrnet_from_config(spec.to_config(), name=spec.name, img_size=img_size)
  return spec
