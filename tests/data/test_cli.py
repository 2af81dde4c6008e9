"""`litepose data show|synth` end to end."""
import json

import cv2
import pytest

from litepose_jax import cli


def test_show_writes_grid_from_flags(tmp_path, sample_data, capsys):
  out = tmp_path / 'grid.png'
  rc = cli.main(['data', 'show', '--data-dir', str(sample_data / 'coco_sample'), '--dataset',
                 'coco', '--input-size', '64', '--num', '3', '--cols', '2', '--out', str(out)])
  assert rc == 0
  img = cv2.imread(str(out))
  assert img.shape == (128, 128, 3) and img.std() > 10
  assert 'bad data: none' in capsys.readouterr().out


def test_show_reads_python_config(tmp_path, sample_data):
  conf = tmp_path / 'conf.py'
  conf.write_text(
      'import ml_collections\n'
      'def get_config(arg=None):\n'
      '  c = ml_collections.ConfigDict()\n'
      '  c.data = ml_collections.ConfigDict()\n'
      f'  c.data.data_dir = {str(sample_data / "crowdpose_sample")!r}\n'
      '  c.data.input_size = int(arg)\n'
      '  return c\n')
  out = tmp_path / 'g.png'
  assert cli.main(['data', 'show', '--config', f'{conf}:96', '--num', '2', '--out', str(out)]) == 0
  assert cv2.imread(str(out)).shape == (96, 192, 3)


def test_show_missing_data_is_one_line_error(tmp_path, capsys):
  rc = cli.main(['data', 'show', '--data-dir', str(tmp_path), '--out', str(tmp_path / 'x.png')])
  assert rc == 2
  err = capsys.readouterr().err
  assert 'crowdpose_trainval.json' in err and 'Jeff-sjtu' in err


def test_synth_subcommand_is_wired(tmp_path):
  assert cli.main(['data', 'synth', '--out', str(tmp_path), '--num-images', '4', '--size', '96',
                   '--quiet']) == 0
  with open(tmp_path / 'json' / 'crowdpose_train.json') as f:
    assert json.load(f)['annotations']


def test_requires_subcommand():
  with pytest.raises(SystemExit):
    cli.main(['data'])
