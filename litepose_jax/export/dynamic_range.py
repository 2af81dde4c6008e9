"""Dynamic-range graphs that XNNPACK runs whole: the export's `--quantize dynamic`.

TFLite's dynamic-range conversion stores int8 weights and emits hybrid ops (float activations
quantised on the fly). XNNPACK takes hybrid CONV_2D and TRANSPOSE_CONV (dynamically quantised
int8 GEMMs) but not hybrid DEPTHWISE_CONV_2D: those fall back to TFLite's own hybrid kernels and
cut the graph into partitions (LitePose-S: 35, 178.7 ms against 43.5 ms in fp32). Here each hybrid
depthwise conv reads its int8 filter through a DEQUANTIZE op instead, the pattern of fp16 weights
that XNNPACK and the GPU delegate unpack once at load: one partition, and faster than fp32
(S: 36.3 vs 41.3 ms, same process).
"""
from __future__ import annotations

from litepose_jax.export.tflite_ops import builtin_op_name

# The operand holding the filter of a DEPTHWISE_CONV_2D (inputs: input, filter, bias).
_FILTER = 1
# DEQUANTIZE version 3 covers per-channel int8 inputs.
_DEQUANTIZE_VERSION = 3


def dequantize_depthwise_filters(tflite_bytes: bytes) -> tuple[bytes, int]:
  """Dynamic-range .tflite -> (same graph with its int8 depthwise filters behind DEQUANTIZE ops,
  number of filters rewired). Other ops and tensors are unchanged."""
  # flatbuffers / TensorFlow are heavy imports: only when a graph is rewired.
  import flatbuffers
  from tensorflow.lite.python import schema_py_generated as schema
  model = schema.ModelT.InitFromPackedBuf(tflite_bytes, 0)
  codes = [builtin_op_name(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in model.operatorCodes]
  if 'DEQUANTIZE' in codes:
    dequantize = codes.index('DEQUANTIZE')
    oc = model.operatorCodes[dequantize]
    oc.version = max(oc.version, _DEQUANTIZE_VERSION)
  else:
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    oc.version = _DEQUANTIZE_VERSION
    model.operatorCodes.append(oc)
    dequantize = len(model.operatorCodes) - 1
  total = 0
  for sg in model.subgraphs:
    floats, unpack = {}, []  # int8 filter tensor -> its float copy (shared filters: one each)
    for op in sg.operators:
      if codes[op.opcodeIndex] != 'DEPTHWISE_CONV_2D':
        continue
      ti = op.inputs[_FILTER]
      t = sg.tensors[ti]
      if t.type != schema.TensorType.INT8:
        continue  # small filters stay float in dynamic-range graphs
      if ti not in floats:
        ft = schema.TensorT()
        ft.shape, ft.type, ft.buffer = list(t.shape), schema.TensorType.FLOAT32, 0  # no data
        ft.name = (t.name or b'filter') + b'/dequantized'
        sg.tensors.append(ft)
        floats[ti] = len(sg.tensors) - 1
        dq = schema.OperatorT()
        dq.opcodeIndex, dq.inputs, dq.outputs = dequantize, [ti], [floats[ti]]
        unpack.append(dq)
      op.inputs = list(op.inputs)
      op.inputs[_FILTER] = floats[ti]
    # Unpacking first keeps the operator list in execution order.
    sg.operators = unpack + sg.operators
    total += len(floats)
  builder = flatbuffers.Builder(1 << 20)
  builder.Finish(model.Pack(builder), file_identifier=b'TFL3')
  return bytes(builder.Output()), total
