"""The model families: `create_model(arch, num_joints)` builds a LitePose (official JSON schema,
presets XS..L), a HigherHRNet (official yaml MODEL.EXTRA, presets in hrnet_arch.PRESETS) or an
EfficientHRNet (official yaml MODEL, presets in efficient_hrnet_arch.PRESETS)."""
from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

import jax
import jax.numpy as jnp

from litepose_jax.errors import UserError
from litepose_jax.models import layers
from litepose_jax.models.arch import PRESET_NAMES
from litepose_jax.models.arch import ArchLike
from litepose_jax.models.arch import ArchSpec
from litepose_jax.models.arch import Preset
from litepose_jax.models.arch import arch_from_dict
from litepose_jax.models.arch import get_preset
from litepose_jax.models.arch import make_divisible
from litepose_jax.models.arch import resolve_arch
from litepose_jax.models.depthwise import IMPLS as DEPTHWISE_IMPLS
from litepose_jax.models.efficient_hrnet import EfficientHRNet
from litepose_jax.models.efficient_hrnet_arch import EfficientHRNetSpec
from litepose_jax.models.efficient_hrnet_arch import is_efficient_hrnet
from litepose_jax.models.efficient_hrnet_arch import resolve_efficient_hrnet
from litepose_jax.models.higherhrnet import HigherHRNet
from litepose_jax.models.hrnet_arch import HRNetSpec
from litepose_jax.models.hrnet_arch import hrnet_from_extra
from litepose_jax.models.hrnet_arch import is_hrnet_dict
from litepose_jax.models.hrnet_arch import is_hrnet_name
from litepose_jax.models.hrnet_arch import resolve_hrnet
from litepose_jax.models.layers import numpy_init
from litepose_jax.models.litepose import LitePose


def is_hrnet(arch: Any) -> bool:
  """True when `arch` names a HigherHRNet: HRNetSpec, MODEL.EXTRA / whole-yaml dict, preset name
  ('higherhrnet-w32', ...) or .yaml path (not an EfficientHRNet's: is_efficient_hrnet); anything
  else is a LitePose description."""
  if is_efficient_hrnet(arch):
    return False
  if isinstance(arch, HRNetSpec):
    return True
  if isinstance(arch, Mapping):
    return is_hrnet_dict(arch)
  return isinstance(arch, (str, os.PathLike)) and is_hrnet_name(os.fspath(arch))


def resolve_model_arch(arch: Any) -> ArchSpec | HRNetSpec | EfficientHRNetSpec:
  """The validated spec of any family (resolve_efficient_hrnet, resolve_hrnet or resolve_arch)."""
  if is_efficient_hrnet(arch):
    return resolve_efficient_hrnet(arch)
  return resolve_hrnet(arch) if is_hrnet(arch) else resolve_arch(arch)


def create_model(arch: ArchLike | HRNetSpec | EfficientHRNetSpec, num_joints: int = 14, *,
                 fusion: bool = True, kernel_size: int | None = None, width_mult: float = 1.0,
                 depthwise_impl: str = 'auto', dtype: Any = jnp.float32,
                 conv_impl: str = 'auto') -> LitePose | HigherHRNet | EfficientHRNet:
  """Builds a LitePose (preset name, official-schema dict or JSON path), a HigherHRNet (preset
  name, MODEL.EXTRA / whole-yaml dict or .yaml path, HRNetSpec) or an EfficientHRNet (preset
  name 'efficienthrnet-h1'..'-h4', whole-yaml dict or .yaml path, EfficientHRNetSpec).

  `apply(variables, images [B, H, W, 3], train=False)` returns
  (out_stride4 [B, H/4, W/4, 2J], out_stride2 [B, H/2, W/2, J]).
  fusion / kernel_size / width_mult are LitePose's ablations (rejected for the HRNet families).
  """
  if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints <= 0:
    raise UserError(f'num_joints must be a positive integer, got {num_joints!r}')
  if depthwise_impl not in DEPTHWISE_IMPLS:
    raise UserError(f'depthwise_impl must be one of {DEPTHWISE_IMPLS}, got {depthwise_impl!r}')
  if conv_impl not in layers.CONV_IMPLS:
    raise UserError(f'conv_impl must be one of {layers.CONV_IMPLS}, got {conv_impl!r}')
  if is_efficient_hrnet(arch):
    if not fusion or kernel_size is not None or width_mult != 1.0:
      raise UserError('fusion=False, kernel_size and width_mult are LitePose ablations; an '
                      'EfficientHRNet is changed through its yaml MODEL fields instead')
    return EfficientHRNet(resolve_efficient_hrnet(arch), num_joints, depthwise_impl, dtype,
                          conv_impl)
  if is_hrnet(arch):
    if not fusion or kernel_size is not None or width_mult != 1.0:
      raise UserError('fusion=False, kernel_size and width_mult are LitePose ablations; a '
                      'HigherHRNet is changed through its MODEL.EXTRA instead')
    return HigherHRNet(resolve_hrnet(arch), num_joints, depthwise_impl, dtype, conv_impl)
  spec = resolve_arch(arch)
  if kernel_size is not None or width_mult != 1.0:
    spec = spec.replace(kernel_size=kernel_size, width_mult=width_mult)
  return LitePose(spec, num_joints, fusion, depthwise_impl, dtype, conv_impl)


def init_variables(model: LitePose | HigherHRNet | EfficientHRNet, size: int | tuple[int, int] | None = None, seed: int = 0) -> dict:
  """Fresh {'params', 'batch_stats'} (numpy) for `model`, PyTorch-default init, in milliseconds."""
  if size is None:
    size = model.arch.img_size
  h, w = (size, size) if isinstance(size, int) else size
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
  return numpy_init(dict(shapes), seed)


def variable_shapes(model: LitePose | HigherHRNet | EfficientHRNet) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{(collection, *module path, leaf name): shape} of every variable `model.init` creates.

  Shapes do not depend on the input size; traced abstractly (no compilation, no arrays).
  """
  side = max(64, getattr(model.arch, 'input_multiple', 1))  # a HigherHRNet's branch stride
  x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  shapes = jax.eval_shape(model.clone(folded=False).init, jax.random.PRNGKey(0), x)
  return {tuple(p.key for p in path): tuple(s.shape)
          for path, s in jax.tree_util.tree_flatten_with_path(dict(shapes))[0]}


def nest_variables(flat: Mapping[tuple[str, ...], Any]) -> dict:
  """{(collection, *module path, leaf name): leaf} (variable_shapes' keys) -> nested dicts."""
  variables: dict = {}
  for path, leaf in flat.items():
    node = variables
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = leaf
  return variables


__all__ = ['init_variables', 'nest_variables', 'variable_shapes', 'ArchSpec', 'LitePose', 'PRESET_NAMES', 'Preset', 'arch_from_dict', 'create_model',
           'get_preset', 'make_divisible', 'resolve_arch', 'HRNetSpec', 'HigherHRNet', 'is_hrnet',
           'hrnet_from_extra', 'resolve_hrnet', 'resolve_model_arch', 'EfficientHRNet',
           'EfficientHRNetSpec', 'is_efficient_hrnet', 'resolve_efficient_hrnet']
