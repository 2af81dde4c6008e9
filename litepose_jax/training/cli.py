"""`litepose train --config configs/litepose_s.py[:arg] --workdir DIR [--config.KEY=VALUE ...]`."""
from __future__ import annotations

import argparse
import sys

from litepose_jax import config_files
from litepose_jax.errors import UserError

OVERRIDE_PREFIX = '--config.'


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds --config, --workdir, --max_steps and --config.KEY=VALUE overrides."""
  parser.add_argument('--config', required=True,
                      help="config file and optional argument, e.g. 'configs/litepose_s.py:"
                      "dataset=coco'; override fields with --config.KEY=VALUE (e.g. "
                      '--config.optim.lr=1e-3 --config.data.data_dir=/data/crowdpose)')
  parser.add_argument('--workdir', required=True,
                      help='run directory: checkpoints, metrics.jsonl, TensorBoard, config.json; '
                      'a rerun resumes from its latest checkpoint')
  parser.add_argument('--max_steps', type=int, default=None,
                      help='stop after this many steps of this invocation (the schedule still '
                      'spans the whole run)')
  accept_config_overrides(parser)


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


def run(args: argparse.Namespace) -> int:
  """Trains (or resumes) the run in --workdir; exit 3 on a non-finite loss."""
  config = config_files.load_config(args.config, getattr(args, 'config_overrides', []))
  # Imported here: the trainer pulls in JAX, Flax and optax, which `litepose train --help` skips.
  from litepose_jax.training import trainer  # pylint: disable=g-import-not-at-top
  trainer.initialize_distributed(config)
  try:
    result = trainer.train_and_evaluate(config, args.workdir, max_steps=args.max_steps)
  except trainer.NonFiniteLossError as e:
    print(f'litepose train: error: {e}', file=sys.stderr)
    return 3
  if result['eval']:
    print('litepose train: eval ' + ', '.join(
        f'{k}={v:.4f}' for k, v in result['eval'].items() if isinstance(v, float)))
  return 0
