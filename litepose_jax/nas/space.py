"""The LitePose search space: which sub-nets exist, how to draw, enumerate, encode and check them.

A sub-net is a dict in the official JSON schema (official mobile_configs/search-*.json), so it is
directly a `models.create_model(arch)` architecture:
  {"img_size": 384, "input_channel": 16, "deconv_setting": [48, 40, 16],
   "backbone_setting": [{"num_blocks": 6, "stride": 2, "channel": 24,
                         "block_setting": [[6, 7], ...]}, ... x4]}

The official space (official arch_manager.py, ArchManager.random_sample): one input resolution
from {256, 320, 384, 448, 512} and, independently for each of 8 width genes (stem output, three
deconv levels, four stages), a multiplier m from {1, 0.75, 0.5, 0.25}; the width is the official
`_make_divisible(base * m, 8)`. Every block is [t=6, k=7]; strides 2, 2, 2, 1.

Depth is fixed, not searched. The intended LitePose depth is 6 / 8 / 10 / 10 blocks (the official
super-net, lib/models/pose_supermobilenet.py, and every released mobile_configs/*.json have it);
the shipped ArchManager.arch_setting says 4 / 6 / 8 / 8, a leftover of the pose_superresnet
experiment. `SearchSpace.official(shipped_depths=True)` reproduces that bug; its super-net
(`max_arch`) still has 6 / 8 / 10 / 10 blocks, of which the sub-nets run the first n.

Genes (`encode` / `decode`): a tuple of 9 ints, the index of the resolution in
`space.resolutions` then, per width gene, the index of the width in `space.choices(i)` (the
distinct widths, largest first). Distinct widths, not multipliers, so that genes and sub-nets are
one-to-one: the stem's 1.0 and 0.75 both give 24 channels (18 rounds up to 24).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import math
from typing import Any

import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.models.arch import ALLOWED_KERNELS
from litepose_jax.models.arch import NUM_DECONVS
from litepose_jax.models.arch import NUM_STAGES
from litepose_jax.models.arch import ArchSpec
from litepose_jax.models.arch import arch_from_dict
from litepose_jax.models.arch import make_divisible

# The JSON field each width gene sets, in gene order (also the names in error messages).
WIDTH_GENES = (('input_channel',) + tuple(f'deconv_setting[{i}]' for i in range(NUM_DECONVS))
               + tuple(f'backbone_setting[{s}].channel' for s in range(NUM_STAGES)))
GENE_NAMES = ('img_size',) + WIDTH_GENES

# Official depths: the super-net module (pose_supermobilenet.py) and the shipped sampler
# (arch_manager.py arch_setting, a bug kept only to reproduce it).
LITEPOSE_DEPTHS = (6, 8, 10, 10)
SHIPPED_SAMPLER_DEPTHS = (4, 6, 8, 8)


def _ints(v: Any, n: int | None, where: str) -> tuple[int, ...]:
  """A non-empty tuple of positive ints (exactly n of them when n is given), else UserError."""
  if not isinstance(v, (list, tuple)) or not v or (n is not None and len(v) != n):
    raise UserError(f'{where} must be a list of {n or "some"} positive integers, got {v!r}')
  if any(isinstance(x, bool) or not isinstance(x, int) or x <= 0 for x in v):
    raise UserError(f'{where} must hold positive integers, got {v!r}')
  return tuple(v)


def _positive(v: Any, where: str) -> int:
  if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
    raise UserError(f'{where} must be a positive integer, got {v!r}')
  return v


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """Elastic resolution and widths around a fixed-depth LitePose; `official()` is the paper's.

  depths: blocks per stage of every sub-net; supernet_depths: blocks per stage of the super-net
  (>= depths; a sub-net runs the first n blocks of each stage).
  """
  resolutions: tuple[int, ...] = (256, 320, 384, 448, 512)
  width_mults: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
  stem_base: int = 24
  deconv_bases: tuple[int, ...] = (64, 48, 32)
  stage_bases: tuple[int, ...] = (32, 64, 96, 160)
  depths: tuple[int, ...] = LITEPOSE_DEPTHS
  supernet_depths: tuple[int, ...] = LITEPOSE_DEPTHS
  strides: tuple[int, ...] = (2, 2, 2, 1)
  expansion: int = 6
  kernel: int = 7

  def __post_init__(self):
    # Tuples, so that a space built from lists (a config) is hashable like the official one.
    for f in dataclasses.fields(self):
      if isinstance(getattr(self, f.name), list):
        object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
    for r in _ints(self.resolutions, None, 'SearchSpace.resolutions'):
      if r % 16:  # the backbone's total stride (models/arch.py refuses other sizes)
        raise UserError(f'SearchSpace.resolutions must be multiples of 16, got {r}')
    if len(set(self.resolutions)) != len(self.resolutions):  # genes index them
      raise UserError(f'SearchSpace.resolutions has duplicates: {self.resolutions}')
    m = self.width_mults
    if not isinstance(m, (list, tuple)) or not m or any(
        isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 1 for x in m):
      raise UserError(f'SearchSpace.width_mults must be numbers in (0, 1], got {m!r}')
    for field in ('stem_base', 'expansion'):
      _positive(getattr(self, field), f'SearchSpace.{field}')
    if self.kernel not in ALLOWED_KERNELS:
      raise UserError(f'SearchSpace.kernel must be one of {ALLOWED_KERNELS}, got {self.kernel!r}')
    _ints(self.deconv_bases, NUM_DECONVS, 'SearchSpace.deconv_bases')
    _ints(self.stage_bases, NUM_STAGES, 'SearchSpace.stage_bases')
    depths = _ints(self.depths, NUM_STAGES, 'SearchSpace.depths')
    top = _ints(self.supernet_depths, NUM_STAGES, 'SearchSpace.supernet_depths')
    if any(d > t for d, t in zip(depths, top)):
      raise UserError(f'SearchSpace.depths {depths} exceed supernet_depths {top}')
    if tuple(self.strides) != (2, 2, 2, 1):  # the fusion head needs feature strides 4, 8, 16, 16
      raise UserError(f'SearchSpace.strides must be (2, 2, 2, 1), got {self.strides!r}')

  @classmethod
  def official(cls, shipped_depths: bool = False) -> SearchSpace:
    """The official space; shipped_depths=True samples the shipped sampler's 4/6/8/8 blocks."""
    return cls(depths=SHIPPED_SAMPLER_DEPTHS) if shipped_depths else cls()

  @property
  def bases(self) -> tuple[int, ...]:
    """Base width of each width gene, in WIDTH_GENES order (24, 64, 48, 32, 32, 64, 96, 160)."""
    return (self.stem_base,) + tuple(self.deconv_bases) + tuple(self.stage_bases)

  def widths(self, gene: int) -> tuple[int, ...]:
    """Width of width gene `gene` (0..7, WIDTH_GENES order) per multiplier, in width_mults
    order (values may repeat)."""
    return tuple(make_divisible(self.bases[gene] * m) for m in self.width_mults)

  def choices(self, gene: int) -> tuple[int, ...]:
    """The distinct widths of width gene `gene`, largest first (what its gene indexes)."""
    return tuple(sorted(set(self.widths(gene)), reverse=True))

  def num_choices(self) -> tuple[int, ...]:
    """How many values each of the 9 genes takes (official: 5, 3, 4, 4, 4, 4, 4, 4, 4)."""
    return (len(self.resolutions),) + tuple(len(self.choices(g)) for g in range(len(WIDTH_GENES)))


