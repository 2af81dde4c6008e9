"""HigherHRNet architecture descriptions: the official yaml's `MODEL.EXTRA`, validation, presets.

The schema is that of the official `lib/models/pose_higher_hrnet.py` configs (HigherHRNet and
LitePose's copy with `STEM_INPLANES`), e.g. experiments/crowd_pose/higher_hrnet/w32_512_*.yaml:

  MODEL:
    EXTRA:
      FINAL_CONV_KERNEL: 1            # 1 or 3: the 1x1 (3x3) output convs
      STEM_INPLANES: 64               # layer1 Bottleneck width (outputs 4x that)
      STAGE2: {NUM_MODULES: 1, NUM_BRANCHES: 2, BLOCK: BASIC, NUM_BLOCKS: [4, 4],
               NUM_CHANNELS: [32, 64], FUSE_METHOD: SUM}
      STAGE3: {...3 branches}         # STAGE4 likewise
      DECONV: {NUM_DECONVS: 1, NUM_CHANNELS: [32], KERNEL_SIZE: [4], NUM_BASIC_BLOCKS: 4,
               CAT_OUTPUT: [True]}
      PRETRAINED_LAYERS: ['*']        # ignored (a training-time init option)
    NUM_JOINTS: 14                    # read by create_model's callers, not here
  DATASET: {INPUT_SIZE: 512}          # the spec's img_size when present

`resolve_hrnet(x)` accepts that EXTRA dict, a whole config dict (MODEL.EXTRA, DATASET.INPUT_SIZE),
a .yaml path, a preset name or an HRNetSpec. A NUM_BLOCKS entry may be 0 (LitePose's change: the
branch becomes one 3x3 conv-BN-ReLU6 placeholder). What this port fixes, and checks: one deconv
(the trainer and decoder take exactly a stride-4 and a stride-2 output), 4x4 deconv kernels,
BASIC blocks and SUM fusion in stages 2-4, and branches keeping their width from one stage to the
next (the official forward applies a changed-width transition to the wrong branch).
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import os
from typing import Any

from litepose_jax.errors import UserError

NUM_STAGES = 3  # STAGE2..STAGE4
STAGE_KEYS = ('STAGE2', 'STAGE3', 'STAGE4')
# Fixed by the official stem: two 3x3/2 convs of 64 channels before layer1.
STEM_WIDTH = 64
LAYER1_BLOCKS = 4
BOTTLENECK_EXPANSION = 4
DEFAULT_IMG_SIZE = 512


@dataclasses.dataclass(frozen=True)
class HRStageSpec:
  """One of STAGE2..STAGE4: NUM_MODULES HighResolutionModules of NUM_BRANCHES branches."""
  num_modules: int
  num_blocks: tuple[int, ...]
  num_channels: tuple[int, ...]
  block: str = 'BASIC'
  fuse_method: str = 'SUM'

  @property
  def num_branches(self) -> int:
    return len(self.num_channels)

  def to_dict(self) -> dict:
    """Back to the yaml's STAGEk mapping."""
    return {'NUM_MODULES': self.num_modules, 'NUM_BRANCHES': self.num_branches,
            'BLOCK': self.block, 'NUM_BLOCKS': list(self.num_blocks),
            'NUM_CHANNELS': list(self.num_channels), 'FUSE_METHOD': self.fuse_method}


@dataclasses.dataclass(frozen=True)
class HRDeconvSpec:
  """MODEL.EXTRA.DECONV: one 4x4/2 transposed conv (+ BasicBlocks) to the stride-2 output."""
  num_channels: int
  num_basic_blocks: int
  cat_output: bool = True
  kernel_size: int = 4

  def to_dict(self) -> dict:
    """Back to the yaml's DECONV mapping (lists of one entry per deconv)."""
    return {'NUM_DECONVS': 1, 'NUM_CHANNELS': [self.num_channels],
            'KERNEL_SIZE': [self.kernel_size], 'NUM_BASIC_BLOCKS': self.num_basic_blocks,
            'CAT_OUTPUT': [self.cat_output]}


