"""Readers on the real samples: CrowdPose, COCO, custom json, layouts, bad data."""
import os

import numpy as np
import pytest

from litepose_jax.data import datasets
from tests.data.helpers import copy_sample


def test_crowdpose_sample(sample_data):
  ds = datasets.open_dataset('crowdpose', str(sample_data / 'crowdpose_sample'))
  assert ds.joint_set.name == 'crowdpose' and len(ds) == 2
  assert [r.image_id for r in ds.records] == [103319, 106848]
  rec = ds.records[1]
  assert (rec.width, rec.height, rec.crowd_index) == (640, 425, 0.33)
  assert os.path.isfile(rec.file_path)
  # 5 annotations, one without keypoints: 4 people, none in 14 joints lost.
  assert [k.shape for k in ds.keypoints] == [(2, 14, 3), (2, 14, 3)]
  k = ds.keypoints[1][0]
  np.testing.assert_array_equal(k[1], (208, 108, 2))
  np.testing.assert_array_equal(k[12], (256, 27, 1))
  assert not ds.has_ignore_regions  # CrowdPose: no ignore regions
  assert ds.bad.count == 0


def test_coco_sample_and_ignore_regions(sample_data):
  ds = datasets.open_dataset('coco', str(sample_data / 'coco_sample'), 'val')
  assert ds.joint_set.name == 'coco' and len(ds) == 4
  assert sum(len(k) for k in ds.keypoints) == 12  # 14 annotations, 2 without keypoints
  assert all(k.shape[1:] == (17, 3) for k in ds.keypoints)
  with_ignore = [i for i in range(len(ds)) if ds.ignore[i]]
  assert len(with_ignore) == 2
  m = ds.ignore_mask(with_ignore[0])
  rec = ds.records[with_ignore[0]]
  assert m.shape == (rec.height, rec.width) and 0 < m.sum() < m.size
  assert ds.ignore_mask([i for i in range(4) if not ds.ignore[i]][0]) is None


def test_eval_records_keep_every_image(sample_data):
  ds = datasets.open_dataset('coco', str(sample_data / 'coco_sample'), is_train=False)
  assert len(ds.records) == 4 and ds.ann_file.endswith('annotations.json')
  assert ds.coco.getImgIds()


def test_official_layout(tmp_path, sample_data):
  copy_sample(sample_data / 'crowdpose_sample', tmp_path, layout='crowdpose')
  ds = datasets.open_dataset('crowdpose', str(tmp_path), 'trainval')
  assert ds.ann_file == str(tmp_path / 'json' / 'crowdpose_trainval.json')
  assert ds.image_dir == str(tmp_path / 'images') and len(ds) == 2
  with pytest.raises(FileNotFoundError, match=r'crowdpose_test\.json.*github.com/Jeff-sjtu'):
    datasets.open_dataset('crowdpose', str(tmp_path / 'nowhere'), 'test')
  with pytest.raises(FileNotFoundError, match=r'person_keypoints_val2017\.json.*cocodataset'):
    datasets.open_dataset('coco', str(tmp_path / 'nowhere'), 'val')


def test_custom_joint_set_from_category(tmp_path, sample_data):
  def edit(d):
    d['categories'][0]['skeleton'] = [[13, 14], [14, 1], [1, 3]]
  copy_sample(sample_data / 'crowdpose_sample', tmp_path, edit)
  ds = datasets.open_dataset('custom', str(tmp_path))
  js = ds.joint_set
  assert js.num_joints == 14 and js.names[12] == 'head'
  assert js.flip_index == (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
  assert js.skeleton == ((12, 13), (13, 0), (0, 2))
  ds = datasets.open_dataset('custom', str(tmp_path), flip_index=list(range(14)),
                             skeleton=[[0, 1]])
  assert ds.joint_set.flip_index == tuple(range(14)) and ds.joint_set.skeleton == ((0, 1),)


def test_bad_data_skipped_counted_or_strict(tmp_path, sample_data):
  def edit(d):
    d['annotations'][0]['keypoints'] = d['annotations'][0]['keypoints'][:-3]  # image 106848
    d['images'][1]['file_name'] = 'missing.jpg'  # image 103319
  copy_sample(sample_data / 'crowdpose_sample', tmp_path / 'cp', edit)
  bad = datasets.BadDataLog()
  with pytest.raises(ValueError, match='no usable images'):
    datasets.open_dataset('crowdpose', str(tmp_path / 'cp'), bad=bad)
  assert bad.counts() == {'malformed keypoints': 1, 'missing image file': 1}
  files = {(r, os.path.basename(f), i) for r, f, i, _ in bad.items}
  assert ('malformed keypoints', '106848.jpg', 106848) in files
  assert ('missing image file', 'missing.jpg', 103319) in files
  assert 'skipped 2 image(s)' in bad.summary()
  with pytest.raises(ValueError, match=r'missing\.jpg \(image id 103319\).*strict'):
    datasets.open_dataset('crowdpose', str(tmp_path / 'cp'), strict=True)
  (tmp_path / 'cp' / 'missing.jpg').write_bytes(b'')  # now only the keypoints are bad
  with pytest.raises(ValueError, match=r'106848\.jpg \(image id 106848\).*39 keypoint values'):
    datasets.open_dataset('crowdpose', str(tmp_path / 'cp'), strict=True)
