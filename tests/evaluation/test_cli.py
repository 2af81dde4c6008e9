"""`litepose eval --config`: a training config names the ground truth of its eval split."""
import argparse

import pytest

from litepose_jax.evaluation import cli as eval_cli


def _args(**kw):
  base = dict(ann=None, images=None, dataset=None, config=None)
  base.update(kw)
  return argparse.Namespace(**base)


def test_training_config_resolves_eval_split(tmp_path, sample_data):
  cfg = tmp_path / 'cfg.py'
  cfg.write_text(
      'import ml_collections\n'
      'def get_config(arg=None):\n'
      '  c = ml_collections.ConfigDict()\n'
      f'  c.data = dict(dataset="crowdpose", data_dir={str(sample_data / "crowdpose_sample")!r}, '
      'split="trainval")\n'
      '  c.eval = dict(split=arg or "test")\n'
      '  return c\n')
  ann, images, dataset = eval_cli._data_args(_args(config=f'{cfg}:test'))
  assert ann == str(sample_data / 'crowdpose_sample' / 'annotations.json')
  assert images == str(sample_data / 'crowdpose_sample') and dataset == 'crowdpose'


def test_missing_sources_are_named(tmp_path):
  with pytest.raises(ValueError, match='missing --ann, --images'):
    eval_cli._data_args(_args(dataset='coco'))
  with pytest.raises(FileNotFoundError, match='config file not found'):
    eval_cli._data_args(_args(config=str(tmp_path / 'nope.py')))
