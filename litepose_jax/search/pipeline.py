"""`litepose nas --config configs/nas.py[:arg] --workdir DIR`: super-net -> deployable nets.

The whole chain of the official pipeline (SUPERNET_SPEC.md §0, §9 point 14) in one resumable
command, configured by configs/nas.py (its docstring has the recipe and the costs):
  1 supernet  train the super-net (config.supernet)                        DIR/supernet
  2 search    the evolution at every budget (config.search, search/run.py)   DIR/search
  3 extract   per budget, the chosen sub-net and the largest uniform-width net (every width
              times one multiplier, at one of the space's resolutions) whose cost in the
              budget's terms (MACs in the search's convention and / or modelled latency) is no
              more than the chosen net's, each cut out of the super-net with its BatchNorm
              statistics recalibrated, head included (`litepose extract --config`)
                                                          DIR/nets/<budget>[_uniform]/init
  4 finetune  both trained from those weights with config.finetune for the same steps, at the
              net's own img_size                          DIR/nets/<budget>[_uniform]/finetune
  5 evaluate  every net before and after fine-tuning on config.eval's split (flip test as
              configured, the official protocol)          DIR/nets/*/eval_{before,after}.json
  6 report    DIR/report.md and DIR/report.json: per budget the searched and the uniform net
              (costs, search AP, AP before / after fine-tuning), the search's Pareto picture
              (DIR/search/pareto.png), the wall time of every stage (DIR/stages.json).

Resuming: every stage's result records what it was made from (the stage's config, the
architecture, the checkpoint it read) in a marker file; a rerun skips a stage whose marker
matches, continues one that a crash interrupted (the trainers resume from their checkpoints, the
search from its evaluation log) and refuses, naming the stage and the fields, to reuse a
result made from something else (use a new DIR, or delete that stage's folder). A SIGTERM /
Ctrl-C during training saves a checkpoint and stops; the finished stages stay in place.

Multi-host: stages 1, 2 and 4 run on every process (as `litepose train` / `search`); the
extraction, the evaluation and the files of stages 3, 5 and 6 are process 0's, on a filesystem
every process sees.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import shutil
import time
from typing import Any

import ml_collections

from litepose_jax import config_files
from litepose_jax.errors import UserError

STAGES = ('supernet', 'search', 'extract', 'finetune', 'evaluate', 'report')
TIMES_FILE = 'stages.json'
REPORT_MD = 'report.md'
REPORT_JSON = 'report.json'
# Run-time fields of a training config that do not change what it trains.
_COSMETIC = ('progress', 'log_every', 'image_summary_every', 'compilation_cache_dir')
PHASES = ('before', 'after')  # evaluated: the transferred weights, then the fine-tuned ones


class Preempted(KeyboardInterrupt):
  """A training stage saved a checkpoint on SIGTERM / SIGINT and stopped; rerun to resume."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds --config, --workdir and --config.KEY=VALUE overrides."""
  parser.add_argument('--config', required=True,
                      help="configs/nas.py[:arg], e.g. 'configs/nas.py:synthetic'; override "
                      'fields with --config.KEY=VALUE (e.g. --config.supernet.data.data_dir='
                      '/data/crowdpose --config.search.macs=(1.2,5))')
  parser.add_argument('--workdir', required=True,
                      help='run directory of every stage; a rerun skips the finished stages and '
                      'resumes the interrupted one')
  config_files.accept_config_overrides(parser)


def run(args: argparse.Namespace) -> int:
  """Runs (or resumes) the chain in --workdir; prints where the report is."""
  config = config_files.load_config(args.config, getattr(args, 'config_overrides', []))
  # Imported here: the trainer pulls in JAX, which `litepose nas --help` does not need.
  from litepose_jax.training import trainer  # pylint: disable=g-import-not-at-top
  trainer.initialize_distributed(config.supernet)
  report = run_pipeline(config, args.workdir, config_name=args.config)
  print(f'litepose nas: report {report["files"]["markdown"]}', flush=True)
  return 0


# ---------------------------------------------------------------------------------------------
# Markers, times, logging


def _log(msg: str) -> None:
  print(f'litepose nas: {msg}', flush=True)


