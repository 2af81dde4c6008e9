"""Weight-only int8 quantisation of a float .tflite (the export's `--quantize dynamic`)."""
import collections

import numpy as np
import pytest

from litepose_jax.export import runtime, tflite, weight_quant


def test_quantize_filter_is_symmetric_per_channel():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
  w[2] = 0.0  # an all-zero channel stays zero with a finite scale
  q, scale = weight_quant.quantize_filter(w, 0)
  assert q.dtype == np.int8 and scale.shape == (4,) and np.isfinite(scale).all()
  assert np.abs(q).max() == 127 and not q[2].any()
  # Every channel reaches +-127 and dequantises within half a step.
  np.testing.assert_array_equal(np.abs(q).reshape(4, -1).max(1)[[0, 1, 3]], 127)
  assert (np.abs(q * scale[:, None, None, None] - w) <= scale[:, None, None, None] / 2 + 1e-7).all()
  q3, s3 = weight_quant.quantize_filter(w.transpose(3, 1, 2, 0), 3)
  np.testing.assert_array_equal(q3, q.transpose(3, 1, 2, 0))
  np.testing.assert_array_equal(s3, scale)


@pytest.fixture(scope='module')
def weight_only(xs_fp32, tmp_path_factory):
  data, count = weight_quant.quantize_weights_int8(xs_fp32.read_bytes())
  path = tmp_path_factory.mktemp('wq') / 'xs_w8.tflite'
  path.write_bytes(data)
  (path.parent / (path.name + '.json')).write_text((xs_fp32.parent / (xs_fp32.name + '.json')).read_text())
  return path, count


def test_every_filter_becomes_int8_behind_a_dequantize(xs_fp32, weight_only):
  path, count = weight_only
  before, after = tflite.op_histogram(xs_fp32.read_bytes()), tflite.op_histogram(path.read_bytes())
  filters = before['CONV_2D'] + before['DEPTHWISE_CONV_2D'] + before['TRANSPOSE_CONV']
  assert count == filters and after['DEQUANTIZE'] == filters
  assert after - collections.Counter(DEQUANTIZE=filters) == before  # nothing else changed
  assert path.stat().st_size < 0.4 * xs_fp32.stat().st_size  # float filters are gone
  from ai_edge_litert.interpreter import Interpreter
  interp = Interpreter(model_path=str(path))
  tensors = {t['index']: t for t in interp.get_tensor_details()}
  for op in interp._get_ops_details():
    if op['op_name'] == 'DEQUANTIZE':
      src = tensors[op['inputs'][0]]
      assert src['dtype'] == np.int8 and len(src['quantization_parameters']['scales']) > 1


def test_weight_only_model_runs_delegated_and_close_to_fp32(xs_fp32, weight_only):
  path, _ = weight_only
  x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
  ref = runtime.TFLiteModel(xs_fp32).raw(x)
  model = runtime.TFLiteModel(path)
  got = model.raw(x)
  for name in ref:
    err = np.abs(got[name] - ref[name]).max() / np.abs(ref[name]).max()
    assert 0 < err < tflite.RELATIVE_BOUNDS['dynamic'], name
  # XNNPACK takes the whole graph: one delegate node, no hybrid kernel left outside it.
  ops = [op['op_name'] for op in model._interpreter._get_ops_details()]
  assert ops.count('DELEGATE') == 1
