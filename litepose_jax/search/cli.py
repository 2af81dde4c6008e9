"""`litepose search`: the best sub-nets of a trained super-net, one per budget.

  litepose search --checkpoint SUPERNET_WORKDIR --macs 1.2,5,8 [--latency-ms 30]
                  [--convention true|paper] --out DIR [--config TRAIN_CONFIG]

Per budget, DIR/<budget>.json is the chosen sub-net in the official architecture schema (for
`litepose extract --arch`, `litepose train`, `models.create_model` and the official code);
DIR/table.md its AP, true / paper MACs, latency and parameters beside the uniform-width nets;
DIR/pareto.png every evaluated candidate, the Pareto front, the chosen and the uniform nets.
Several budgets share one evaluation cache (DIR/evaluations.jsonl): a rerun into the same DIR,
e.g. after a kill or with another budget, scores only what it has not scored yet. See
litepose_jax/search/run.py for the method.

Data: the calibration and search splits are carved from the training split of --config's data
section; without --config, the config that `litepose train` saved in the super-net's workdir
(config.json) is used.
"""
from __future__ import annotations

import argparse
import json
import os

import jax
import ml_collections

from litepose_jax import config_files
from litepose_jax.errors import UserError
from litepose_jax.search import parallel
from litepose_jax.search import run as run_lib


def _mults(text: str) -> tuple[float, ...]:
  """--uniform-mults: '0.25,0.5' -> (0.25, 0.5); '' -> () (no reference nets)."""
  if not text.strip():
    return ()
  try:
    return tuple(float(p) for p in text.split(','))
  except ValueError as e:
    raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--checkpoint', required=True,
                      help='super-net checkpoint dir or training workdir (its newest step)')
  parser.add_argument('--macs', default=None,
                      help='MACs budgets in G, comma-separated (e.g. 1.2,5,8): one search each')
  parser.add_argument('--latency-ms', default=None,
                      help='latency budgets in ms (LiteRT on this CPU, --threads threads, batch '
                           '1): one value for every budget, or as many as --macs (paired)')
  parser.add_argument('--convention', choices=run_lib.CONVENTIONS, default='true',
                      help='MACs of --macs: true (multiply-accumulates) or paper (the official '
                           'ptflops count: + BatchNorm and ReLU, deconvs x4)')
  parser.add_argument('--out', required=True, help='output directory (reused: resumes)')
  parser.add_argument('--config', default=None,
                      help='training config (path.py[:arg]) whose config.data names the training '
                           'split to carve the calibration / search splits from; default: the '
                           'config.json saved in the super-net\'s training workdir. Fields can be '
                           'overridden with --config.KEY=VALUE')
  parser.add_argument('--threads', type=int, default=2,
                      help='LiteRT threads of the latency measurements')
  parser.add_argument('--seed', type=int, default=0,
                      help='seed of the splits, the calibration and the evolutions')
  evo = parser.add_argument_group('evolution (official defaults)')
  evo.add_argument('--population', type=int, default=40, help='population size')
  evo.add_argument('--iterations', type=int, default=40, help='generations')
  evo.add_argument('--parents', type=int, default=10, help='parents kept per generation')
  evo.add_argument('--mutants', type=int, default=20, help='mutated children per generation')
  evo.add_argument('--crossovers', type=int, default=20, help='crossed children per generation')
  evo.add_argument('--mutate-prob', type=float, default=0.1, help='per-gene mutation probability')
  evo.add_argument('--prescreen', type=float, default=1.0, metavar='K',
                   help='K > 1: once as many nets as --population are measured, rank each '
                        'generation\'s new candidates with an accuracy predictor (an MLP on the '
                        'measured ones) and measure only the best 1/K (at least --parents); the '
                        'others keep the predicted AP (marked "predicted" in evaluations.jsonl) '
                        'and are never chosen. 1 (default): measure every candidate')
  fit = parser.add_argument_group('fitness')
  fit.add_argument('--calib-images', type=int, default=2000,
                   help='calibration split size (BatchNorm recalibration of every candidate)')
  fit.add_argument('--search-images', type=int, default=1000,
                   help='search split size (the AP of every candidate)')
  fit.add_argument('--calib-batch', type=int, default=16, help='calibration batch size')
  fit.add_argument('--fitness-widths', choices=run_lib.FITNESS_WIDTHS, default='auto',
                   help="run candidates at their own widths ('sliced': less work, more to "
                        "compile once per resolution) or through the full-width super-net "
                        "('masked'); 'auto': sliced on a CPU for long searches")
  parser.add_argument('--uniform-mults', type=_mults, default='0.25,0.5,0.75,1',
                      help='width multipliers of the uniform reference nets (at the lowest and '
                           'highest resolution); \'\' for none')
  parser.add_argument('--latency-cache', default=None,
                      help='directory of the latency model and its measurements (shared across '
                           'searches on one machine); default: OUT/latency')
  parser.add_argument('--no-progress', action='store_true', help='no progress bar')
  dist = parser.add_argument_group('multi-host (jax.distributed)')
  dist.add_argument('--coordinator-address', default='', help='host:port of process 0')
  dist.add_argument('--num-processes', type=int, default=1, help='processes in the search')
  dist.add_argument('--process-id', type=int, default=0, help='this process (0: writes files)')
  config_files.accept_config_overrides(parser)


