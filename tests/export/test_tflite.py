"""TFLite export: builtin-only ops, folded BN, parity bounds, sidecar, quantised variants."""
import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax.export import cli
from litepose_jax.export import tflite
from litepose_jax.export import tflite_ops
from litepose_jax.inference import litert
from litepose_jax.inference import sidecar

SIZE = 64


def _ops(path):
  with open(path, 'rb') as f:
    return tflite_ops.op_histogram(f.read())


def _expected_adds(module):
  """Residual adds + one per fused deconv level + one per output tensor (3 outputs)."""
  residual = 0
  cin = module.arch.input_channel
  for stage in module.arch.stages:
    for bi in range(len(stage.blocks)):
      stride = stage.stride if bi == 0 else 1
      residual += stride == 1 and cin == stage.channels
      cin = stage.channels
  return residual + len(module.arch.deconv_setting) + 3


def test_fp32_graph_is_builtin_and_bn_folded(xs_fp32, xs_model):
  module, _ = xs_model
  hist = _ops(xs_fp32)
  tflite_ops.check_ops(hist)
  # A standalone BN would show up as MUL / SUB (or an extra ADD) chains.
  assert 'MUL' not in hist and 'SUB' not in hist
  num_dw7 = sum(len(s.blocks) for s in module.arch.stages)
  assert all(b.kernel == 7 for s in module.arch.stages for b in s.blocks)
  num_s2 = sum(s.stride == 2 for s in module.arch.stages)
  # Each 7x7 depthwise conv is a sum of dilated 'SAME' sub-convs (no PAD / SLICE copies): three
  # (2 ADD) at stride 1, five (4 ADD) at stride 2 on even sizes; the only PAD is the stem's.
  assert hist['DEPTHWISE_CONV_2D'] == 3 * num_dw7 + 2 * num_s2 + 1 + 4
  assert 'SLICE' not in hist
  assert hist['PAD'] == 1
  assert hist['ADD'] == _expected_adds(module) + 2 * num_dw7 + 2 * num_s2
  assert hist['TRANSPOSE_CONV'] == 6
  # Every depthwise filter [1, kh, kw, C] fits XNNPACK's fast micro-kernels (<= 25 taps).
  from ai_edge_litert.interpreter import Interpreter
  interp = Interpreter(model_path=str(xs_fp32))
  shapes = {t['index']: t['shape'] for t in interp.get_tensor_details()}
  filters = [shapes[op['inputs'][1]] for op in interp._get_ops_details()
             if op['op_name'] == 'DEPTHWISE_CONV_2D']
  assert len(filters) == hist['DEPTHWISE_CONV_2D']
  assert max(int(f[1] * f[2]) for f in filters) <= 25
  # Dense convs: stem 3x3 + stem 1x1 + 2 per block + 2 heads x (2 + 2 + 1... ) 1x1 outputs.
  assert hist['CONV_2D'] == 2 + 2 * num_dw7 + 6


