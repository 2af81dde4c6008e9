"""A HigherHRNet through `litepose export`, the LiteRT backend, the decoder and `litepose bench`
unchanged: a tiny net (4 branches, 0-block branches, deconv with a BasicBlock), 64 px, 3 joints;
and a tiny EfficientHRNet's export, whose extra ops only that family may use."""
from __future__ import annotations

import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax import models
from litepose_jax.export import bench
from litepose_jax.export import cli
from litepose_jax.export import fold
from litepose_jax.export import tflite_ops
from litepose_jax.inference import litert
from litepose_jax.inference import predictor
from litepose_jax.inference import sidecar
from tests.training.test_hrnet_train import TINY_HRNET

SIZE = 64
JOINTS = joints.custom_joint_set(['head', 'left', 'right'], [0, 2, 1], [(0, 1), (0, 2)])


@pytest.fixture(scope='module')
def hrnet_export(tmp_path_factory):
  """(module, variables, .tflite path, sidecar) of the tiny HigherHRNet exported in fp32."""
  module = models.create_model(TINY_HRNET, JOINTS.num_joints, depthwise_impl='lax')
  variables = fold.random_variables(module, SIZE, seed=5)
  out = tmp_path_factory.mktemp('hrnet') / 'tiny_hrnet.tflite'
  meta = cli.export_model(module, variables, str(out), size=SIZE, model_cfg={'name': 'tiny'},
                          joint_set=JOINTS, source='test', random_init=True, log=lambda s: None)
  return module, variables, out, meta


def test_builtin_ops_folded_bn_and_parity(hrnet_export):
  _, _, path, meta = hrnet_export
  hist = tflite_ops.op_histogram(path.read_bytes())
  tflite_ops.check_ops(hist)
  # Folded BN: no MUL / SUB chains; the head's concatenation and the upsampling's reshapes.
  assert 'MUL' not in hist and 'SUB' not in hist
  assert hist['CONCATENATION'] >= 1 and hist['RESHAPE'] >= 1 and hist['TRANSPOSE_CONV'] == 1
  for name in sidecar.OUTPUT_NAMES:
    assert meta['parity'][name]['max_abs'] <= 1e-4, (name, meta['parity'][name])
  # Its upsampling reshapes have fixed shapes: the export finds that the graph does not resize
  # (a 64-multiple size would otherwise be announced as resizable) and says why.
  resizable = meta['input']['resizable']
  assert resizable['value'] is False and 'does not run at other sizes' in resizable['why']
  assert not litert.TFLiteModel(str(path), 2).resizable


def test_litert_matches_jax_and_decodes(hrnet_export):
  module, variables, path, _ = hrnet_export
  x = np.random.default_rng(1).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
  out4, out2 = litert.TFLiteModel(str(path), 2)(x)
  ref4, ref2 = module.apply(variables, x, train=False)
  np.testing.assert_allclose(out4, np.asarray(ref4), atol=1e-4)
  np.testing.assert_allclose(out2, np.asarray(ref2), atol=1e-4)
  # The decoder takes its outputs like a LitePose's, both backends fitting the image alike.
  image = np.random.default_rng(2).uniform(0, 255, (48, 80, 3)).astype(np.uint8)
  tfl = predictor.Predictor(predictor.load_backend(str(path)), flip=True, keep_maps=True)(image)
  jax_backend = predictor.JaxBackend(module, variables, JOINTS, SIZE)
  jax_backend.input_shape = (SIZE, SIZE)  # fitted into the same square input as the .tflite
  ref = predictor.Predictor(jax_backend, flip=True, keep_maps=True)(image)
  assert tfl.poses.shape[1:] == (JOINTS.num_joints, 3)
  assert tfl.maps['heatmaps'].shape == ref.maps['heatmaps'].shape
  np.testing.assert_allclose(tfl.maps['heatmaps'], ref.maps['heatmaps'], atol=1e-4)


def test_bench_times_it(hrnet_export):
  _, _, path, _ = hrnet_export
  result = bench.benchmark(str(path), threads=1, runs=2, warmup=1)
  assert result['size'] == SIZE and result['delegate_partitions'] == 1
  assert 0 < result['network']['median'] and 0 < result['e2e_flip']['median']


def test_efficient_hrnet_exports_with_its_ops_and_parity(tmp_path):
  """EfficientHRNet's squeeze-excitation and Swish need LOGISTIC / MUL / SUM: allowed for that
  family only, and the export's parity guard holds."""
  from tests.models.test_efficient_hrnet import _tiny_config
  module = models.create_model(_tiny_config(), JOINTS.num_joints, depthwise_impl='lax')
  variables = fold.random_variables(module, SIZE, seed=5)
  out = tmp_path / 'tiny_effhrnet.tflite'
  meta = cli.export_model(module, variables, str(out), size=SIZE, model_cfg={'name': 'tiny'},
                          joint_set=JOINTS, source='test', random_init=True, log=lambda s: None)
  hist = tflite_ops.op_histogram(out.read_bytes())
  tflite_ops.check_ops(hist, tflite_ops.allowed_ops(module))
  assert hist['LOGISTIC'] >= 1 and hist['MUL'] >= 1
  with pytest.raises(ValueError, match='LOGISTIC'):
    tflite_ops.check_ops(hist)  # not on LitePose's list
  for name in sidecar.OUTPUT_NAMES:
    assert meta['parity'][name]['max_abs'] <= 1e-4, (name, meta['parity'][name])