@dataclasses.dataclass(frozen=True)
class HRNetSpec:
  """A resolved, validated HigherHRNet (hashable, so it can be a flax module attribute)."""
  stem_inplanes: int
  stages: tuple[HRStageSpec, HRStageSpec, HRStageSpec]
  deconv: HRDeconvSpec
  final_conv_kernel: int = 1
  img_size: int = DEFAULT_IMG_SIZE
  name: str = 'custom'

  @property
  def max_branches(self) -> int:
    return max(s.num_branches for s in self.stages)

  @property
  def input_multiple(self) -> int:
    """Input sides must be multiples of this: the lowest-resolution branch's stride."""
    return 4 * 2 ** (self.max_branches - 1)

  def to_extra(self) -> dict:
    """The official MODEL.EXTRA dict (what `hrnet_from_extra` reads back)."""
    extra = {'FINAL_CONV_KERNEL': self.final_conv_kernel, 'STEM_INPLANES': self.stem_inplanes}
    for key, stage in zip(STAGE_KEYS, self.stages):
      extra[key] = stage.to_dict()
    extra['DECONV'] = self.deconv.to_dict()
    return extra

  def to_config(self, num_joints: int = 14) -> dict:
    """A whole-config dict (MODEL.EXTRA, MODEL.NUM_JOINTS, DATASET.INPUT_SIZE), as a yaml has."""
    return {'MODEL': {'EXTRA': self.to_extra(), 'NUM_JOINTS': num_joints},
            'DATASET': {'INPUT_SIZE': self.img_size}}


def _field(d: Mapping[str, Any], key: str, where: str) -> Any:
  if key not in d:
    raise UserError(f'{where}: missing field {key} (have {sorted(map(str, d))})')
  return d[key]


def _int(v: Any, where: str, minimum: int) -> int:
  if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
    raise UserError(f'{where}: expected an integer >= {minimum}, got {v!r}')
  return v


def _int_list(v: Any, n: int, where: str, minimum: int) -> tuple[int, ...]:
  ok = (isinstance(v, (list, tuple)) and len(v) == n
        and all(not isinstance(x, bool) and isinstance(x, int) and x >= minimum for x in v))
  if not ok:
    raise UserError(f'{where}: expected {n} integers >= {minimum}, got {v!r}')
  return tuple(v)


def _stage(d: Any, where: str) -> HRStageSpec:
  if not isinstance(d, Mapping):
    raise UserError(f'{where}: expected a mapping, got {d!r}')
  modules = _int(_field(d, 'NUM_MODULES', where), f'{where}.NUM_MODULES', 1)
  branches = _int(_field(d, 'NUM_BRANCHES', where), f'{where}.NUM_BRANCHES', 1)
  block = _field(d, 'BLOCK', where)
  if block != 'BASIC':
    # The official code accepts BOTTLENECK here too, but a 0-block BOTTLENECK branch breaks its
    # fusion (the placeholder does not expand), and no shipped config uses it.
    raise UserError(f"{where}.BLOCK: only 'BASIC' is supported in stages 2-4, got {block!r}")
  fuse = _field(d, 'FUSE_METHOD', where)
  if fuse != 'SUM':
    raise UserError(f"{where}.FUSE_METHOD: only 'SUM' is supported, got {fuse!r}")
  blocks = _int_list(_field(d, 'NUM_BLOCKS', where), branches, f'{where}.NUM_BLOCKS', 0)
  channels = _int_list(_field(d, 'NUM_CHANNELS', where), branches, f'{where}.NUM_CHANNELS', 1)
  return HRStageSpec(modules, blocks, channels, block, fuse)