def test_fp32_parity_and_sidecar(xs_fp32, xs_model):
  module, variables = xs_model
  meta = sidecar.read(xs_fp32)
  for key in ('format', 'version', 'input', 'outputs', 'joint_set', 'model', 'quantization',
              'parity', 'ops', 'random_init'):
    assert key in meta
  assert meta['input']['shape'] == [1, SIZE, SIZE, 3]
  assert meta['input']['normalization']['mean'] == list(sidecar.IMAGENET_MEAN)
  assert [o['name'] for o in meta['outputs']] == ['heatmaps4', 'tags4', 'heatmaps2']
  assert meta['outputs'][2]['shape'] == [1, SIZE // 2, SIZE // 2, 14]
  assert meta['joint_set']['names'] == list(joints.CROWDPOSE.names)
  assert meta['joint_set']['flip_index'] == list(joints.CROWDPOSE.flip_index)
  assert meta['joint_set']['skeleton'] == [list(e) for e in joints.CROWDPOSE.skeleton]
  assert meta['random_init'] is True and 'benchmarking' in meta['note']
  assert meta['parity']['max_abs'] < 1e-4
  assert meta['gpu_compatible'] is True

  model = litert.TFLiteModel(xs_fp32)
  x = np.random.default_rng(5).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
  out4, out2 = model(x)
  ref4, ref2 = module.apply(variables, x)
  assert out4.shape == (1, SIZE // 4, SIZE // 4, 28) and out2.shape == (1, SIZE // 2, SIZE // 2, 14)
  assert np.abs(ref4).max() > 0.05
  np.testing.assert_allclose(out4, ref4, atol=1e-4)
  np.testing.assert_allclose(out2, ref2, atol=1e-4)


def test_quantized_variants_within_documented_bounds(xs_model, tmp_path, sample_data):
  module, variables = xs_model
  calib = str(sample_data / 'crowdpose_sample')
  sizes = {}
  for mode in ('fp16', 'dynamic', 'int8'):
    out = tmp_path / f'xs_{mode}.tflite'
    meta = cli.export_model(module, variables, str(out), size=SIZE, quantize=mode,
                            calibration=calib, model_cfg={'name': 'XS'}, log=lambda s: None)
    tflite_ops.check_ops(meta['ops'])
    assert meta['gpu_compatible'] is True
    assert meta['quantization'] == mode
    assert meta['parity']['max_rel'] < tflite.RELATIVE_BOUNDS[mode], mode
    assert meta['parity']['max_abs'] > 0  # really quantised
    sizes[mode] = out.stat().st_size
    model = litert.TFLiteModel(out)
    assert model.raw(np.zeros((1, SIZE, SIZE, 3), np.float32))['tags4'].dtype == np.float32
  assert meta['ops'].get('QUANTIZE', 0) >= 1  # int8 (last): float interface, integer body
  assert sizes['fp16'] > sizes['dynamic'] and sizes['fp16'] > sizes['int8']


def test_random_calibration_warns():
  with pytest.warns(UserWarning, match='random-normal'):
    images = tflite.calibration_images(None, 32, count=2)
  assert len(images) == 2 and images[0].shape == (1, 32, 32, 3)


def test_calibration_images_are_what_predict_feeds(sample_data):
  from litepose_jax.data import image_files
  from litepose_jax.data import normalize
  from litepose_jax.inference import transforms
  images = tflite.calibration_images(sample_data / 'crowdpose_sample', 64, count=1)
  x = images[0]
  assert x.shape == (1, 64, 64, 3)
  # ImageNet-normalised pixels lie in [-2.12, 2.64]; the image is centred with black borders
  # (normalised black), exactly the Predictor's fixed-size input.
  assert x.min() >= -2.2 and x.max() <= 2.7
  first = sorted(p for p in (sample_data / 'crowdpose_sample').iterdir() if p.suffix == '.jpg')[0]
  rgb = image_files.read_rgb(str(first), 'test')
  fitted, center, scale = transforms.fit_image(rgb, (64, 64))
  np.testing.assert_array_equal(x[0], normalize.normalize_images(fitted))
  black = normalize.normalize_images(np.zeros((1, 1, 3), np.uint8))[0, 0]
  h, w = rgb.shape[:2]
  edge = (x[0, 0] if w > h else x[0, :, 0])  # a border row (wide image) or column (tall)
  np.testing.assert_allclose(edge, np.broadcast_to(black, edge.shape))
  # The sidecar's map-back formula is the Predictor's (to_image_coords).
  k = min(64 / w, 64 / h)
  pt = np.array([[[10.0, 20.0, 1.0]]])
  back = transforms.to_image_coords(pt, center, scale, (64, 64))[0, 0]
  np.testing.assert_allclose(back[:2], [10 / k + w / 2 - 64 / (2 * k), 20 / k + h / 2 - 64 / (2 * k)])


def _one_person_maps(shift=0):
  """Network-like outputs with one person: a peak per joint in out2, zero tags."""
  out4 = np.zeros((1, 16, 16, 28), np.float32)
  out2 = np.zeros((1, 32, 32, 14), np.float32)
  for j in range(14):
    out2[0, 4 + j, 6 + (j % 5) * 4 + shift, j] = 1.0
  return out4, out2


def test_keypoint_shift_counts_moved_joints():
  ref = _one_person_maps()
  assert tflite._keypoint_shift(ref, ref, joints.CROWDPOSE) == (0, 14)
  # 2 stride-2 pixels = 4 input pixels for every joint.
  assert tflite._keypoint_shift(ref, _one_person_maps(shift=2), joints.CROWDPOSE) == (14, 14)
  empty = (np.zeros_like(ref[0]), np.zeros_like(ref[1]))
  assert tflite._keypoint_shift(ref, empty, joints.CROWDPOSE) == (14, 14)
