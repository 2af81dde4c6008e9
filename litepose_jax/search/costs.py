"""Static costs of a sub-net a search can constrain: parameters, true and paper-convention MACs.

The numbers come from the model's own structure (models/counting.py: every layer observed during
an abstract trace), so they hold for any architecture dict, not only for the search space's
sub-nets. Conventions (docs/OFFICIAL.md, "Architecture"): 'true' counts conv + transposed-conv
multiply-accumulates; 'paper' reproduces the published 1.2 / 5.0 / 7.8 / 13.7 G (old ptflops:
BN and activations counted, transposed convs per output pixel). MACs are at the architecture's
own img_size, for one image.

An evolutionary search asks for the same sub-net's costs many times (constraint checks redraw
until a child fits), and one trace takes tens of milliseconds for the official depth: memoised
per (architecture, joints, fusion).
"""
from __future__ import annotations

from collections.abc import Mapping
import functools
import json
from typing import Any

from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib
from litepose_jax.models import counting

CONVENTIONS = counting.CONVENTIONS


def _canonical(arch: Mapping[str, Any] | arch_lib.ArchSpec) -> str:
  """The architecture as sorted-key JSON of its official-schema dict (its name left out)."""
  if not isinstance(arch, (Mapping, arch_lib.ArchSpec)):
    raise UserError(f'arch must be an official-schema dict or an ArchSpec, got '
                    f'{type(arch).__name__}')
  return json.dumps(arch_lib.resolve_arch(arch).to_json_dict(), sort_keys=True)


@functools.lru_cache(maxsize=65536)
def _costs(canonical: str, num_joints: int, fusion: bool) -> tuple[int, int, int]:
  """(params, true MACs, paper MACs) of the canonical architecture JSON; see arch_costs."""
  # Imported here: models pulls in jax, and `litepose search --help` should not wait for it.
  from litepose_jax import models
  spec = arch_lib.arch_from_dict(json.loads(canonical))
  # The plainest layers trace fastest (~20%); the counts do not depend on the implementation.
  model = models.create_model(spec, num_joints, fusion=fusion, depthwise_impl='lax',
                              conv_impl='lax')
  c = counting.count(model, spec.img_size)
  return c.params, c.macs('true'), c.macs('paper')


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
