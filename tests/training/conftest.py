"""Shared training-test helpers: a tiny LitePose and a fast fake-data config."""
import json
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# One block per stage, narrow channels: same code paths as the presets, a fraction of the compile.
TINY_ARCH = {
    'img_size': 64, 'input_channel': 8, 'deconv_setting': [8, 8, 8],
    'backbone_setting': [
        {'num_blocks': 1, 'stride': 2, 'channel': 8, 'block_setting': [[2, 3]]},
        {'num_blocks': 1, 'stride': 2, 'channel': 8, 'block_setting': [[2, 3]]},
        {'num_blocks': 1, 'stride': 2, 'channel': 16, 'block_setting': [[2, 3]]},
        {'num_blocks': 1, 'stride': 1, 'channel': 16, 'block_setting': [[2, 3]]}]}


@pytest.fixture(scope='session')
def tiny_arch_path(tmp_path_factory) -> str:
  path = tmp_path_factory.mktemp('arch') / 'tiny.json'
  path.write_text(json.dumps(TINY_ARCH))
  return str(path)


@pytest.fixture
def tiny_overrides(tiny_arch_path) -> list[str]:
  """--config.* overrides that make configs/litepose_xs.py:fake,runlocal tiny and quiet."""
  return [f'model.arch={tiny_arch_path}', 'data.batch_size=4', 'progress=False']


@pytest.fixture
def tiny_config(tiny_overrides):
  from litepose_jax import config_files
  return config_files.load_config(str(REPO_ROOT / 'configs' / 'litepose_xs.py') + ':fake,runlocal',
                                  tiny_overrides)