def _banner(number: int, title: str, where: str) -> None:
  print(f'==== litepose nas: stage {number}/{len(STAGES)} {title} ({where}) ====', flush=True)


def _is_main() -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def _barrier(name: str) -> None:
  """Every process waits here until all arrive (a no-op with one process)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f'litepose_nas_{name}')


def _read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise UserError(f'{path} is not valid JSON ({e}); delete it to redo its stage') from e


def _write_json(path: str, obj: Any) -> str:
  """Atomic JSON write: a killed run leaves the old file or the new one, never half of one."""
  from litepose_jax.evaluation import split as split_lib  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return split_lib.write_json(path, obj, indent=2)


def _jsonable(cfg: Any) -> Any:
  """A config (ConfigDict or mapping) as plain JSON values, to compare two runs' inputs."""
  if hasattr(cfg, 'to_json_best_effort'):
    return json.loads(cfg.to_json_best_effort(sort_keys=True))
  return json.loads(json.dumps(cfg, sort_keys=True, default=str))


def _diff(a: Any, b: Any, prefix: str = '') -> list[str]:
  """Dotted paths where two JSON values differ."""
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k), b.get(k), f'{prefix}{k}.')
    return out
  return [] if a == b else [prefix.rstrip('.') or '(value)']


def _done(marker: str, key: dict, stage: str, folder: str) -> bool:
  """Whether `marker` records a finished `stage` made from `key`; UserError when it was made
  from something else (naming the first fields that differ)."""
  if not os.path.isfile(marker):
    return False
  have = _read_json(marker).get('key')
  if have == key:
    return True
  diff = _diff(have, key)
  raise UserError(f'{stage}: {folder} was made from other settings ({", ".join(diff[:6])}'
                  f'{" ..." if len(diff) > 6 else ""} differ, see {marker}); use a new --workdir '
                  f'or delete {folder} to redo it')


def _training_key(cfg: ml_collections.ConfigDict) -> dict:
  """What a training config trains: every field but the cosmetic run-time ones."""
  d = _jsonable(cfg)
  for k in _COSMETIC:
    d.pop(k, None)
  return d


class _Times:
  """Wall seconds per stage item, summed over invocations, in DIR/stages.json."""

  def __init__(self, path: str):
    self.path = path
    self.seconds: dict[str, float] = _read_json(path) if os.path.isfile(path) else {}

  @contextlib.contextmanager
  def __call__(self, key: str) -> Iterator[None]:
    t0 = time.time()
    try:
      yield
    finally:
      # Also when the stage fails or is interrupted: the time was spent.
      self.seconds[key] = self.seconds.get(key, 0.0) + time.time() - t0
      if _is_main():
        _write_json(self.path, self.seconds)

  def stage(self, name: str) -> float:
    """Total seconds of stage `name` (its items are `name` and `name/...`)."""
    return sum(v for k, v in self.seconds.items() if k == name or k.startswith(name + '/'))


# ---------------------------------------------------------------------------------------------
# Stage 1: super-net


def _train(cfg: ml_collections.ConfigDict, workdir: str, times: _Times, key: str) -> dict:
  """train_and_evaluate into workdir (resuming), timed; Preempted when it stopped early."""
  from litepose_jax.training import trainer  # pylint: disable=g-import-not-at-top
  with times(key):
    result = trainer.train_and_evaluate(cfg, workdir)
  if result['preempted']:
    raise Preempted(f'{key}: stopped at step {result["step"]} (checkpoint saved in {workdir}); '
                    'rerun the same command to resume')
  return result


def _supernet_stage(config: ml_collections.ConfigDict, workdir: str, times: _Times) -> str:
  """Stage 1: the trained super-net's training workdir."""
  out = os.path.join(workdir, 'supernet')
  _banner(1, 'super-net training', out)
  key = _training_key(config.supernet)
  marker = os.path.join(out, 'nas_done.json')
  if _done(marker, key, 'stage 1 (super-net)', out):
    _log(f'stage 1 skipped: the super-net in {out} is trained')
    return out
  result = _train(config.supernet, out, times, 'supernet')
  if _is_main():
    _write_json(marker, {'key': key, 'step': int(result['step'])})
  _barrier('supernet')
  return out


