"""`litepose sweep configs/sweep_X.py[:arg] --workdir ROOT [--print]`: expand a sweep into runs.

A sweep file defines get_sweep(arg) -> {'config': 'litepose_s.py:arg' (relative to the sweep
file), 'runs': [{'model.kernel_size': 3}, ...]}. Every run gets ROOT/<name> as workdir, where the
name joins the overridden fields (e.g. kernel_size=3). Runs go one after another locally, or
--print writes one `litepose train` command per line for a cluster scheduler.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys

from litepose_jax import config_files
from litepose_jax.errors import UserError
from litepose_jax.training import cli as train_cli


@dataclasses.dataclass
class Run:
  name: str
  config: str
  overrides: list[str]
  workdir: str

  def argv(self) -> list[str]:
    """The `litepose train` arguments of this run."""
    return (['train', '--config', self.config, '--workdir', self.workdir]
            + [f'--config.{o}' for o in self.overrides])

  def command(self) -> str:
    """The run as one shell command line."""
    return 'litepose ' + ' '.join(shlex.quote(a) for a in self.argv())


def _format(v) -> str:
  if isinstance(v, (tuple, list)):
    return repr(tuple(v))
  return str(v)


def expand(spec: str, root: str, common: list[str] | None = None) -> list[Run]:
  """Runs of the sweep file 'path.py[:arg]' under workdir root; common overrides go to all."""
  path = spec.partition(':')[0]
  sweep = config_files.call_file_function(spec, 'get_sweep', 'sweep')
  for key in ('config', 'runs'):
    if key not in sweep:
      raise UserError(f'{path}: get_sweep() must return a dict with {key!r}')
  cfg_path, _, cfg_arg = sweep['config'].partition(':')
  if not os.path.isabs(cfg_path):
    cfg_path = os.path.join(os.path.dirname(path), cfg_path)
  config = cfg_path + (f':{cfg_arg}' if cfg_arg else '')
  runs, names = [], set()
  for i, fields in enumerate(sweep['runs']):
    if not isinstance(fields, dict) or not fields:
      raise UserError(f'{path}: run {i} must be a non-empty dict of config fields')
    name = ','.join(f'{k.split(".")[-1]}={_format(v)}' for k, v in fields.items())
    name = name.replace(' ', '').replace('/', '_')
    if name in names:
      name = f'{name}#{i}'
    names.add(name)
    overrides = [f'{k}={_format(v)}' for k, v in fields.items()] + list(common or [])
    runs.append(Run(name, config, overrides, os.path.join(root, name)))
  # Fail before any run starts if a field does not exist in the config.
  for r in runs:
    config_files.load_config(r.config, r.overrides)
  return runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the sweep file, --workdir, --print and --config.KEY=VALUE overrides."""
  parser.add_argument('sweep', help="sweep file and optional argument, e.g. "
                      "'configs/sweep_kernel_size.py:model=S'")
  parser.add_argument('--workdir', required=True, help='root folder: one sub-folder per run')
  parser.add_argument('--print', dest='print_only', action='store_true',
                      help='print one `litepose train` command per run instead of running them')
  train_cli.accept_config_overrides(parser)


def run(args: argparse.Namespace) -> int:
  """Prints or runs (one after another) the sweep's `litepose train` commands."""
  runs = expand(args.sweep, args.workdir, getattr(args, 'config_overrides', []))
  if args.print_only:
    for r in runs:
      print(r.command())
    return 0
  failed = []
  for i, r in enumerate(runs):
    print(f'litepose sweep: run {i + 1}/{len(runs)} {r.name}: {r.command()}', flush=True)
    rc = subprocess.call([sys.executable, '-m', 'litepose_jax.cli'] + r.argv())
    if rc:
      failed.append(f'{r.name} (exit {rc})')
  if failed:
    print('litepose sweep: failed runs: ' + ', '.join(failed), file=sys.stderr)
    return 1
  print(f'litepose sweep: {len(runs)} runs done under {args.workdir}')
  return 0