def _deconv(d: Any, where: str) -> HRDeconvSpec:
  if not isinstance(d, Mapping):
    raise UserError(f'{where}: expected a mapping, got {d!r}')
  n = _field(d, 'NUM_DECONVS', where)
  if n != 1 or isinstance(n, bool):
    raise UserError(f'{where}.NUM_DECONVS: only 1 is supported (the trainer and decoder take a '
                    f'stride-4 and a stride-2 output), got {n!r}')
  (channels,) = _int_list(_field(d, 'NUM_CHANNELS', where), 1, f'{where}.NUM_CHANNELS', 1)
  kernels = _field(d, 'KERNEL_SIZE', where)
  if not (isinstance(kernels, (list, tuple)) and list(kernels) == [4]):
    raise UserError(f'{where}.KERNEL_SIZE: only [4] (4x4, stride 2, padding 1) is supported, '
                    f'got {kernels!r}')
  basic = _int(_field(d, 'NUM_BASIC_BLOCKS', where), f'{where}.NUM_BASIC_BLOCKS', 0)
  cat = _field(d, 'CAT_OUTPUT', where)
  if not (isinstance(cat, (list, tuple)) and len(cat) == 1 and isinstance(cat[0], bool)):
    raise UserError(f'{where}.CAT_OUTPUT: expected 1 boolean, got {cat!r}')
  return HRDeconvSpec(channels, basic, cat[0], 4)


def hrnet_from_extra(extra: Mapping[str, Any], *, img_size: int = DEFAULT_IMG_SIZE,
                     name: str = 'custom', where: str = 'MODEL.EXTRA') -> HRNetSpec:
  """Validates an official MODEL.EXTRA dict; UserErrors name the field (`where`.FIELD)."""
  if not isinstance(extra, Mapping):
    raise UserError(f'{where}: expected a mapping, got {type(extra).__name__}')
  stem = _int(_field(extra, 'STEM_INPLANES', where), f'{where}.STEM_INPLANES', 1)
  final_k = _field(extra, 'FINAL_CONV_KERNEL', where)
  if final_k not in (1, 3) or isinstance(final_k, bool):
    raise UserError(f'{where}.FINAL_CONV_KERNEL: expected 1 or 3, got {final_k!r}')
  stages = tuple(_stage(_field(extra, k, where), f'{where}.{k}') for k in STAGE_KEYS)
  for prev, (key, cur) in zip(stages, list(zip(STAGE_KEYS, stages))[1:]):
    shared = min(prev.num_branches, cur.num_branches)
    if cur.num_channels[:shared] != prev.num_channels[:shared]:
      # The official forward feeds a width-changing transition the last branch, not branch i.
      raise UserError(f'{where}.{key}.NUM_CHANNELS: the first {shared} widths must equal the '
                      f'previous stage\'s {list(prev.num_channels[:shared])}, got '
                      f'{list(cur.num_channels)}')
  deconv = _deconv(_field(extra, 'DECONV', where), f'{where}.DECONV')
  spec = HRNetSpec(stem, stages, deconv, final_k, img_size, name)
  _int(img_size, 'img_size', 1)
  if img_size % spec.input_multiple:
    raise UserError(f'img_size must be a multiple of {spec.input_multiple} (the stride of the '
                    f'lowest-resolution branch), got {img_size}')
  return spec


def hrnet_from_config(cfg: Mapping[str, Any], *, name: str = 'custom',
                      img_size: int | None = None) -> HRNetSpec:
  """A whole config dict (MODEL.EXTRA [+ DATASET.INPUT_SIZE]) or a bare MODEL.EXTRA dict."""
  if not isinstance(cfg, Mapping):
    raise UserError(f'{name}: expected a mapping, got {type(cfg).__name__}')
  if 'MODEL' not in cfg:
    return hrnet_from_extra(cfg, img_size=img_size or DEFAULT_IMG_SIZE, name=name)
  model = cfg['MODEL']
  if not isinstance(model, Mapping):
    raise UserError(f'{name}: MODEL: expected a mapping, got {model!r}')
  extra = _field(model, 'EXTRA', f'{name}: MODEL')
  if model.get('TAG_PER_JOINT', True) is not True:
    raise UserError(f'{name}: MODEL.TAG_PER_JOINT: only True (one tag map per joint) is '
                    'supported')
  loss = cfg.get('LOSS', {})
  if isinstance(loss, Mapping) and list(loss.get('WITH_AE_LOSS', [True, False])) != [True, False]:
    raise UserError(f'{name}: LOSS.WITH_AE_LOSS: only [True, False] (tags at stride 4 only) is '
                    f'supported, got {loss["WITH_AE_LOSS"]!r}')
  if img_size is None:
    dataset = cfg.get('DATASET', {})
    img_size = dataset.get('INPUT_SIZE', DEFAULT_IMG_SIZE) if isinstance(dataset, Mapping) \
        else DEFAULT_IMG_SIZE
    _int(img_size, f'{name}: DATASET.INPUT_SIZE', 1)
  return hrnet_from_extra(extra, img_size=img_size, name=name, where=f'{name}: MODEL.EXTRA')