# ---------------------------------------------------------------------------------------------
# Stage 2: search


def files_data(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config.data reading the image files (the search, calibration and evaluation need real
  images and annotations also when the training stages run on fake batches)."""
  out = ml_collections.ConfigDict(data.to_dict())
  out.source = 'files'
  return out


def budgets_of(search: ml_collections.ConfigDict) -> list:
  """The search.run.Budget list of config.search.macs / latency_ms (paired like `litepose
  search --macs / --latency-ms`)."""
  from litepose_jax.search import run as run_lib  # pylint: disable=g-import-not-at-top
  macs = ','.join(f'{float(v):g}' for v in search.macs) or None
  lat = ','.join(f'{float(v):g}' for v in search.latency_ms) or None
  if macs is None and lat is None:
    raise UserError('config.search.macs and config.search.latency_ms are both empty: give at '
                    'least one budget')
  try:
    return run_lib.parse_budgets(macs, lat)
  except UserError as e:
    raise UserError(f'config.search.macs / config.search.latency_ms: {e}') from e


def _search_stage(config: ml_collections.ConfigDict, workdir: str, supernet_dir: str,
                  budgets: list, times: _Times) -> dict:
  """Stage 2: run_search's results (returned as they are when a finished search matches)."""
  from litepose_jax.search import run as run_lib  # pylint: disable=g-import-not-at-top
  out = os.path.join(workdir, 'search')
  _banner(2, 'architecture search', out)
  results_path = os.path.join(out, run_lib.RESULTS)
  before = os.path.getmtime(results_path) if os.path.isfile(results_path) else None
  s = config.search
  with times('search'):
    results = run_lib.run_search(
        supernet_dir, budgets, out, data_cfg=files_data(config.supernet.data),
        convention=s.convention, threads=s.threads, seed=s.seed,
        population_size=s.population_size, iterations=s.iterations, parents=s.parents,
        mutants=s.mutants, crossovers=s.crossovers, mutate_prob=s.mutate_prob,
        num_calibration=s.num_calibration, num_search=s.num_search, calib_batch=s.calib_batch,
        uniform_mults=tuple(s.uniform_mults), latency_cache=s.latency_cache or None,
        fitness_widths=s.get('fitness_widths', 'auto'), progress=bool(config.progress))
  unchanged = before is not None and os.path.getmtime(results_path) == before
  if unchanged:
    _log(f'stage 2 skipped: the search in {out} is finished with these settings')
  for b in results['budgets']:
    _log(f'  {b["name"]}: AP {b["ap"]:.4f} on the search split, {b["macs_true"] / 1e9:.4g} G '
         f'true / {b["macs_paper"] / 1e9:.4g} G paper MACs, {b["params"] / 1e6:.3g} M params, '
         f'{b["arch"]["img_size"]} px')
  return results


# ---------------------------------------------------------------------------------------------
# Stage 3: the nets of each budget


@dataclasses.dataclass
class Net:
  """One net of the report: a budget's searched net or its uniform-width baseline."""
  # Folder under DIR/nets: the budget's name, + '_uniform' for the baseline; a net that an
  # earlier budget has too (e.g. the same baseline) keeps that budget's folder and is trained once.
  name: str
  role: str  # 'searched' | 'uniform'
  budget: str
  arch: dict  # official schema
  mult: float | None = None  # uniform: the width multiplier
  folder: str = ''

  @property
  def arch_file(self) -> str:
    return os.path.join(self.folder, f'{self.name}.json')

  @property
  def init(self) -> str:
    return os.path.join(self.folder, 'init')

  @property
  def finetune(self) -> str:
    return os.path.join(self.folder, 'finetune')


def uniform_baseline(space, target: dict, *, costs: Callable[[dict], dict], convention: str,
                     by_macs: bool, latency_model: Any = None,
                     mults: Sequence[float] = (0.25, 0.5, 0.75, 1.0)) -> tuple[dict, float] | None:
  """(arch, multiplier) of the largest uniform-width net (every width times one of `mults`, at
  any resolution of `space`) that costs no more than `target` in a budget's terms: MACs in
  `convention` when `by_macs`, modelled latency (ms) when `latency_model` is given, both when
  both. Largest: by those MACs (latency when only latency counts), then parameters. None when
  no such net exists (e.g. `mults` lacks the smallest multiplier)."""
  from litepose_jax import nas  # pylint: disable=g-import-not-at-top
  if not by_macs and latency_model is None:
    raise ValueError('uniform_baseline needs by_macs and / or a latency model')
  field = f'macs_{convention}'
  want = costs(target)
  want_ms = latency_model.predict(target) if latency_model is not None else None
  best, best_rank = None, None
  for m in mults:
    for r in space.resolutions:
      arch = nas.uniform(space, m, r)
      c = costs(arch)
      if by_macs and c[field] > want[field]:
        continue
      ms = latency_model.predict(arch) if latency_model is not None else None
      if ms is not None and ms > want_ms:
        continue
      rank = (c[field] if by_macs else ms, c['params'], r)
      if best_rank is None or rank > best_rank:
        best, best_rank = (arch, float(m)), rank
  return best


def _nets_of(config: ml_collections.ConfigDict, workdir: str, results: dict, budgets: list,
             supernet_cfg: dict) -> list[tuple[Any, list[Net]]]:
  """[(budget, [searched net, uniform net (when one fits)])] in budget order."""
  from litepose_jax import nas  # pylint: disable=g-import-not-at-top
  from litepose_jax.nas import supernet as supernet_lib  # pylint: disable=g-import-not-at-top
  from litepose_jax.search import latency as latency_lib  # pylint: disable=g-import-not-at-top
  space = nas.space_from_json(supernet_cfg[supernet_lib.SUPERNET_FIELD],
                              'super-net model.json: supernet')
  costs = _costs_fn(supernet_cfg)
  model = (latency_lib.LatencyModel.from_dict(results['latency_model'])
           if results.get('latency_model') else None)
  rows = {r['name']: r for r in results['budgets']}
  out, by_arch = [], {}
  for b in budgets:
    row = rows[b.name]
    nets = [Net(b.name, 'searched', b.name, row['arch'])]
    found = uniform_baseline(space, row['arch'], costs=costs, convention=row['convention'],
                             by_macs=b.macs is not None,
                             latency_model=model if b.latency_ms is not None else None,
                             mults=tuple(config.search.uniform_mults))
    if found is None:
      _log(f'{b.name}: no uniform-width net (multipliers {tuple(config.search.uniform_mults)}) '
           'costs as little as the searched one: no baseline')
    else:
      nets.append(Net(f'{b.name}_uniform', 'uniform', b.name, found[0], mult=found[1]))
    for n in nets:
      n.name = by_arch.setdefault(json.dumps(n.arch, sort_keys=True), n.name)
      n.folder = os.path.join(workdir, 'nets', n.name)
    out.append((b, nets))
  return out


def _costs_fn(supernet_cfg: dict) -> Callable[[dict], dict]:
  from litepose_jax.search import costs as costs_lib  # pylint: disable=g-import-not-at-top
  joints, fusion = int(supernet_cfg['num_joints']), bool(supernet_cfg.get('fusion', True))
  return lambda arch: costs_lib.arch_costs(arch, joints, fusion=fusion)


def _extract(net: Net, config: ml_collections.ConfigDict, supernet_ckpt: str) -> None:
  """The net's recalibrated weights as a checkpoint in net.init (written via a temporary folder,
  so that a killed extraction leaves nothing that looks finished)."""
  from litepose_jax.nas import cli as nas_cli  # pylint: disable=g-import-not-at-top
  s = config.search
  calibration = {'data_cfg': files_data(config.supernet.data), 'num_images': s.num_calibration,
                 'batch_size': s.calib_batch, 'seed': s.seed}
  key = {'arch': net.arch, 'supernet': supernet_ckpt,
         'calibration': {k: v for k, v in calibration.items() if k != 'data_cfg'},
         'data': _jsonable(calibration['data_cfg'])}
  marker = os.path.join(net.folder, 'extract.json')
  if _done(marker, key, f'stage 3 (extract {net.name})', net.init):
    _log(f'stage 3: {net.name} skipped (extracted in {net.init})')
    return
  for stale in (net.init, net.init + '.tmp'):
    if os.path.exists(stale):  # an extraction that never recorded its end: redo it
      _log(f'stage 3: {stale} is unfinished: removing it')
      shutil.rmtree(stale)
  os.makedirs(net.folder, exist_ok=True)
  _write_json(net.arch_file, net.arch)
  _, cfg = nas_cli.extract_checkpoint(supernet_ckpt, net.arch_file, net.init + '.tmp',
                                      calibration=calibration, log=_log)
  os.replace(net.init + '.tmp', net.init)
  _write_json(marker, {'key': key, 'calibration': cfg.get('calibration')})
  _log(f'stage 3: {net.name} extracted to {net.init} (BatchNorm recalibrated on '
       f'{cfg["calibration"]["images"]} training images)')


def _describe_net(net: Net, row: dict | None, costs: Callable[[dict], dict], results: dict,
                  measure: Callable[[dict], float] | None) -> dict:
  """net.json: the net's architecture, costs, search AP and latency (measured once, kept).

  row: the search's results row of a searched net (None for a baseline); measure(arch) -> ms:
  the exact latency, for a baseline of a latency budget (the searched net's is in its row)."""
  path = os.path.join(net.folder, 'net.json')
  if os.path.isfile(path):
    have = _read_json(path)
    if have.get('arch') == net.arch and have.get('net') == net.name:
      return have
  c = costs(net.arch)
  search_ap, model_ms, measured = None, None, None
  if row is not None:
    search_ap, model_ms, measured = row['ap'], row['latency_ms_model'], row['latency_ms_measured']
  else:
    key = json.dumps(net.arch, sort_keys=True)
    for p in list(results.get('uniform', [])) + list(results.get('candidates', [])):
      if json.dumps(p['arch'], sort_keys=True) == key:
        search_ap, model_ms = p['ap'], p.get('latency_ms_model')
        break
    if results.get('latency_model') and model_ms is None:
      from litepose_jax.search import latency as latency_lib  # pylint: disable=g-import-not-at-top
      model_ms = latency_lib.LatencyModel.from_dict(results['latency_model']).predict(net.arch)
    if measure is not None:
      measured = float(measure(net.arch))
  desc = {'net': net.name, 'arch': net.arch, 'img_size': int(net.arch['img_size']), 'params': int(c['params']),
          'macs_true': int(c['macs_true']), 'macs_paper': int(c['macs_paper']),
          'search_ap': search_ap, 'latency_ms_model': model_ms, 'latency_ms_measured': measured}
  _write_json(path, desc)
  return desc


# ---------------------------------------------------------------------------------------------
# Stage 4: fine-tuning


def finetune_config(base: ml_collections.ConfigDict, arch_file: str, img_size: int,
                    init: str) -> ml_collections.ConfigDict:
  """config.finetune for one net: its architecture JSON, its img_size, its transferred weights."""
  cfg = ml_collections.ConfigDict(base.to_dict())  # a copy with the field references resolved
  cfg.model.arch = os.path.abspath(arch_file)
  cfg.data.input_size = int(img_size)
  cfg.init_from = os.path.abspath(init)
  cfg.lock()
  return cfg


def _finetune(net: Net, config: ml_collections.ConfigDict, times: _Times) -> None:
  cfg = finetune_config(config.finetune, net.arch_file, net.arch['img_size'], net.init)
  key = _training_key(cfg)
  marker = os.path.join(net.folder, 'finetune.json')
  if _done(marker, key, f'stage 4 (fine-tune {net.name})', net.finetune):
    _log(f'stage 4: {net.name} skipped (fine-tuned in {net.finetune})')
    return
  result = _train(cfg, net.finetune, times, f'finetune/{net.name}')
  if _is_main():
    _write_json(marker, {'key': key, 'step': int(result['step'])})
  _barrier(f'finetune_{net.name}')


# ---------------------------------------------------------------------------------------------
# Stage 5: evaluation


def eval_paths(config: ml_collections.ConfigDict) -> tuple[str, str, str]:
  """(annotation json, image folder, dataset) of config.eval's split of the super-net's data."""
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  d = config.supernet.data
  ann, images = datasets.resolve_paths(d.dataset, d.data_dir, config.eval.split,
                                       config.eval.ann_file, config.eval.image_dir)
  return ann, images, d.dataset


def _evaluate(net: Net, phase: str, config: ml_collections.ConfigDict, times: _Times) -> dict:
  """{'metrics', 'images', 'checkpoint', ...} of the net before / after fine-tuning."""
  from litepose_jax import checkpoints  # pylint: disable=g-import-not-at-top
  ckpt = checkpoints.find_checkpoint(net.init if phase == 'before' else net.finetune)
  ann, image_dir, dataset = eval_paths(config)
  e = config.eval
  key = {'checkpoint': ckpt, 'ann_file': ann, 'image_dir': image_dir, 'dataset': dataset,
         'num_images': int(e.num_images), 'flip': bool(e.flip), 'size': net.arch['img_size']}
  path = os.path.join(net.folder, f'eval_{phase}.json')
  if _done(path, key, f'stage 5 (evaluate {net.name} {phase} fine-tuning)', path):
    _log(f'stage 5: {net.name} {phase} fine-tuning skipped (scored in {path})')
    return _read_json(path)
  from litepose_jax.evaluation import load_gt  # pylint: disable=g-import-not-at-top
  from litepose_jax.evaluation import split as split_lib  # pylint: disable=g-import-not-at-top
  from litepose_jax.inference.predictor import Predictor  # pylint: disable=g-import-not-at-top
  with times(f'evaluate/{net.name}/{phase}'):
    gt = load_gt(ann, dataset)
    images = split_lib.split_images(gt, image_dir, e.num_images or None)
    predictor = Predictor.from_path(ckpt, size=int(net.arch['img_size']), flip=bool(e.flip))
    if predictor.joint_set.name != dataset:
      raise UserError(f'{ckpt} predicts {predictor.joint_set.name} joints but the evaluation '
                      f'data set is {dataset}')
    prefix = os.path.join(net.folder, f'eval_{phase}')
    metrics, _ = split_lib.evaluate_split(
        predictor, ann, images, dataset, out_prefix=prefix, restrict=bool(e.num_images),
        desc=f'eval {net.name} {phase}', progress=bool(config.progress), log=_log)
  record = {'key': key, 'metrics': {k: float(v) for k, v in metrics.items()},
            'images': len(images), 'protocol': predictor.protocol}
  _write_json(path, record)
  _log(f'stage 5: {net.name} {phase} fine-tuning: AP {metrics["AP"]:.4f} on {len(images)} '
       f'{config.eval.split} images')
  return record


# ---------------------------------------------------------------------------------------------
# Stage 6: report


def _g(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
  return '-' if v is None else f'{v / scale:.{digits}f}'


def _widths(arch: dict) -> str:
  return (f'{arch["input_channel"]}, {arch["deconv_setting"]}, '
          f'{"/".join(str(s["channel"]) for s in arch["backbone_setting"])}')


def _duration(seconds: float) -> str:
  m, s = divmod(int(round(seconds)), 60)
  return f'{m // 60}h {m % 60:02d}m {s:02d}s' if m >= 60 else f'{m}m {s:02d}s'


def format_report(report: dict) -> str:
  """report.md from report.json's dict."""
  r = report
  lines = [f'# litepose nas: {r["workdir"]}', '',
           f'Config: `{r["config_name"]}`. Generated {r["generated"]}.', '',
           f'- super-net: {r["supernet"]["steps"]} steps, search space resolutions '
           f'{r["supernet"]["resolutions"]} ({r["supernet"]["workdir"]})',
           f'- search: {r["search"]["convention"]}-convention MACs, population '
           f'{r["search"]["population_size"]}, {r["search"]["iterations"]} generations, '
           f'{r["search"]["candidates"]} distinct candidates scored on {r["search"]["num_search"]} '
           f'search images after recalibration on {r["search"]["num_calibration"]}',
           f'- fine-tuning: {r["finetune"]["steps"]} steps for every net, from its transferred '
           'weights (head included), BatchNorm recalibrated first',
           f'- evaluation: {r["eval"]["dataset"]} {r["eval"]["split"]}, {r["eval"]["images"]} '
           f'images, flip test {"on" if r["eval"]["flip"] else "off"}', '']
  head = ('| net | px | widths (stem, deconv, stages) | params (M) | MACs true (G) | '
          'MACs paper (G) | latency model / measured (ms) | search AP | AP before FT | '
          'AP after FT | AP50 after | AR after |')
  for b in r['budgets']:
    bound = ' and '.join(filter(None, (
        f'<= {b["macs"]:g} G {b["convention"]} MACs' if b['macs'] is not None else '',
        f'<= {b["latency_ms"]:g} ms' if b['latency_ms'] is not None else '')))
    lines += [f'## Budget {b["name"]} ({bound})', '', head, '|' + '---|' * 12]
    for n in b['nets']:
      label = 'searched' if n['role'] == 'searched' else f'uniform {n["mult"]:g}x'
      if n['net'] != b['name'] + ('' if n['role'] == 'searched' else '_uniform'):
        label += f' (= {n["net"]})'  # the same net as another budget's, trained once
      before, after = n['eval'].get('before') or {}, n['eval'].get('after') or {}
      lines.append(
          f'| {label} | {n["img_size"]} | {_widths(n["arch"])} | {_g(n["params"], 1e6, 2)} | '
          f'{_g(n["macs_true"], 1e9, 4)} | {_g(n["macs_paper"], 1e9, 4)} | '
          f'{_g(n["latency_ms_model"], digits=2)} / {_g(n["latency_ms_measured"], digits=2)} | '
          f'{_g(n["search_ap"], digits=4)} | {_g(before.get("AP"), digits=4)} | '
          f'{_g(after.get("AP"), digits=4)} | {_g(after.get("AP50"), digits=4)} | '
          f'{_g(after.get("AR"), digits=4)} |')
    if len(b['nets']) == 1:
      lines.append('\nNo uniform-width net costs as little as the searched one.')
    lines.append('')
  lines += ['## Search', '', f'![AP vs cost of every candidate]({r["search"]["picture"]})', '',
            f'Every candidate, the Pareto front, the chosen and the uniform-width nets; the '
            f'table: [{r["search"]["table"]}]({r["search"]["table"]}).', '',
            '## Wall time per stage', '', '| stage | wall time |', '|---|---|']
  for name in STAGES:
    lines.append(f'| {name} | {_duration(r["stages"][name])} |')
  lines.append(f'| total | {_duration(sum(r["stages"].values()))} |')
  return '\n'.join(lines) + '\n'


def _report(config: ml_collections.ConfigDict, config_name: str, workdir: str, results: dict,
            per_budget: list, descs: dict, evals: dict, times: _Times,
            supernet_cfg: dict, finetune_steps: int) -> dict:
  from litepose_jax.nas import supernet as supernet_lib  # pylint: disable=g-import-not-at-top
  from litepose_jax.search import run as run_lib  # pylint: disable=g-import-not-at-top
  done = _read_json(os.path.join(workdir, 'supernet', 'nas_done.json'))
  s = config.search
  budgets = []
  rows = {r['name']: r for r in results['budgets']}
  for b, nets in per_budget:
    budgets.append({
        'name': b.name, 'macs': b.macs, 'latency_ms': b.latency_ms,
        'convention': rows[b.name]['convention'],
        'nets': [dict(descs[n.name], role=n.role, mult=n.mult,
                      eval={p: (evals.get((n.name, p)) or {}).get('metrics') for p in PHASES},
                      folder=os.path.relpath(n.folder, workdir)) for n in nets]})
  ann, _, dataset = eval_paths(config)
  first_eval = next(iter(evals.values()), None)
  report = {
      'workdir': os.path.abspath(workdir), 'config_name': config_name,
      'generated': datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC'),
      'supernet': {'workdir': 'supernet', 'steps': done['step'],
                   'resolutions': list(supernet_cfg[supernet_lib.SUPERNET_FIELD]['resolutions'])},
      'search': {'dir': 'search', 'convention': s.convention, 'population_size': s.population_size,
                 'iterations': s.iterations, 'candidates': len(results['candidates']),
                 'num_calibration': s.num_calibration, 'num_search': s.num_search,
                 'picture': f'search/{run_lib.PICTURE}', 'table': f'search/{run_lib.TABLE}'},
      'finetune': {'steps': finetune_steps},
      'eval': {'dataset': dataset, 'split': config.eval.split, 'ann_file': ann,
               'images': first_eval['images'] if first_eval else 0, 'flip': bool(config.eval.flip)},
      'budgets': budgets,
      'stages': {name: round(times.stage(name), 1) for name in STAGES},
      'files': {'markdown': os.path.join(os.path.abspath(workdir), REPORT_MD),
                'json': os.path.join(os.path.abspath(workdir), REPORT_JSON)},
  }
  return report


# ---------------------------------------------------------------------------------------------
# The chain


def run_pipeline(config: ml_collections.ConfigDict, workdir: str, *,
                 config_name: str = '') -> dict:
  """Runs (or resumes) stages 1-6 in workdir; returns report.json's dict (module docstring)."""
  from litepose_jax import checkpoints  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  budgets = budgets_of(config.search)  # config errors before any training
  eval_paths(config)  # the evaluation split must exist before hours of training
  times = _Times(os.path.join(workdir, TIMES_FILE))
  if _is_main():
    _write_json(os.path.join(workdir, 'config.json'), _jsonable(config))

  supernet_dir = _supernet_stage(config, workdir, times)
  results = _search_stage(config, workdir, supernet_dir, budgets, times)
  supernet_ckpt = checkpoints.find_checkpoint(supernet_dir)
  with open(os.path.join(supernet_ckpt, checkpoints.MODEL_JSON)) as f:
    supernet_cfg = json.load(f)

  per_budget = _nets_of(config, workdir, results, budgets, supernet_cfg)
  unique: dict[str, Net] = {}  # each net once, in budget order
  for _, ns in per_budget:
    for n in ns:
      unique.setdefault(n.name, n)
  nets = list(unique.values())
  _banner(3, 'extract + BatchNorm recalibration', os.path.join(workdir, 'nets'))
  costs = _costs_fn(supernet_cfg)
  rows = {r['name']: r for r in results['budgets']}
  descs = {}
  if _is_main():
    from litepose_jax.search import latency as latency_lib  # pylint: disable=g-import-not-at-top
    # On the search's latency-model scale, as its finalists were (search/run.py).
    model = (latency_lib.LatencyModel.from_dict(results['latency_model'])
             if results.get('latency_model') else None)
    measure = functools.partial(latency_lib.measure_ms, num_joints=int(supernet_cfg['num_joints']),
                                threads=config.search.threads,
                                fusion=bool(supernet_cfg.get('fusion', True)), model=model)
    for b, ns in per_budget:
      for n in ns:
        if n.name in descs:
          continue
        with times(f'extract/{n.name}'):
          _extract(n, config, supernet_ckpt)
          descs[n.name] = _describe_net(
              n, rows[b.name] if n.role == 'searched' else None, costs, results,
              measure if b.latency_ms is not None else None)
  _barrier('extract')

  _banner(4, 'fine-tuning', os.path.join(workdir, 'nets', '*', 'finetune'))
  for n in nets:
    _finetune(n, config, times)

  _banner(5, 'evaluation', f'{config.eval.split} split')
  evals = {}
  if _is_main():
    for n in nets:
      for phase in PHASES:
        evals[(n.name, phase)] = _evaluate(n, phase, config, times)
  _barrier('evaluate')

  _banner(6, 'report', workdir)
  report = None
  if _is_main():
    with times('report'):
      steps = {_read_json(os.path.join(n.folder, 'finetune.json'))['step'] for n in nets}
      report = _report(config, config_name, workdir, results, per_budget, descs, evals, times,
                       supernet_cfg, max(steps))
      _write_json(os.path.join(workdir, REPORT_JSON), report)
      text = format_report(report)
      with open(os.path.join(workdir, REPORT_MD) + '.tmp', 'w') as f:
        f.write(text)
      os.replace(os.path.join(workdir, REPORT_MD) + '.tmp', os.path.join(workdir, REPORT_MD))
    print(text.split('## Search')[0], flush=True)
  _barrier('report')
  # The other processes read process 0's report (the shared filesystem of the module docstring).
  return report if report is not None else _read_json(os.path.join(workdir, REPORT_JSON))
