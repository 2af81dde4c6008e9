"""`litepose sweep configs/sweep_X.py[:arg] --workdir ROOT [--print | --plan | --report]`.

A sweep file defines get_sweep(arg) -> {'config': 'litepose_s.py:arg' (relative to the sweep
file), 'runs': [{'model.kernel_size': 3}, ...]}. Every run gets ROOT/<name> as workdir, where the
name joins the overridden fields (e.g. kernel_size=3). Runs go one after another locally, or
--print writes one `litepose train` command per line for a cluster scheduler.

Every sweep has a plan: the parameters and the true / paper-convention GMACs
(models/counting.py) of each point at its training input size, printed before the runs start
(--plan prints only that) and written to ROOT/sweep_plan.json. After the runs, --report adds each
run's best evaluation AP (ROOT/<name>/best.json) and, with --latency, the CPU latency of its best/
model under JAX and under LiteRT (exported to ROOT/<name>/best.tflite, parity-checked).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any

import tqdm

from litepose_jax import config_files
from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError
from litepose_jax.training import cli as train_cli

PLAN_FILE = 'sweep_plan.json'
REPORT_FILE = 'sweep_report.json'


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

  def load_config(self):
    """The locked training config of this run (its file, argument and overrides)."""
    return config_files.load_config(self.config, self.overrides)


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
    r.load_config()
  return runs


def num_joints_of(config) -> int:
  """Joints the run's model predicts: its data set's joint set (custom: data.joint_names)."""
  dataset = config.data.dataset
  if dataset in joints_lib.JOINT_SETS:
    return joints_lib.get_joint_set(dataset).num_joints
  if config.data.joint_names:
    return len(config.data.joint_names)
  # A custom set without listed names takes its joints from the json at training time; the
  # plan can only count the model for some joint count, and the head is a small part of it.
  return 14


def plan_row(run: Run) -> dict[str, Any]:
  """{'name', 'arch', 'input_size', 'joints', 'params', 'gmacs_true', 'gmacs_paper'} of a run.

  Counted on the model `litepose train` builds for the run (abstract trace, no compilation), for
  one square image of the run's data.input_size; GMACs are 1e9 multiply-accumulates.
  """
  # Imported here: JAX and the models are not needed to print commands.
  from litepose_jax.models import counting  # pylint: disable=g-import-not-at-top
  from litepose_jax.training import trainer  # pylint: disable=g-import-not-at-top
  config = run.load_config()
  joints = num_joints_of(config)
  model = trainer.model_for_training(config, joints)
  size = config.data.input_size
  c = counting.count(model, size)
  return {'name': run.name, 'arch': str(config.model.arch), 'input_size': size, 'joints': joints,
          'params': c.params, 'gmacs_true': c.macs('true') / 1e9,
          'gmacs_paper': c.macs('paper') / 1e9}


def plan(runs: list[Run], progress: bool = False) -> list[dict[str, Any]]:
  """plan_row of every run, in order."""
  return [plan_row(r) for r in tqdm.tqdm(runs, desc='counting', unit='run', disable=not progress)]


# Column key -> (header, format of a value); a missing value prints as '-'.
COLUMNS = {
    'name': ('run', '{}'),
    'arch': ('arch', '{}'),
    'input_size': ('input', '{}'),
    'params': ('params (M)', '{:.2f}'),
    'gmacs_true': ('GMACs true', '{:.2f}'),
    'gmacs_paper': ('GMACs paper', '{:.2f}'),
    'ap': ('AP', '{:.3f}'),
    'ap_step': ('AP step', '{}'),
    'jax_cpu_ms': ('JAX CPU ms', '{:.1f}'),
    'litert_ms': ('LiteRT ms', '{:.1f}'),
}


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
  """A markdown table of `rows` (plan / report dicts) with the COLUMNS present in any row."""
  columns = columns or [k for k in COLUMNS if any(k in r for r in rows)]

  def cell(row, key):
    value = row.get(key)
    if value is None:
      return '-'
    if key == 'params':
      value = value / 1e6
    return COLUMNS[key][1].format(value)

  lines = ['| ' + ' | '.join(COLUMNS[k][0] for k in columns) + ' |',
           '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(r, k) for k in columns) + ' |' for r in rows]
  return '\n'.join(lines)


def _write_json(path: str, obj: Any) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def best_ap(workdir: str) -> tuple[float | None, int | None]:
  """(AP, step) of WORKDIR/best.json, the run's best evaluation; (None, None) before one."""
  path = os.path.join(workdir, 'best.json')
  if not os.path.isfile(path):
    return None, None
  with open(path) as f:
    try:
      best = json.load(f)
    except json.JSONDecodeError as e:
      raise UserError(f'{path} is not valid JSON: {e}') from e
  return best.get('AP'), best.get('step')


