"""The `litepose` entry point: library start-up logs are hidden unless asked for."""
import os
import subprocess
import sys

import pytest

from litepose_jax import cli
from litepose_jax import host_memory

# One real TensorFlow start-up line of each kind that the import filter drops.
NOISE = (b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n'
         b'I0000 00:00:1796231645.092522    5693 port.cc:153] oneDNN custom operations are on. '
         b'You may see slightly different numerical results.\n'
         b'To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild.\n')


def test_quiet_environ_sets_defaults_and_keeps_user_values():
  assert cli.quiet_environ({}) == {'TF_CPP_MIN_LOG_LEVEL': '2', 'GRPC_VERBOSITY': 'ERROR'}
  assert cli.quiet_environ({'TF_CPP_MIN_LOG_LEVEL': '0'}) == {'GRPC_VERBOSITY': 'ERROR'}


def test_split_verbose_flag_anywhere_and_env_switch():
  assert cli.split_verbose(['export', '--out', 'a.tflite'], {}) == (
      False, ['export', '--out', 'a.tflite'])
  assert cli.split_verbose(['--verbose', 'data', 'show'], {}) == (True, ['data', 'show'])
  assert cli.split_verbose(['data', 'show', '--verbose'], {}) == (True, ['data', 'show'])
  assert cli.split_verbose(['train', '--', '--verbose'], {}) == (False, ['train', '--', '--verbose'])
  assert cli.split_verbose(['zoo'], {'LITEPOSE_VERBOSE': '1'}) == (True, ['zoo'])
  assert cli.split_verbose(['zoo'], {'LITEPOSE_VERBOSE': '0'}) == (False, ['zoo'])


def test_filter_import_noise_keeps_everything_else():
  kept = b'W0000 00:00:1.5  12 foo.cc:3] a real warning\nTraceback (most recent call last):\n'
  assert cli.filter_import_noise(NOISE + kept + NOISE) == kept


@pytest.mark.parametrize('argv, environ, quiet', [
    (['litepose'], {}, True),
    (['litepose', '--verbose'], {}, False),
    (['litepose'], {'LITEPOSE_VERBOSE': '1'}, False),
])
def test_entry_point_silences_unless_verbose(monkeypatch, argv, environ, quiet):
  calls = []
  monkeypatch.setattr(cli, 'silence_library_logs', lambda: calls.append('silenced'))
  monkeypatch.setattr(host_memory, 'reexec_with_hugepage_malloc',
                      lambda: calls.append('reexec'))
  monkeypatch.delenv('LITEPOSE_VERBOSE', raising=False)
  for k, v in environ.items():
    monkeypatch.setenv(k, v)
  monkeypatch.setattr(sys, 'argv', argv)
  assert cli.main() == 2  # no command: help
  # Silencing comes first so that the re-executed process inherits the variables.
  assert calls == (['silenced', 'reexec'] if quiet else ['reexec'])


def test_python_callers_environment_is_left_alone(monkeypatch):
  monkeypatch.setattr(cli, 'silence_library_logs', lambda: pytest.fail('silenced'))
  assert cli.main([]) == 2


def _import_tensorflow(quiet: bool) -> bytes:
  """stdout + stderr of a fresh process that imports TensorFlow (after silencing if `quiet`)."""
  code = 'import tensorflow'
  if quiet:
    code = ('from litepose_jax import cli; cli.silence_library_logs(); import os, tensorflow; '
            'print(os.environ["TF_CPP_MIN_LOG_LEVEL"])')
  env = {k: v for k, v in os.environ.items() if k not in cli.QUIET_ENV}
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, env=env, check=True,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return done.stdout + done.stderr


def test_tensorflow_import_is_quiet():
  """A real TensorFlow import: its start-up lines are gone, and the variables are set."""
  loud = _import_tensorflow(quiet=False)
  if not any(line and cli.filter_import_noise(line) == b'' for line in loud.splitlines(True)):
    pytest.skip('this TensorFlow prints nothing at import')
  assert _import_tensorflow(quiet=True) == b'2\n'