def saved_config_path(checkpoint: str) -> str | None:
  """config.json of the training workdir that `checkpoint` is or lies in (WORKDIR,
  WORKDIR/checkpoints/STEP, WORKDIR/best), None when there is none."""
  path = os.path.abspath(checkpoint)
  candidates = [path]
  if os.path.basename(os.path.dirname(path)) == 'checkpoints':
    candidates.append(os.path.dirname(os.path.dirname(path)))
  if os.path.basename(path) == 'best':
    candidates.append(os.path.dirname(path))
  for c in candidates:
    if os.path.isfile(os.path.join(c, 'config.json')):
      return os.path.join(c, 'config.json')
  return None


def load_data_config(config: str | None, checkpoint: str,
                     overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """The data section of --config, else of the workdir's saved config.json, overrides applied."""
  if config:
    return config_files.load_config(config, overrides).data
  path = saved_config_path(checkpoint)
  if path is None:
    raise UserError(f'--config is required: {checkpoint} is not a training workdir with a saved '
                    'config.json, so nothing names the training split to search on')
  try:
    with open(path) as f:
      cfg = ml_collections.ConfigDict(json.load(f))
  except ValueError as e:
    raise UserError(f'{path}: not a saved training config ({e}); give --config') from e
  if 'data' not in cfg:
    raise UserError(f'{path} has no data section; give --config')
  config_files.apply_overrides(cfg, overrides)
  return cfg.data


def run(args: argparse.Namespace) -> int:
  budgets = run_lib.parse_budgets(args.macs, args.latency_ms)
  # Before anything touches JAX's backends (load_data_config does not).
  parallel.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
  data_cfg = load_data_config(args.config, args.checkpoint,
                              getattr(args, 'config_overrides', None) or ())
  results = run_lib.run_search(
      args.checkpoint, budgets, args.out, data_cfg=data_cfg, convention=args.convention,
      threads=args.threads, seed=args.seed, population_size=args.population,
      iterations=args.iterations, parents=args.parents, mutants=args.mutants,
      crossovers=args.crossovers, mutate_prob=args.mutate_prob,
      num_calibration=args.calib_images, num_search=args.search_images,
      calib_batch=args.calib_batch, uniform_mults=args.uniform_mults,
      latency_cache=args.latency_cache, prescreen=args.prescreen,
      fitness_widths=args.fitness_widths, progress=not args.no_progress)
  if jax.process_index() == 0:
    out = os.path.abspath(args.out)
    print(run_lib.format_table(results), end='')
    files = ', '.join(b['file'] for b in results['budgets'])
    print(f'wrote {out}: {files} (official architecture JSON), {run_lib.TABLE}, '
          f'{run_lib.PICTURE}, {run_lib.RESULTS}')
  return 0
