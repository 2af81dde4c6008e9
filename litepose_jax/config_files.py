"""big_vision-style config files and the one config loader.

A config is named 'path.py[:arg]': a python file and the string argument passed to one of its
functions (get_config for configs, get_sweep for sweeps). `load_config` runs get_config(arg),
applies command-line overrides ('optim.lr=1e-3', the KEY=VALUE of --config.KEY=VALUE) and locks
the result, so a later typo such as `cfg.data.batchsize = 8` is an error naming the key instead of
a silently added field.
"""
from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
import importlib.util
import os
import sys
import types
from typing import Any

import ml_collections

from litepose_jax.errors import UserError


def import_file(path: str) -> types.ModuleType:
  """Executes the python file `path` as a fresh module (configs/ is not a package)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'config file not found: {path}')
  name = '_litepose_' + os.path.basename(path).replace('.', '_')
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def import_sibling(anchor_file: str, name: str) -> types.ModuleType:
  """The config module `name` ('common') in the folder of `anchor_file` (a config's __file__)."""
  return import_file(os.path.join(os.path.dirname(os.path.abspath(anchor_file)), f'{name}.py'))


def call_file_function(spec: str, function: str = 'get_config', what: str = 'config') -> Any:
  """Runs FUNCTION(arg) of the python file in 'path.py[:arg]' (arg None when absent)."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{what} file not found: {path}')
  module = import_file(path)
  if not hasattr(module, function):
    raise UserError(f'{path} has no {function}(arg) function')
  return getattr(module, function)(arg or None)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses a config argument 'key=value,flag,...' against typed defaults.

  A bare key sets a bool to True; other values are converted to the default's type.
  """
  out = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, eq, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise UserError(f'unknown config argument {key!r}; known: {sorted(defaults)}')
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise UserError(f'config argument {key!r} needs a value ({key}=...)')
      out[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise UserError(f'config argument {key}={value!r} must be true or false')
      out[key] = value.lower() in ('true', '1')
    else:
      try:
        out[key] = type(default)(value)
      except ValueError:
        raise UserError(f'config argument {key}={value!r}: expected '
                        f'{type(default).__name__}') from None
  return ml_collections.ConfigDict(out)


def _coerce(value: str, current: Any, key: str) -> Any:
  """The text of --config.KEY=VALUE as the type of the field's current value."""
  if isinstance(current, bool):
    if value.lower() not in ('true', 'false', '1', '0'):
      raise UserError(f'--config.{key}={value!r}: expected true or false')
    return value.lower() in ('true', '1')
  if isinstance(current, str):
    return value
  try:
    parsed = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    raise UserError(f'--config.{key}={value!r}: not a valid {type(current).__name__}') from None
  if isinstance(current, float) and isinstance(parsed, int):
    parsed = float(parsed)
  if isinstance(current, (tuple, list)) and isinstance(parsed, (tuple, list, int, float)):
    parsed = tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)
  if current is not None and not isinstance(parsed, type(current)):
    raise UserError(f'--config.{key}={value!r}: expected {type(current).__name__}, got '
                    f'{type(parsed).__name__}')
  return parsed


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]
                    ) -> ml_collections.ConfigDict:
  """Applies ['model.kernel_size=5', ...] in place (keys must exist; values keep their type)."""
  for item in overrides:
    key, eq, value = item.partition('=')
    if not eq:
      raise UserError(f'config override {item!r} must be KEY=VALUE')
    *parents, leaf = key.split('.')
    node = cfg
    for i, p in enumerate(parents):
      if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
        raise UserError(f'unknown config field {".".join(parents[:i + 1])!r} in --config.{key}')
      node = node[p]
    if leaf not in node:
      raise UserError(f'unknown config field {key!r}; fields here: {sorted(node.keys())}')
    if isinstance(node[leaf], ml_collections.ConfigDict):
      raise UserError(f'--config.{key} is a group; set one of its fields: '
                      f'{sorted(node[leaf].keys())}')
    node[leaf] = _coerce(value, node[leaf], key)
  return cfg


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """get_config(arg) of 'path.py[:arg]', then `overrides` ('KEY=VALUE'), then locked."""
  cfg = call_file_function(spec, 'get_config', 'config')
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise UserError(f'{spec}: get_config() must return an ml_collections.ConfigDict')
  apply_overrides(cfg, overrides)
  cfg.lock()
  return cfg


# Command-line overrides of config fields: --config.KEY=VALUE or --config.KEY VALUE.
OVERRIDE_PREFIX = '--config.'


def accept_config_overrides(parser: argparse.ArgumentParser) -> None:
  """Lets `parser` collect --config.KEY=VALUE / --config.KEY VALUE into args.config_overrides."""
  parse_known = parser.parse_known_args

  def parse_known_args(args=None, namespace=None):
    args = list(sys.argv[1:] if args is None else args)
    overrides, rest, i = [], [], 0
    while i < len(args):
      a = args[i]
      if a.startswith(OVERRIDE_PREFIX):
        key = a[len(OVERRIDE_PREFIX):]
        if '=' not in key:
          if i + 1 >= len(args):
            raise UserError(f'{a} needs a value')
          key, i = f'{key}={args[i + 1]}', i + 1
        overrides.append(key)
      else:
        rest.append(a)
      i += 1
    ns, unknown = parse_known(rest, namespace)
    ns.config_overrides = getattr(ns, 'config_overrides', []) + overrides
    return ns, unknown

  parser.parse_known_args = parse_known_args
