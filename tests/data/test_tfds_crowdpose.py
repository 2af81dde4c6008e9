"""The CrowdPose TFDS builder prepares from a manual directory (no network)."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from litepose_jax.data import tfds_crowdpose
from tests.data.helpers import copy_sample


def test_builds_from_manual_dir(tmp_path, sample_data):
  manual = tmp_path / 'manual'
  copy_sample(sample_data / 'crowdpose_sample', manual, layout='crowdpose')
  builder = tfds_crowdpose.CrowdPose(data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  assert set(builder.info.splits) == {'trainval'}
  examples = {int(e['image_id']): e for e in tfds.as_numpy(builder.as_dataset(split='trainval'))}
  assert sorted(examples) == [103319, 106848]
  e = examples[106848]
  assert e['image'].shape == (425, 640, 3) and e['crowd_index'] == pytest.approx(0.33)
  assert e['objects']['keypoints'].shape == (3, 14, 3)
  np.testing.assert_array_equal(e['objects']['keypoints'][0, 1], (208, 108, 2))


def test_missing_manual_json_is_explained(tmp_path):
  builder = tfds_crowdpose.CrowdPose(data_dir=str(tmp_path / 'tfds'))
  (tmp_path / 'manual' / 'images').mkdir(parents=True)
  (tmp_path / 'manual' / 'images' / 'x.jpg').write_bytes(b'')
  with pytest.raises(FileNotFoundError, match=r'json/ \(expected crowdpose_'):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / 'manual'))


def test_cli_missing_manual_dir(tmp_path, capsys):
  from litepose_jax import cli
  assert cli.main(['data', 'tfds', '--manual-dir', str(tmp_path / 'nope')]) == 2
  assert 'manual dir not found' in capsys.readouterr().err
