"""TFLiteModel: JAX call convention, sidecar joint set, clear errors."""
import json
import shutil

import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax.export import runtime
from litepose_jax.inference import sidecar

SIZE = 64


def test_model_interface(xs_fp32):
  model = runtime.TFLiteModel(xs_fp32, num_threads=1)
  assert model.input_shape == (1, SIZE, SIZE, 3) and model.input_size == (SIZE, SIZE)
  assert model.num_threads == 1
  assert model.joint_set == joints.CROWDPOSE
  x = np.random.default_rng(0).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
  raw = model.raw(x)
  out4, out2 = model(x)
  np.testing.assert_array_equal(out4[..., :14], raw['heatmaps4'])
  np.testing.assert_array_equal(out4[..., 14:], raw['tags4'])
  np.testing.assert_array_equal(out2, raw['heatmaps2'])
  with pytest.raises(ValueError, match=r'multiples of 64, got \(1, 32, 32, 3\)'):
    model(np.zeros((1, 32, 32, 3), np.float32))


def test_custom_joint_set_from_sidecar(xs_fp32):
  meta = sidecar.read(xs_fp32)
  meta['joint_set']['name'] = 'mine'
  js = sidecar.joint_set_from(meta)
  assert js.name == 'mine' and js.names == joints.CROWDPOSE.names
  assert js.flip_index == joints.CROWDPOSE.flip_index


def test_missing_or_broken_sidecar(xs_fp32, tmp_path):
  lone = tmp_path / 'lone.tflite'
  shutil.copy(xs_fp32, lone)
  with pytest.raises(FileNotFoundError, match='sidecar'):
    runtime.TFLiteModel(lone)
  with open(sidecar.sidecar_path(lone), 'w') as f:
    json.dump({'format': 'litepose-tflite'}, f)
  with pytest.raises(ValueError, match='lacks the field'):
    runtime.TFLiteModel(lone)
  with pytest.raises(FileNotFoundError, match='not found'):
    runtime.TFLiteModel(tmp_path / 'absent.tflite')


def test_not_a_tflite_file(xs_fp32, tmp_path):
  bad = tmp_path / 'bad.tflite'
  bad.write_bytes(b'this is not a flatbuffer')
  shutil.copy(sidecar.sidecar_path(xs_fp32), sidecar.sidecar_path(bad))
  with pytest.raises(ValueError, match='bad.tflite'):
    runtime.TFLiteModel(bad)
