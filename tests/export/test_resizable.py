"""A .tflite exported at one square size runs at the official (non-square) test size: resized
interpreter = JAX model at that size, and the Predictor uses it by default."""
import json
import shutil

import jax
import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax.errors import UserError
from litepose_jax.inference import Predictor
from litepose_jax.inference import litert
from litepose_jax.inference import sidecar
from litepose_jax.inference.predictor import JaxBackend

# Max abs difference allowed between fp32 TFLite and JAX outputs (the export tests' fp32 bound).
TOL = 1e-4


@pytest.mark.parametrize('height,width', [(128, 64), (64, 128), (128, 192), (64, 64)])
def test_resized_interpreter_equals_jax_at_that_size(xs_model, xs_fp32, height, width):
  module, variables = xs_model
  model = litert.TFLiteModel(xs_fp32, num_threads=1)
  assert model.resizable and model.input_shape == (1, 64, 64, 3)
  x = np.random.default_rng(height + width).normal(size=(1, height, width, 3)).astype(np.float32)
  out4, out2 = (np.asarray(o) for o in jax.jit(
      lambda v, x: module.apply(v, x, train=False))(variables, x))
  got4, got2 = model(x)
  assert got4.shape == out4.shape == (1, height // 4, width // 4, 28)
  assert got2.shape == out2.shape == (1, height // 2, width // 2, 14)
  np.testing.assert_allclose(got4, out4, atol=TOL)
  np.testing.assert_allclose(got2, out2, atol=TOL)


def test_resizing_only_to_multiples_of_64(xs_fp32):
  model = litert.TFLiteModel(xs_fp32, num_threads=1)
  assert model.accepts(64, 64) and model.accepts(192, 128) and not model.accepts(96, 64)
  with pytest.raises(UserError, match='multiples of 64'):
    model(np.zeros((1, 96, 64, 3), np.float32))


def test_predictor_on_a_tflite_follows_the_official_protocol(xs_model, xs_fp32):
  module, variables = xs_model
  image = np.random.default_rng(7).integers(0, 255, (48, 64, 3), dtype=np.uint8)
  # Official size of a 48x64 image at 64: 64x128 (short side 64, long side a multiple of 64).
  kw = dict(detection_threshold=0.02, max_people=5)
  jax_pred = Predictor(JaxBackend(module, variables, joints.CROWDPOSE, 64), **kw)(image)
  predictor = Predictor.from_path(str(xs_fp32), **kw)
  assert predictor.backend.input_shape is None and predictor.protocol.startswith('official')
  tfl_pred = predictor(image)
  assert len(jax_pred.poses) > 0
  assert tfl_pred.poses.shape == jax_pred.poses.shape
  np.testing.assert_allclose(tfl_pred.scores, jax_pred.scores, atol=1e-3)
  np.testing.assert_allclose(tfl_pred.poses, jax_pred.poses, atol=1e-2)
  fixed = Predictor.from_path(str(xs_fp32), fixed_input=True, **kw)
  assert fixed.backend.input_shape == (64, 64) and fixed.protocol.startswith('fixed input')


def test_a_sidecar_can_declare_the_input_fixed(xs_fp32, tmp_path):
  meta = sidecar.read(xs_fp32)
  assert meta['input']['resizable']['value'] and meta['input']['resizable']['multiple'] == 64
  copy = tmp_path / 'fixed.tflite'
  shutil.copy(xs_fp32, copy)
  meta['input']['resizable'] = {'value': False}
  with open(sidecar.sidecar_path(copy), 'w') as f:
    json.dump(meta, f)
  model = litert.TFLiteModel(copy, num_threads=1)
  assert not model.resizable
  assert Predictor.from_path(str(copy)).backend.input_shape == (64, 64)
  with pytest.raises(UserError, match=r'\(1, 64, 64, 3\) only'):
    model(np.zeros((1, 128, 64, 3), np.float32))


def test_predict_cli_names_the_tflite_input_protocol(xs_fp32, sample_data, tmp_path, capsys):
  from litepose_jax import cli
  source = str(sample_data / 'crowdpose_sample')
  results = {}
  for flags, words in (([], 'official: short side to 64'),
                       (['--fixed-input'], 'fitted into 64x64')):
    out = tmp_path / ('fixed' if flags else 'official')
    assert cli.main(['predict', '--tflite', str(xs_fp32), '--source', source, '--out', str(out)]
                    + flags) == 0
    assert words in capsys.readouterr().out
    results[bool(flags)] = json.loads((out / 'results.json').read_text())
  assert all(isinstance(r, list) for r in results.values())