OFFICIAL = SearchSpace.official()


def _arch(space: SearchSpace, img_size: int, widths: Sequence[int],
          depths: Sequence[int] | None = None) -> dict:
  """The official-schema dict of a sub-net: widths in WIDTH_GENES order [C0, F0..F2, C1..C4]."""
  depths = space.depths if depths is None else depths
  block = [space.expansion, space.kernel]
  return {
      'img_size': int(img_size),
      'input_channel': int(widths[0]),
      'deconv_setting': [int(w) for w in widths[1:1 + NUM_DECONVS]],
      'backbone_setting': [
          {'num_blocks': int(n), 'stride': int(s), 'channel': int(c),
           'block_setting': [list(block) for _ in range(n)]}
          for c, n, s in zip(widths[1 + NUM_DECONVS:], depths, space.strides)],
  }


def _generator(rng_or_seed: Any) -> np.random.Generator:
  """A numpy Generator from a seed (int or sequence of ints, e.g. (seed, step)) or a Generator."""
  if isinstance(rng_or_seed, np.random.Generator):
    return rng_or_seed
  seeds = rng_or_seed if isinstance(rng_or_seed, (list, tuple)) else [rng_or_seed]
  if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                      for s in seeds):
    raise UserError(f'seed must be a non-negative integer, a sequence of them or a '
                    f'numpy Generator, got {rng_or_seed!r}')
  return np.random.default_rng([int(s) for s in seeds])


