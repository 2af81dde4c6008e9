"""`litepose train --config configs/litepose_s.py[:arg] --workdir DIR [--config.KEY=VALUE ...]`."""
from __future__ import annotations

import argparse
import sys

from litepose_jax import config_files

# Moved to config_files (other commands take overrides too); kept here for existing callers.
OVERRIDE_PREFIX = config_files.OVERRIDE_PREFIX
accept_config_overrides = config_files.accept_config_overrides


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