def load_yaml(path: str | os.PathLike) -> dict:
  """Reads an official experiment yaml (or a bare MODEL.EXTRA yaml) into a dict."""
  import yaml  # pylint: disable=g-import-not-at-top  (only yaml inputs need it)
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'architecture file not found: {path}')
  with open(path) as f:
    try:
      d = yaml.safe_load(f)
    except yaml.YAMLError as e:
      raise UserError(f'{path}: not valid YAML ({e})') from e
  if not isinstance(d, Mapping):
    raise UserError(f'{path}: expected a YAML mapping at the top level, got {type(d).__name__}')
  return dict(d)


def _stages(blocks: tuple[tuple[int, ...], ...], base: int,
            modules: tuple[int, int, int] = (1, 4, 3)) -> tuple[HRStageSpec, ...]:
  """Stages 2-4 with branch widths base * (1, 2, 4, 8) and the given per-branch blocks."""
  return tuple(HRStageSpec(m, b, tuple(base * 2 ** i for i in range(len(b))))
               for m, b in zip(modules, blocks))


_FULL = ((4, 4), (4, 4, 4), (4, 4, 4, 4))

# The gradual-shrinking study (LitePose slides pp. 9-10, SUPERNET_SPEC.md §7.1): the slides give
# the bases (16, 16, 18, 18), the block cuts (Shrink1 -29 %, Shrink2 -30 %, Shrink3 -33 %) and
# 12.50 / 10.12 / 10.02 / 9.15 GMACs; only Shrink3 ships (w16_512_adam_lr1e-3.yaml). What is
# inferred for the other three, and why:
# - The cuts are relative to the previous step and count layer1's 4 Bottlenecks: the baseline has
#   104 + 4 = 108 blocks and the shipped Shrink3 32 + 4 = 36, and 36 / 108 = 0.71 x 0.70 x 0.67
#   only this way. So Shrink1 keeps ~77 blocks (73 in stages 2-4) and Shrink2 ~54 (50).
# - Stem and head as the shipped Shrink3: STEM_INPLANES = 2 x base, one 32-channel deconv with 0
#   BasicBlocks, modules 1 / 4 / 3. The W16 baseline built so gives 12.50 G.
# - Block layouts: the simplest per-branch patterns with those block counts that remove depth
#   from the high-resolution branches first: Shrink1 a staircase (branch b of an n-branch stage
#   keeps 4 - (n - 1 - b) blocks), Shrink2 one block on every branch but the lowest-resolution one
#   (Shrink3 then takes that block away). They give 10.12 G and 10.02 G. Other layouts with the
#   same counts give the same MACs within ~0.01 G (HRNet blocks cost alike on every branch), so
#   the layouts are a choice, the counts and costs are not.
# The slides' GMACs also count nn.Upsample and conv-bias output elements (a later ptflops); our
# 'paper' convention, like the spec's check of the shipped config (9.14 G), does not: 12.49,
# 10.11, 10.01, 9.14 G (tests/models/test_higherhrnet.py checks both).
_SHRINK1 = ((3, 4), (2, 3, 4), (1, 2, 3, 4))
_SHRINK2 = ((1, 4), (1, 1, 4), (1, 1, 1, 4))
_SHRINK3 = ((0, 4), (0, 0, 4), (0, 0, 0, 4))