def sample(space: SearchSpace, rng_or_seed: Any) -> dict:
  """One sub-net drawn as the official sampler does (a uniform resolution and, per width gene, a
  uniform multiplier, so the stem's 24 comes up half the time). Deterministic in the seed:
  `sample(space, (seed, step))` gives every host the same sub-net for a step."""
  rng = _generator(rng_or_seed)
  img = space.resolutions[int(rng.integers(len(space.resolutions)))]
  mults = rng.integers(len(space.width_mults), size=len(WIDTH_GENES))
  return _arch(space, img, [space.widths(g)[int(m)] for g, m in enumerate(mults)])


def largest(space: SearchSpace) -> dict:
  """The largest sub-net: top resolution, every width at its largest, the space's depths."""
  return _arch(space, max(space.resolutions), [max(space.choices(g)) for g in
                                               range(len(WIDTH_GENES))])


def smallest(space: SearchSpace) -> dict:
  """The smallest sub-net: lowest resolution, every width at its smallest, the space's depths."""
  return _arch(space, min(space.resolutions), [min(space.choices(g)) for g in
                                               range(len(WIDTH_GENES))])


def uniform(space: SearchSpace, mult: float, resolution: int) -> dict:
  """Every width times one multiplier (official ArchManager.fixed_sample(reso, ratio))."""
  if mult not in space.width_mults:
    raise UserError(f'mult: {mult!r} is not a width multiplier of this space '
                    f'{tuple(space.width_mults)}')
  if resolution not in space.resolutions:
    raise UserError(f'resolution: {resolution!r} is not a resolution of this space '
                    f'{tuple(space.resolutions)}')
  i = list(space.width_mults).index(mult)
  return _arch(space, resolution, [space.widths(g)[i] for g in range(len(WIDTH_GENES))])


def max_arch(space: SearchSpace) -> dict:
  """The super-net's architecture: every width at its largest, `supernet_depths` blocks and the
  top resolution (official pose_supermobilenet.py: 24, [64, 48, 32], 32/64/96/160 x 6/8/10/10)."""
  return _arch(space, max(space.resolutions),
               [max(space.choices(g)) for g in range(len(WIDTH_GENES))], space.supernet_depths)


def space_size(space: SearchSpace) -> int:
  """Number of distinct sub-nets (official: 5 x 3 x 4^7 = 245,760; the 5 x 4^8 = 327,680
  multiplier draws count the stem's 24 twice)."""
  return math.prod(space.num_choices())


def _gene_widths(spec: ArchSpec) -> tuple[int, ...]:
  """An architecture's widths in WIDTH_GENES order [C0, F0, F1, F2, C1, C2, C3, C4]."""
  return (spec.input_channel,) + tuple(spec.deconv_setting) + tuple(s.channels for s in spec.stages)


def _mults_text(space: SearchSpace) -> str:
  return '{' + ', '.join(f'{m:g}' for m in space.width_mults) + '}'


