"""Static costs of a sub-net a search can constrain: parameters, true and paper-convention MACs.

A search asks for the costs of tens of thousands of sub-nets (rejection sampling under a tight
budget accepts a few percent of the draws), and an abstract trace of the model
(models/counting.py) takes about half a second per architecture on a CPU: the counts here are
computed from a closed-form walk of the topology instead (`layer_table`, microseconds), which
tests/search/test_costs.py checks against the traced counter on presets and random sub-nets, so
the two cannot drift apart. Conventions (docs/OFFICIAL.md, "Architecture"): 'true' counts conv + transposed-conv
multiply-accumulates; 'paper' reproduces the published 1.2 / 5.0 / 7.8 / 13.7 G (old ptflops:
BN and activations counted, transposed convs per output pixel). MACs are at the architecture's
own img_size, for one image.

Memoised per (architecture, joints, fusion) as well.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import json
from typing import Any

from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib
from litepose_jax.models import counting

CONVENTIONS = counting.CONVENTIONS


@dataclasses.dataclass(frozen=True)
class Layer:
  """One conv of the network for one image: kind 'conv' | 'depthwise' | 'deconv', its input
  [in_hw, in_hw, cin] and output [out_hw, out_hw, cout] (square inputs), kernel side, and what
  follows it: bn (a BatchNorm on its output; summed convs share one, counted on the first) and
  act (an activation on its output)."""
  kind: str
  in_hw: int
  out_hw: int
  cin: int
  cout: int
  kernel: int
  bn: bool
  act: bool

  @property
  def macs(self) -> int:
    """True multiply-accumulates (transposed convs per input pixel)."""
    if self.kind == 'depthwise':
      return self.out_hw ** 2 * self.cout * self.kernel ** 2
    pixels = self.in_hw if self.kind == 'deconv' else self.out_hw
    return pixels ** 2 * self.cin * self.cout * self.kernel ** 2

  @property
  def paper_macs(self) -> int:
    """Old ptflops' count: transposed convs per output pixel, + 2 per BN and 1 per activation
    output element (models/counting.py)."""
    macs = (self.out_hw ** 2 * self.cin * self.cout * 16 if self.kind == 'deconv'
            else self.macs)
    elements = self.out_hw ** 2 * self.cout
    return macs + 2 * elements * self.bn + elements * self.act

  @property
  def params(self) -> int:
    """Kernel weights, plus BN scale and bias."""
    weights = (self.cout if self.kind == 'depthwise' else self.cin * self.cout) * self.kernel ** 2
    return weights + 2 * self.cout * self.bn


def layer_table(spec: arch_lib.ArchSpec, num_joints: int = 14,
                fusion: bool = True) -> list[Layer]:
  """Every conv of LitePose `spec` at its img_size, in forward order (models/litepose.py's
  topology, written out: stem, inverted residuals, Fusion Deconv Head)."""
  j, side = num_joints, spec.img_size
  out: list[Layer] = []
  hw = side // 2
  out.append(Layer('conv', side, hw, 3, arch_lib.STEM_CHANNELS, 3, True, True))
  out.append(Layer('depthwise', hw, hw, arch_lib.STEM_CHANNELS, arch_lib.STEM_CHANNELS, 3,
                   True, True))
  out.append(Layer('conv', hw, hw, arch_lib.STEM_CHANNELS, spec.input_channel, 1, True, False))
  feats = [(hw, spec.input_channel)]
  cin = spec.input_channel
  for stage in spec.stages:
    for bi, block in enumerate(stage.blocks):
      stride = stage.stride if bi == 0 else 1
      hidden = arch_lib.make_divisible(round(cin * block.expansion), 8)
      out.append(Layer('conv', hw, hw, cin, hidden, 1, True, True))
      out.append(Layer('depthwise', hw, hw // stride, hidden, hidden, block.kernel, True, True))
      hw //= stride
      out.append(Layer('conv', hw, hw, hidden, stage.channels, 1, True, False))
      cin = stage.channels
    feats.append((hw, cin))
  refined = feats[-1]
  for i, ch in enumerate(spec.deconv_setting):
    sources = [refined, feats[-(i + 2)]] if fusion else [refined]
    for k, (in_hw, c) in enumerate(sources):
      out.append(Layer('deconv', in_hw, 2 * in_hw, c, ch, 4, k == 0, k == 0))
    refined = (2 * refined[0], ch)
    if i == 0:
      continue
    out_ch = 2 * j if i == 1 else j
    for in_hw, c in ([refined, feats[-(i + 3)]] if fusion else [refined]):
      out.append(Layer('depthwise', in_hw, in_hw, c, c, 5, True, True))
      out.append(Layer('conv', in_hw, in_hw, c, out_ch, 1, False, False))
  return out


def _canonical(arch: Mapping[str, Any] | arch_lib.ArchSpec) -> str:
  """The architecture as sorted-key JSON of its official-schema dict (its name left out)."""
  if not isinstance(arch, (Mapping, arch_lib.ArchSpec)):
    raise UserError(f'arch must be an official-schema dict or an ArchSpec, got '
                    f'{type(arch).__name__}')
  return json.dumps(arch_lib.resolve_arch(arch).to_json_dict(), sort_keys=True)


@functools.lru_cache(maxsize=65536)
def _costs(canonical: str, num_joints: int, fusion: bool) -> tuple[int, int, int]:
  """(params, true MACs, paper MACs) of the canonical architecture JSON; see arch_costs."""
  table = layer_table(arch_lib.arch_from_dict(json.loads(canonical)), num_joints, fusion)
  return (sum(x.params for x in table), sum(x.macs for x in table),
          sum(x.paper_macs for x in table))


def arch_costs(arch: Mapping[str, Any] | arch_lib.ArchSpec, num_joints: int = 14, *,
               fusion: bool = True) -> dict[str, int]:
  """{'params', 'macs_true', 'macs_paper'} (counts; MACs for one image at the arch's img_size).

  arch: an official-schema dict (as litepose_jax.nas.space produces) or an ArchSpec. Memoised;
  the returned dict is a fresh copy.
  """
  if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints <= 0:
    raise UserError(f'num_joints must be a positive integer, got {num_joints!r}')
  if not isinstance(fusion, bool):
    raise UserError(f'fusion must be True or False, got {fusion!r}')
  params, true, paper = _costs(_canonical(arch), num_joints, fusion)
  return {'params': params, 'macs_true': true, 'macs_paper': paper}


def arch_macs(arch: Mapping[str, Any] | arch_lib.ArchSpec, convention: str = 'true',
              num_joints: int = 14, *, fusion: bool = True) -> int:
  """MACs of one image at the arch's img_size in `convention` ('true' or 'paper'); memoised."""
  if convention not in CONVENTIONS:
    raise UserError(f'convention must be one of {CONVENTIONS}, got {convention!r}')
  return arch_costs(arch, num_joints, fusion=fusion)[f'macs_{convention}']


def cache_info() -> dict[str, int]:
  """{'hits', 'misses', 'size'} of the memo (counts since the last clear_cache)."""
  info = _costs.cache_info()
  return {'hits': info.hits, 'misses': info.misses, 'size': info.currsize}


def clear_cache() -> None:
  """Forgets every memoised count."""
  _costs.cache_clear()
