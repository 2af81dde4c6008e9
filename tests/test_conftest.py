"""tests/conftest.py: every file, fixture and test that the `slow` marker names exists."""
import pathlib
import re

from tests import conftest

TESTS = pathlib.Path(__file__).resolve().parent


def test_slow_lists_name_existing_tests():
  paths = list(TESTS.rglob('*.py'))
  assert conftest.SLOW_FILES <= {p.name for p in paths}
  source = '\n'.join(p.read_text() for p in paths)
  for name in conftest.SLOW_FIXTURES | conftest.SLOW_TESTS:
    assert re.search(rf'^\s*def {name}\(', source, re.M), name
