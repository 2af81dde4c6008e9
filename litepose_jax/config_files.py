"""big_vision-style config files: 'path.py[:arg]' names a python file and the string argument
passed to one of its functions (get_config, get_sweep)."""
from __future__ import annotations

import importlib.util
import os
from typing import Any


def call_file_function(spec: str, function: str = 'get_config', what: str = 'config') -> Any:
  """Runs FUNCTION(arg) of the python file in 'path.py[:arg]' (arg None when absent)."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{what} file not found: {path}')
  module_spec = importlib.util.spec_from_file_location(
      '_litepose_' + os.path.basename(path).replace('.', '_'), path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, function):
    raise ValueError(f'{path} has no {function}(arg) function')
  return getattr(module, function)(arg or None)