# The presets. W32 / W48 are the official HigherHRNet configs (w32_512 / w48_640, CrowdPose and
# COCO alike). Shrink3 is LitePose's shipped w16_512_adam_lr1e-3.yaml exactly (SUPERNET_SPEC.md
# §7.1: 7.38 M params, 9.14 G paper-convention MACs); 'higherhrnet-w16' is the shrinking study's
# starting point and Shrink1 / Shrink2 its intermediate steps (inferred, see above).
PRESETS: dict[str, HRNetSpec] = {
    'higherhrnet-w32': HRNetSpec(64, _stages(_FULL, 32), HRDeconvSpec(32, 4), 1, 512,
                                 'higherhrnet-w32'),
    'higherhrnet-w48': HRNetSpec(64, _stages(_FULL, 48), HRDeconvSpec(48, 4), 1, 640,
                                 'higherhrnet-w48'),
    # The gradual-shrinking study's start: HigherHRNet at base 16 with every block (inferred).
    'higherhrnet-w16': HRNetSpec(32, _stages(_FULL, 16), HRDeconvSpec(32, 0), 1, 512,
                                 'higherhrnet-w16'),
    'shrink1': HRNetSpec(32, _stages(_SHRINK1, 16), HRDeconvSpec(32, 0), 1, 512, 'shrink1'),
    'shrink2': HRNetSpec(36, _stages(_SHRINK2, 18), HRDeconvSpec(32, 0), 1, 512, 'shrink2'),
    'shrink3': HRNetSpec(36, _stages(_SHRINK3, 18), HRDeconvSpec(32, 0), 1, 512, 'shrink3'),
}


def preset_names() -> tuple[str, ...]:
  """The HigherHRNet family's preset names, as create_model accepts them."""
  return tuple(PRESETS)


def get_hrnet_preset(name: str) -> HRNetSpec:
  """The preset `name` (case-insensitive)."""
  key = name.lower()
  if key not in PRESETS:
    raise UserError(f'unknown HigherHRNet preset {name!r}; choose one of {list(PRESETS)}')
  return PRESETS[key]


def is_hrnet_name(name: str) -> bool:
  """True for a HigherHRNet preset name or a .yaml / .yml path."""
  s = name.lower()
  return s in PRESETS or s.endswith(('.yaml', '.yml'))


def is_hrnet_dict(d: Mapping[str, Any]) -> bool:
  """True for a MODEL.EXTRA dict or a whole config dict (as opposed to a LitePose JSON dict)."""
  return 'MODEL' in d or 'STAGE2' in d or 'STEM_INPLANES' in d


def resolve_hrnet(arch: Any, *, img_size: int | None = None) -> HRNetSpec:
  """A preset name, a .yaml path, a MODEL.EXTRA / whole-config dict or an HRNetSpec -> HRNetSpec.

  img_size overrides the preset's / the config's input size.
  """
  if isinstance(arch, HRNetSpec):
    spec = arch
  elif isinstance(arch, Mapping):
    return hrnet_from_config(arch, img_size=img_size)
  elif isinstance(arch, (str, os.PathLike)):
    s = os.fspath(arch)
    if s.lower() in PRESETS:
      spec = PRESETS[s.lower()]
    elif s.lower().endswith(('.yaml', '.yml')):
      return hrnet_from_config(load_yaml(s), name=s, img_size=img_size)
    else:
      raise UserError(f'unknown HigherHRNet architecture {s!r}: use a preset '
                      f'({", ".join(PRESETS)}) or an official experiment .yaml')
  else:
    raise TypeError(f'arch must be a preset name, yaml path, dict or HRNetSpec, got {type(arch)}')
  if img_size is not None and img_size != spec.img_size:
    spec = hrnet_from_extra(spec.to_extra(), img_size=img_size, name=spec.name)
  return spec
