"""The sidecar json: what export writes is what the runtime reads; broken files are user errors."""
import json

import pytest

from litepose_jax import joints
from litepose_jax.errors import UserError
from litepose_jax.inference import sidecar


def _meta(joint_set=joints.CROWDPOSE):
  return sidecar.build(size=64, joint_set=joint_set, model_cfg={'name': 'XS'}, quantization='none',
                       source='test', random_init=True)


def test_written_sidecar_reads_back(tmp_path):
  model = tmp_path / 'm.tflite'
  path = sidecar.write(model, _meta())
  assert path == str(model) + '.json'
  meta = sidecar.read(model)
  assert meta['input']['shape'] == [1, 64, 64, 3]
  shapes = [o['shape'] for o in meta['outputs']]
  assert shapes == [[1, 16, 16, 14], [1, 16, 16, 14], [1, 32, 32, 14]]
  assert meta['joint_set']['group_order'] == list(joints.CROWDPOSE.group_order)
  assert sidecar.joint_set_from(meta) is joints.CROWDPOSE
  custom = joints.custom_joint_set(['a', 'left_b', 'right_b'], [0, 2, 1], name='mine')
  assert sidecar.joint_set_from(_meta(custom)) == custom


def test_broken_sidecars_are_user_errors(tmp_path):
  model = tmp_path / 'm.tflite'
  with pytest.raises(FileNotFoundError, match='needs its sidecar json'):
    sidecar.read(model)
  (tmp_path / 'm.tflite.json').write_text('{')
  with pytest.raises(UserError, match='not valid JSON'):
    sidecar.read(model)
  (tmp_path / 'm.tflite.json').write_text(json.dumps({'format': 'litepose-tflite'}))
  with pytest.raises(UserError, match='lacks the field'):
    sidecar.read(model)
  meta = _meta()
  meta['format'] = 'other'
  sidecar.write(model, meta)
  with pytest.raises(UserError, match="format is 'other'"):
    sidecar.read(model)


def test_resizable_input_follows_the_exported_size():
  assert sidecar.resizable(_meta())
  meta80 = sidecar.build(size=80, joint_set=joints.CROWDPOSE, model_cfg={}, quantization='none',
                         source='test', random_init=True)
  assert not sidecar.resizable(meta80) and '80' in meta80['input']['resizable']['why']
  # A sidecar from before the field: its exported size decides.
  for size, want in ((64, True), (80, False)):
    meta = _meta()
    del meta['input']['resizable']
    meta['input']['shape'] = [1, size, size, 3]
    assert sidecar.resizable(meta) is want
