"""The `litepose` command line: one entry point, one module per command.

Each command lives next to the stage it drives and exposes
  add_arguments(parser: argparse.ArgumentParser) -> None
  run(args: argparse.Namespace) -> int | None
Modules are imported only when their command runs, so `litepose --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import litepose_jax
from litepose_jax import host_memory
from litepose_jax.errors import UserError

# command -> (module, one-line help). Order is the order shown in --help.
COMMANDS = {
    'zoo': ('litepose_jax.models.zoo', 'print the model zoo and run one forward pass of each'),
    'macs': ('litepose_jax.models.counting', 'count parameters and MACs of a LitePose model'),
    'import-torch': ('litepose_jax.convert', 'convert an official PyTorch .pth into a checkpoint'),
    'data': ('litepose_jax.data.cli', 'synthesise data sets and inspect the training pipeline'),
    'predict': ('litepose_jax.inference.predict_cli', 'draw poses on images, folders, videos, webcams'),
    'eval': ('litepose_jax.evaluation.cli', 'evaluate a checkpoint with the CrowdPose / COCO protocol'),
    'export': ('litepose_jax.export.cli', 'export a model to TFLite (fp32 / fp16 / dynamic / int8)'),
    'bench': ('litepose_jax.export.bench', 'measure TFLite network and end-to-end latency'),
    'train': ('litepose_jax.training.cli', 'train a LitePose model from a config (resumes in its workdir)'),
    'sweep': ('litepose_jax.training.sweep', 'expand a sweep into training runs (run them or print them)'),
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
  pass


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
  """The parser; only `command`'s module is imported (to add its arguments)."""
  parser = argparse.ArgumentParser(
      prog='litepose', formatter_class=_Formatter,
      description='LitePose multi-person pose estimation in JAX: train, evaluate, export, predict.')
  parser.add_argument('--version', action='version', version=f'litepose-jax {litepose_jax.__version__}')
  sub = parser.add_subparsers(dest='command', metavar='COMMAND')
  for name, (module_name, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
    p.set_defaults(_module=module_name)
    p.set_defaults(_parser=p)
    if name == command:
      _module(module_name).add_arguments(p)
  return parser


def _module(name: str):
  return importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
  if argv is None:  # the process entry point, not a call from Python
    host_memory.reexec_with_hugepage_malloc()
    argv = sys.argv[1:]
  command = next((a for a in argv if not a.startswith('-')), None)
  parser = build_parser(command if command in COMMANDS else None)
  args = parser.parse_args(argv)
  if not getattr(args, '_module', None):
    parser.print_help()
    return 2
  try:
    rc = _module(args._module).run(args)
  except (UserError, FileNotFoundError, FileExistsError) as e:
    # A user's mistake: one line naming the culprit. Anything else is a bug and keeps its
    # traceback; LITEPOSE_DEBUG=1 shows the traceback of user errors too.
    if os.environ.get('LITEPOSE_DEBUG', '') not in ('', '0'):
      raise
    print(f'litepose {args.command}: error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f'litepose {args.command}: interrupted', file=sys.stderr)
    return 130
  return int(rc or 0)


if __name__ == '__main__':
  sys.exit(main())
