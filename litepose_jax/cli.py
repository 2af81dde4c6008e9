"""The `litepose` command line: one entry point, one module per command.

Each command lives next to the stage it drives and exposes
  add_arguments(parser: argparse.ArgumentParser) -> None
  run(args: argparse.Namespace) -> int | None
Modules are imported only when their command runs, so `litepose --help` stays instant.

Library start-up logs (TensorFlow's oneDNN and CPU-feature notices, absl's "log messages before
absl::InitializeLog()" preamble, C++ INFO / WARNING lines) are hidden unless `--verbose` or
LITEPOSE_VERBOSE=1 is given; errors always show.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import os
import re
import sys
import tempfile
import warnings

import litepose_jax
from litepose_jax import host_memory
from litepose_jax.errors import UserError

# command -> (module, one-line help). Order is the order shown in --help.
COMMANDS = {
    'zoo': ('litepose_jax.models.zoo', 'print the model zoo and run one forward pass of each'),
    'macs': ('litepose_jax.models.counting', 'count parameters and MACs of a LitePose model'),
    'import-torch': ('litepose_jax.torch_import', 'convert an official PyTorch .pth into a checkpoint'),
    'extract': ('litepose_jax.nas.cli', 'cut a standalone sub-net out of a super-net checkpoint'),
    'data': ('litepose_jax.data.cli', 'synthesise data sets and inspect the training pipeline'),
    'predict': ('litepose_jax.inference.predict_cli', 'draw poses on images, folders, videos, webcams'),
    'eval': ('litepose_jax.evaluation.cli', 'evaluate a checkpoint with the CrowdPose / COCO protocol'),
    'export': ('litepose_jax.export.cli', 'export a model to TFLite (fp32 / fp16 / dynamic / int8)'),
    'bench': ('litepose_jax.export.bench', 'measure TFLite network and end-to-end latency'),
    'train': ('litepose_jax.training.cli', 'train a LitePose model from a config (resumes in its workdir)'),
    'sweep': ('litepose_jax.training.sweep', 'expand a sweep into training runs (run them or print them)'),
    'search': ('litepose_jax.search.cli', 'search a trained super-net for the best sub-nets per budget'),
    'nas': ('litepose_jax.search.pipeline', 'super-net -> search -> extract -> fine-tune -> report'),
}


# Set (unless the user set them) before TensorFlow, XLA or gRPC load; the variables travel
# through host_memory's re-exec and into child processes. Level 2 hides the C++ INFO and WARNING
# lines of TensorFlow, XLA and the TFLite converter ("Ignored output_format." ...); errors stay.
QUIET_ENV = {'TF_CPP_MIN_LOG_LEVEL': '2', 'GRPC_VERBOSITY': 'ERROR'}
VERBOSE_ENV = 'LITEPOSE_VERBOSE'
# TensorFlow's runtime logs through absl before it reads TF_CPP_MIN_LOG_LEVEL, so while it is
# imported these reach stderr anyway (twice: two copies of the runtime load): the absl preamble,
# INFO lines ("oneDNN custom operations are on ...") and the CPU-feature notice's second line.
_IMPORT_NOISE = re.compile(rb'WARNING: All log messages before absl::InitializeLog\(\)'
                           rb'|I\d{4} [\d:.]+ +\d+ \S+:\d+\] '
                           rb'|To enable the following instructions: ')
_NOISY_PACKAGES = ('tensorflow',)


def split_verbose(argv: list[str], environ=None) -> tuple[bool, list[str]]:
  """(verbose, argv without `--verbose`): the flag counts anywhere before a `--` (commands and
  their sub-commands need not declare it), and LITEPOSE_VERBOSE=1 means the same."""
  environ = os.environ if environ is None else environ
  end = argv.index('--') if '--' in argv else len(argv)
  rest = [a for a in argv[:end] if a != '--verbose'] + argv[end:]
  return len(rest) < len(argv) or environ.get(VERBOSE_ENV, '') not in ('', '0'), rest


def quiet_environ(environ=None) -> dict[str, str]:
  """The QUIET_ENV variables that `environ` does not set yet (a user's own value wins)."""
  environ = os.environ if environ is None else environ
  return {k: v for k, v in QUIET_ENV.items() if k not in environ}


def filter_import_noise(text: bytes) -> bytes:
  """`text` without the start-up lines that TensorFlow writes while it is imported."""
  return b''.join(line for line in text.splitlines(keepends=True)
                  if not _IMPORT_NOISE.match(line))


class _QuietImport(importlib.abc.MetaPathFinder):
  """Runs the first import of a noisy package with fd 2 captured, then replays it filtered.

  The C++ runtime writes to file descriptor 2 directly, so redirecting sys.stderr cannot hide it.
  """

  def find_spec(self, fullname, path, target=None):
    if fullname not in _NOISY_PACKAGES:
      return None
    finders = sys.meta_path[sys.meta_path.index(self) + 1:] if self in sys.meta_path else []
    for finder in finders:
      spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
      if spec is not None:
        if hasattr(spec.loader, 'exec_module'):
          spec.loader = _FilteringLoader(spec.loader)
        return spec
    return None


class _FilteringLoader(importlib.abc.Loader):
  """Wraps a package's loader for its first execution only."""

  def __init__(self, inner):
    self._inner = inner

  def create_module(self, spec):
    return self._inner.create_module(spec)

  def exec_module(self, module):
    module.__spec__.loader = module.__loader__ = self._inner  # later users see the real loader
    with _filtered_stderr():
      self._inner.exec_module(module)


@contextlib.contextmanager
def _filtered_stderr():
  """fd 2 goes to a temporary file meanwhile, written back without the import noise."""
  try:
    capture = tempfile.TemporaryFile()
  except OSError:  # no temporary directory: leave stderr alone
    capture = None
  try:
    saved = os.dup(2) if capture else None
  except OSError:  # no stderr at all
    saved = None
  if saved is None:
    if capture is not None:
      capture.close()
    yield
    return
  _flush_stderr()
  os.dup2(capture.fileno(), 2)
  try:
    yield
  finally:
    _flush_stderr()
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    kept = filter_import_noise(capture.read())
    capture.close()
    if kept:
      os.write(2, kept)


def _flush_stderr() -> None:
  if sys.stderr is not None:
    sys.stderr.flush()


def silence_library_logs() -> None:
  """Hides library start-up logs in this process and its children (see the module docstring)."""
  os.environ.update(quiet_environ())
  for category in (DeprecationWarning, FutureWarning):
    warnings.filterwarnings('ignore', category=category, module=r'(tensorflow|tf_keras|absl)\b')
  if 'tensorflow' not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietImport())


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
  pass


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
  """The parser; only `command`'s module is imported (to add its arguments)."""
  parser = argparse.ArgumentParser(
      prog='litepose', formatter_class=_Formatter,
      description='LitePose multi-person pose estimation in JAX: train, evaluate, export, predict.')
  parser.add_argument('--version', action='version', version=f'litepose-jax {litepose_jax.__version__}')
  parser.add_argument('--verbose', action='store_true',  # taken out of argv by main()
                      help='show the start-up logs of TensorFlow / XLA / absl, anywhere on the line '
                      f'(or {VERBOSE_ENV}=1)')
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
  """Runs `litepose ARGV`; returns the exit status."""
  entry = argv is None  # the process entry point, not a call from Python
  verbose, argv = split_verbose(sys.argv[1:] if entry else argv)
  if entry:  # a Python caller's process is left as it is
    if not verbose:
      silence_library_logs()  # before the re-exec, so that the new process inherits the variables
    host_memory.reexec_with_hugepage_malloc()
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
