"""Shared fixtures: the real sample data beside the repo (../shared/data or $LITEPOSE_SAMPLE_DATA)."""
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def sample_data_root() -> pathlib.Path:
  """../shared/data (or $LITEPOSE_SAMPLE_DATA); CI provides it, so its absence is an error."""
  env = os.environ.get('LITEPOSE_SAMPLE_DATA')
  root = pathlib.Path(env) if env else REPO_ROOT.parent / 'shared' / 'data'
  if not (root / 'crowdpose_sample' / 'annotations.json').is_file():
    raise FileNotFoundError(f'sample data not found at {root}: put ../shared beside the repo or set '
                            'LITEPOSE_SAMPLE_DATA')
  return root


def reference_root() -> pathlib.Path:
  """../shared/reference (architecture JSONs, state-dict listing)."""
  return sample_data_root().parent / 'reference'


@pytest.fixture(scope='session')
def sample_data() -> pathlib.Path:
  return sample_data_root()


@pytest.fixture(scope='session')
def reference_dir() -> pathlib.Path:
  return reference_root()
