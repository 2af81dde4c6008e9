"""TFDS builder for CrowdPose, prepared from a manually downloaded copy (no network).

Command line (MANUAL_DIR holds json/crowdpose_{train,val,trainval,test}.json and images/):
  litepose data tfds --manual-dir MANUAL_DIR [--data-dir ~/tensorflow_datasets]
or, where apache-beam is installed (the `tfds` CLI of tensorflow-datasets 4.9.10 imports it):
  tfds build litepose_jax/data/tfds_crowdpose.py --manual_dir MANUAL_DIR --data_dir DIR
Python:
  from litepose_jax.data import tfds_crowdpose
  b = tfds_crowdpose.CrowdPose(data_dir=DIR)
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR))
  ds = b.as_dataset(split='trainval')
Only the splits whose json is present are prepared. Each example holds the JPEG bytes as stored
(no re-encoding), the image id, file name, crowd index and the people (keypoints [14, 3], bbox,
num_keypoints, iscrowd), in the CrowdPose json's order.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow_datasets as tfds

SPLITS = ('train', 'val', 'trainval', 'test')
NUM_JOINTS = 14


class CrowdPose(tfds.core.GeneratorBasedBuilder):
  """CrowdPose keypoints (14 joints, crowd index per image) from a manual download."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Download the CrowdPose annotations (crowdpose_{train,val,trainval,test}.json) and images '
      'from https://github.com/Jeff-sjtu/CrowdPose and arrange them as MANUAL_DIR/json/*.json and '
      'MANUAL_DIR/images/*.jpg; pass --manual_dir MANUAL_DIR.')

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
            'image_id': np.int64,
            'file_name': tfds.features.Text(),
            'crowd_index': np.float32,
            'objects': tfds.features.Sequence({
                'id': np.int64,
                'keypoints': tfds.features.Tensor(shape=(NUM_JOINTS, 3), dtype=np.float32),
                'bbox': tfds.features.Tensor(shape=(4,), dtype=np.float32),  # x, y, w, h (pixels)
                'num_keypoints': np.int32,
                'iscrowd': np.int32,
            }),
        }),
        supervised_keys=None,
        homepage='https://github.com/Jeff-sjtu/CrowdPose',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.fspath(dl_manager.manual_dir)
    found = {s: os.path.join(root, 'json', f'crowdpose_{s}.json') for s in SPLITS}
    found = {s: p for s, p in found.items() if os.path.isfile(p)}
    if not found:
      raise FileNotFoundError(f'no CrowdPose json under {root}/json/ (expected crowdpose_'
                              f'{{{",".join(SPLITS)}}}.json). ' + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    return {s: self._generate_examples(p, os.path.join(root, 'images')) for s, p in found.items()}

  def _generate_examples(self, ann_file: str, image_dir: str):
    with open(ann_file) as f:
      data = json.load(f)
    people: dict[int, list[dict]] = {}
    for a in data['annotations']:
      people.setdefault(a['image_id'], []).append(a)
    for info in data['images']:
      path = os.path.join(image_dir, info['file_name'])
      if not os.path.isfile(path):
        raise FileNotFoundError(f'image {path} (image id {info["id"]}) listed in {ann_file} is '
                                'missing')
      anns = people.get(info['id'], [])
      yield info['id'], {
          'image': path,
          'image_id': info['id'],
          'file_name': info['file_name'],
          'crowd_index': float(info.get('crowdIndex', 0.0)),
          'objects': {
              'id': [a['id'] for a in anns],
              'keypoints': np.asarray([a['keypoints'] for a in anns],
                                      np.float32).reshape(-1, NUM_JOINTS, 3),
              'bbox': np.asarray([a['bbox'] for a in anns], np.float32).reshape(-1, 4),
              'num_keypoints': [int(a.get('num_keypoints', 0)) for a in anns],
              'iscrowd': [int(a.get('iscrowd', 0)) for a in anns],
          },
      }