def validate(arch: Mapping[str, Any] | ArchSpec, space: SearchSpace = OFFICIAL, *,
             elastic_depth: bool = False, name: str = 'arch') -> ArchSpec:
  """Checks that `arch` (official-schema dict or ArchSpec) is a sub-net of `space`; returns it as
  an ArchSpec. Raises UserError naming the first offending field.

  elastic_depth=True accepts any num_blocks from 1 to the super-net's depth of the stage (what the
  super-net can run: its first n blocks), e.g. the shipped sampler's 4/6/8/8 in the 6/8/10/10 net.
  """
  if not isinstance(space, SearchSpace):
    raise TypeError(f'space must be a SearchSpace, got {type(space).__name__}')
  spec = arch if isinstance(arch, ArchSpec) else arch_from_dict(arch, name=name)
  if spec.img_size not in space.resolutions:
    raise UserError(f'{name}: img_size: {spec.img_size} is not a resolution of this space '
                    f'{tuple(space.resolutions)}')
  for g, (field, width) in enumerate(zip(WIDTH_GENES, _gene_widths(spec))):
    if width not in space.choices(g):
      raise UserError(
          f'{name}: {field}: {width} is not a width of this space ({space.bases[g]} x '
          f'{_mults_text(space)} -> {", ".join(map(str, space.widths(g)))})')
  for s, stage in enumerate(spec.stages):
    where = f'{name}: backbone_setting[{s}]'
    n, want, top = len(stage.blocks), space.depths[s], space.supernet_depths[s]
    if elastic_depth and not 1 <= n <= top:
      raise UserError(f'{where}.num_blocks: {n} is outside 1..{top} (the super-net\'s depth)')
    if not elastic_depth and n != want:
      raise UserError(f'{where}.num_blocks: {n} is not the depth of this space ({want})')
    if stage.stride != space.strides[s]:
      raise UserError(f'{where}.stride: {stage.stride} is not this space\'s {space.strides[s]}')
    for b, block in enumerate(stage.blocks):
      if (block.expansion, block.kernel) != (space.expansion, space.kernel):
        raise UserError(f'{where}.block_setting[{b}]: [{block.expansion}, {block.kernel}] is not '
                        f'a block of this space (only [{space.expansion}, {space.kernel}])')
  return spec


def encode(arch: Mapping[str, Any] | ArchSpec, space: SearchSpace = OFFICIAL) -> tuple[int, ...]:
  """Sub-net -> genes: (resolution index, then per width gene its index in space.choices(g)).

  The arch is validated first (UserError naming the field); decode(encode(a)) == a as a dict.
  """
  spec = validate(arch, space)
  return ((list(space.resolutions).index(spec.img_size),)
          + tuple(space.choices(g).index(w) for g, w in enumerate(_gene_widths(spec))))


def decode(genes: Sequence[int], space: SearchSpace = OFFICIAL) -> dict:
  """Genes -> the sub-net's official-schema dict (UserError naming a gene out of range)."""
  if not isinstance(genes, Sequence) or isinstance(genes, str) or len(genes) != len(GENE_NAMES):
    raise UserError(f'genes must be a sequence of {len(GENE_NAMES)} ints {GENE_NAMES}, '
                    f'got {genes!r}')
  for i, (gene, n) in enumerate(zip(genes, space.num_choices())):
    if isinstance(gene, bool) or not isinstance(gene, (int, np.integer)) or not 0 <= gene < n:
      raise UserError(f'genes[{i}] ({GENE_NAMES[i]}): {gene!r} is not an index in 0..{n - 1}')
  widths = [space.choices(g)[int(i)] for g, i in enumerate(genes[1:])]
  return _arch(space, space.resolutions[int(genes[0])], widths)


def space_to_json(space: SearchSpace) -> dict:
  """The space's fields (tuples; JSON-able: a super-net checkpoint's model.json 'supernet'
  entry, a config's supernet.space)."""
  return {f.name: getattr(space, f.name) for f in dataclasses.fields(space)}


def space_from_json(d: Mapping[str, Any], where: str = 'supernet') -> SearchSpace:
  """Inverse of space_to_json; a UserError names an unknown field."""
  if not isinstance(d, Mapping):
    raise UserError(f'{where} must be an object of SearchSpace fields, got {d!r}')
  names = {f.name for f in dataclasses.fields(SearchSpace)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise UserError(f'{where}: unknown search-space fields {unknown} (known: {sorted(names)})')
  return SearchSpace(**dict(d))
