"""Dynamic-range graphs rewired for XNNPACK (the export's `--quantize dynamic`)."""
import collections

import numpy as np
import pytest

from litepose_jax.export import dynamic_range
from litepose_jax.export import runtime
from litepose_jax.export import tflite_ops


def _interpreter(data: bytes):
  from ai_edge_litert.interpreter import Interpreter
  interp = Interpreter(model_content=data)
  interp.allocate_tensors()
  return interp


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
  interp = _interpreter(data)
  interp.set_tensor(interp.get_input_details()[0]['index'], x)
  interp.invoke()
  return interp.get_tensor(interp.get_output_details()[0]['index'])


@pytest.fixture(scope='module')
def tiny_graphs():
  """(float, converter's dynamic-range) .tflite of conv -> add -> 7x7 depthwise -> add."""
  import tensorflow as tf
  rng = np.random.default_rng(2)
  k1 = tf.constant(rng.normal(0, 0.1, (3, 3, 32, 32)).astype(np.float32))
  k2 = tf.constant(rng.normal(0, 0.1, (7, 7, 32, 1)).astype(np.float32))  # 1568 weights: int8

  @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 32], tf.float32)])
  def net(x):
    y = tf.nn.conv2d(x + 1.0, k1, 1, 'SAME') + x
    return tf.nn.depthwise_conv2d(y, k2, [1, 1, 1, 1], 'SAME') + y

  converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()])
  float_model = converter.convert()
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  return float_model, converter.convert()


def test_rewired_hybrid_graph_runs_whole_on_xnnpack(tiny_graphs):
  float_model, hybrid = tiny_graphs
  ours, count = dynamic_range.dequantize_depthwise_filters(hybrid)
  assert count == 1
  before, after = tflite_ops.op_histogram(hybrid), tflite_ops.op_histogram(ours)
  assert after - collections.Counter(DEQUANTIZE=1) == before  # nothing else changed
  # The converter's hybrid depthwise conv falls outside XNNPACK and splits the graph.
  assert runtime.delegate_partitions(_interpreter(hybrid)) == 2
  assert runtime.delegate_partitions(_interpreter(ours)) == 1
  # The depthwise conv reads the same int8 weights, now unpacked to float.
  interp = _interpreter(ours)
  tensors = {t['index']: t for t in interp.get_tensor_details()}
  dq = [op for op in interp._get_ops_details() if op['op_name'] == 'DEQUANTIZE']
  assert tensors[dq[0]['inputs'][0]]['dtype'] == np.int8
  assert len(tensors[dq[0]['inputs'][0]]['quantization_parameters']['scales']) == 32
  x = np.random.default_rng(3).normal(size=(1, 16, 16, 32)).astype(np.float32)
  want, hyb, got = (_run(m, x) for m in (float_model, hybrid, ours))
  scale = np.abs(want).max()
  assert 0 < np.abs(got - want).max() < 0.02 * scale  # quantised weights, still close
  assert np.abs(got - hyb).max() < 0.02 * scale


def test_graph_without_int8_depthwise_is_left_alone(tiny_graphs):
  float_model, _ = tiny_graphs
  ours, count = dynamic_range.dequantize_depthwise_filters(float_model)
  assert count == 0
  added = tflite_ops.op_histogram(ours) - tflite_ops.op_histogram(float_model)
  assert added == collections.Counter()


def test_exported_dynamic_model_is_one_partition(xs_model, tmp_path, sample_data):
  from litepose_jax.export import cli
  module, variables = xs_model
  out = tmp_path / 'xs_dynamic.tflite'
  meta = cli.export_model(module, variables, str(out), size=64, quantize='dynamic',
                          calibration=str(sample_data / 'crowdpose_sample'),
                          model_cfg={'name': 'XS'}, log=lambda s: None)
  assert meta['ops']['DEQUANTIZE'] > 0
  assert runtime.TFLiteModel(out).delegate_partitions() == 1