def jax_cpu_ms(module, variables, size: int, runs: int = 20, warmup: int = 3) -> float:
  """Median wall ms of one jitted inference forward pass on a [1, size, size, 3] image."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype(np.float32)
  fwd = jax.jit(lambda v, x: module.apply(v, x, train=False))
  times = []
  for i in range(warmup + runs):
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(variables, x))
    if i >= warmup:
      times.append((time.perf_counter() - t0) * 1e3)
  return statistics.median(times)


def measure_latency(row: dict[str, Any], run: Run, threads: int = 2, runs: int = 20) -> None:
  """Adds 'jax_cpu_ms' and 'litert_ms' (network, batch 1, median) of the run's best/ to `row`.

  The JAX figure uses the run's own model.depthwise_impl / conv_impl. The LiteRT figure is of the
  fp32 export at the training input size, written to WORKDIR/best.tflite with the export's
  parity guard against the JAX model.
  """
  # pylint: disable=g-import-not-at-top
  from litepose_jax import checkpoints
  from litepose_jax.export import bench
  from litepose_jax.export import cli as export_cli
  # pylint: enable=g-import-not-at-top
  best = os.path.join(run.workdir, 'best')
  if not os.path.isdir(best):
    return
  m = run.load_config().model
  # The run's implementations: on the CPU the 'matmul' dense convs compile for minutes on a
  # HigherHRNet's hundreds of convs, which a sweep trained with conv_impl='lax' avoids here too.
  module, variables, cfg = checkpoints.load_model(best, depthwise_impl=m.depthwise_impl,
                                                  conv_impl=m.conv_impl)
  size = row['input_size']
  row['jax_cpu_ms'] = jax_cpu_ms(module, variables, size, runs)
  out = os.path.join(run.workdir, 'best.tflite')
  export_cli.export_model(module, variables, out, size=size, model_cfg=cfg, source=best,
                          threads=threads, log=lambda msg: None)
  row['litert_ms'] = bench.benchmark(out, threads=threads, runs=runs, e2e=False)['network']['median']


def report(runs: list[Run], latency: bool = False, threads: int = 2, timed_runs: int = 20,
           progress: bool = False) -> list[dict[str, Any]]:
  """The plan rows with each run's best AP (and step), plus latencies when `latency`."""
  rows = []
  for run, row in zip(runs, plan(runs, progress)):
    row['ap'], row['ap_step'] = best_ap(run.workdir)
    if latency:
      measure_latency(row, run, threads, timed_runs)
    rows.append(row)
  return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the sweep file, --workdir, --print, --plan, --report and --config.KEY=VALUE overrides."""
  parser.add_argument('sweep', help="sweep file and optional argument, e.g. "
                      "'configs/sweep_kernel_size.py:model=S'")
  parser.add_argument('--workdir', required=True, help='root folder: one sub-folder per run')
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument('--print', dest='print_only', action='store_true',
                    help='print one `litepose train` command per run instead of running them '
                         '(the plan table goes to stderr)')
  mode.add_argument('--plan', dest='plan_only', action='store_true',
                    help='print the plan (params, true / paper GMACs of each point) and exit')
  mode.add_argument('--report', action='store_true',
                    help='after the runs: the plan with each run\'s best AP, as a markdown table '
                         f'(also written to WORKDIR/{REPORT_FILE})')
  parser.add_argument('--latency', action='store_true',
                      help='with --report: CPU latency (batch 1) of each best/ model, JAX and '
                           'LiteRT (exports WORKDIR/<run>/best.tflite)')
  parser.add_argument('--threads', type=int, default=2, help='LiteRT threads for --latency')
  parser.add_argument('--no-progress', dest='progress', action='store_false',
                      help='no progress bars')
  train_cli.accept_config_overrides(parser)


def run(args: argparse.Namespace) -> int:
  """Prints or runs (one after another) the sweep's `litepose train` commands, or reports."""
  runs = expand(args.sweep, args.workdir, getattr(args, 'config_overrides', []))
  progress = getattr(args, 'progress', True)
  if getattr(args, 'latency', False) and not getattr(args, 'report', False):
    raise UserError('--latency goes with --report (it measures the finished runs)')
  if getattr(args, 'report', False):
    rows = report(runs, args.latency, args.threads, progress=progress)
    _write_json(os.path.join(args.workdir, REPORT_FILE), rows)
    print(format_table(rows))
    return 0
  if args.print_only:
    for r in runs:
      print(r.command())
    print(format_table(plan(runs)), file=sys.stderr)
    return 0
  rows = plan(runs, progress)
  print(format_table(rows), flush=True)
  if getattr(args, 'plan_only', False):
    return 0
  _write_json(os.path.join(args.workdir, PLAN_FILE), rows)
  failed = []
  for i, r in enumerate(runs):
    print(f'litepose sweep: run {i + 1}/{len(runs)} {r.name}: {r.command()}', flush=True)
    rc = subprocess.call([sys.executable, '-m', 'litepose_jax.cli'] + r.argv())
    if rc:
      failed.append(f'{r.name} (exit {rc})')
  if failed:
    print('litepose sweep: failed runs: ' + ', '.join(failed), file=sys.stderr)
    return 1
  print(f'litepose sweep: {len(runs)} runs done under {args.workdir} (table: litepose sweep '
        f'{shlex.quote(args.sweep)} --workdir {shlex.quote(args.workdir)} --report)')
  return 0
