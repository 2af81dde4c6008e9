"""Weight-only int8 quantisation of a float .tflite: the export's `--quantize dynamic`.

TFLite's own dynamic-range conversion emits hybrid CONV_2D / DEPTHWISE_CONV_2D ops (int8 weights
consumed by float kernels) that XNNPACK cannot run: they fall back to TFLite's reference-speed
hybrid kernels and cut the graph into dozens of delegate partitions (LitePose-S: 178 ms against
43 ms in fp32 on the development CPU). Here every constant float filter becomes a per-channel
symmetric int8 tensor read through a DEQUANTIZE op, the same pattern as fp16 weights: XNNPACK
and the GPU delegate unpack it once at load, so the model keeps fp32 speed, activations stay
float, and the file is ~3x smaller than fp32.
"""
from __future__ import annotations

import collections

import numpy as np

# Filter operand and its output-channel axis per op (TFLite layouts: CONV_2D / TRANSPOSE_CONV
# [O, H, W, I], DEPTHWISE_CONV_2D [1, H, W, O]).
_FILTERS = {'CONV_2D': (1, 0), 'DEPTHWISE_CONV_2D': (1, 3), 'TRANSPOSE_CONV': (1, 0)}


def quantize_filter(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
  """float32 filter -> (int8 values, float32 scales [C]): symmetric per channel along `axis`,
  values in [-127, 127] (TFLite's int8 weight spec, zero point 0)."""
  reduce_axes = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
  scale = (np.abs(w).max(axis=reduce_axes) / 127.0).astype(np.float32)
  scale = np.where(scale > 0, scale, np.float32(1.0))  # all-zero channels stay exact zeros
  shape = [1] * w.ndim
  shape[axis] = -1
  q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
  return q, scale


def quantize_weights_int8(tflite_bytes: bytes) -> tuple[bytes, int]:
  """Float .tflite -> (weight-only int8 .tflite, number of filters quantised)."""
  import flatbuffers
  from tensorflow.lite.python import schema_py_generated as schema
  model = schema.ModelT.InitFromPackedBuf(tflite_bytes, 0)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith('_')}
  codes = [names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode)) for oc in model.operatorCodes]
  if 'DEQUANTIZE' in codes:
    dequantize = codes.index('DEQUANTIZE')
  else:
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    oc.version = 1
    model.operatorCodes.append(oc)
    dequantize = len(model.operatorCodes) - 1
  done = 0
  for sg in model.subgraphs:
    # A buffer shared by several tensors keeps its float data for the others.
    users = collections.Counter(t.buffer for t in sg.tensors)
    converted, new_ops = set(), []
    for op in sg.operators:
      if codes[op.opcodeIndex] not in _FILTERS:
        continue
      pos, axis = _FILTERS[codes[op.opcodeIndex]]
      ti = op.inputs[pos]
      t = sg.tensors[ti]
      data = model.buffers[t.buffer].data if t.buffer else None
      if ti in converted or t.type != schema.TensorType.FLOAT32 or data is None or not len(data):
        continue
      w = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32).reshape(t.shape)
      q, scale = quantize_filter(w, axis)
      buf = schema.BufferT()
      buf.data = np.frombuffer(q.tobytes(), np.uint8)
      model.buffers.append(buf)
      qt = schema.TensorT()
      qt.shape, qt.type, qt.buffer = list(t.shape), schema.TensorType.INT8, len(model.buffers) - 1
      qt.name = (t.name or b'filter') + b'/int8'
      qt.quantization = schema.QuantizationParametersT()
      qt.quantization.scale = scale.tolist()
      qt.quantization.zeroPoint = [0] * scale.size
      qt.quantization.quantizedDimension = axis
      sg.tensors.append(qt)
      if users[t.buffer] == 1:
        model.buffers[t.buffer].data = None
      t.buffer = 0  # the float filter is now the DEQUANTIZE op's output (buffer 0: no data)
      dq = schema.OperatorT()
      dq.opcodeIndex, dq.inputs, dq.outputs = dequantize, [len(sg.tensors) - 1], [ti]
      new_ops.append(dq)
      converted.add(ti)
    # Constant unpacking first keeps the operator list in execution order.
    sg.operators = new_ops + sg.operators
    done += len(converted)
  builder = flatbuffers.Builder(1 << 20)
  builder.Finish(model.Pack(builder), file_identifier=b'TFL3')
  return bytes(builder.Output()), done
