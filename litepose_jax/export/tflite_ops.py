"""What a .tflite flatbuffer contains: operator names, the op histogram, the builtin allow-list.

Read-only inspection of converted graphs, shared by the conversion (tflite.py), the dynamic-range
rewiring (dynamic_range.py) and `litepose export`'s report.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

# Builtin ops an exported graph may contain, all taken by the XNNPACK and GPU delegates. A
# LitePose float graph needs the first five (PAD for the stem's symmetric stride-2 padding; SLICE
# is allowed for graphs of other arches); a HigherHRNet adds CONCATENATION and RESHAPE (its head
# concatenates features and stride-4 output; its fusion layers' nearest upsampling is
# concatenation + reshape, models/higherhrnet.py). fp16 adds DEQUANTIZE (fp16 weights), int8
# QUANTIZE / DEQUANTIZE at the float interface. RELU / RELU6 may appear where the converter cannot
# fuse the activation.
ALLOWED_OPS = frozenset({'CONV_2D', 'DEPTHWISE_CONV_2D', 'TRANSPOSE_CONV', 'ADD', 'PAD', 'SLICE',
                         'CONCATENATION', 'RESHAPE', 'RELU', 'RELU6', 'QUANTIZE', 'DEQUANTIZE'})
# An EfficientHRNet (models/efficient_hrnet.py) adds LOGISTIC and MUL (Swish x * sigmoid(x), the
# squeeze-excitation gates) and SUM (SE's global mean: the converter emits SUM, then MUL by 1/HW);
# XNNPACK takes them (the whole graph stays one delegate partition). Other families keep the
# stricter list, where a MUL would mean an unfolded BN.
EFFICIENT_HRNET_OPS = ALLOWED_OPS | {'LOGISTIC', 'MUL', 'SUM'}


def allowed_ops(module) -> frozenset:
  """The builtin allow-list of `module`'s family (EFFICIENT_HRNET_OPS or ALLOWED_OPS)."""
  from litepose_jax.models import efficient_hrnet  # models are loaded by any exporter anyway
  return EFFICIENT_HRNET_OPS if isinstance(module, efficient_hrnet.EfficientHRNet) else ALLOWED_OPS


def builtin_op_name(builtin_code: int, deprecated_code: int) -> str:
  """Name of a TFLite operator code, e.g. 'CONV_2D' ('CUSTOM' for custom ops)."""
  # TensorFlow is a heavy import: only when a graph is inspected.
  from tensorflow.lite.python import schema_py_generated as schema
  # The schema keeps small codes in the deprecated int8 field; the real one is the larger.
  code = max(builtin_code, deprecated_code)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith('_')}
  return names.get(code, f'UNKNOWN_{code}')


def op_histogram(tflite_bytes: bytes) -> collections.Counter:
  """{op name: count} over all subgraphs; custom / Flex ops are reported as 'CUSTOM:<name>'."""
  from tensorflow.lite.python import schema_py_generated as schema  # heavy: see builtin_op_name
  model = schema.Model.GetRootAs(tflite_bytes, 0)
  names = []
  for i in range(model.OperatorCodesLength()):
    oc = model.OperatorCodes(i)
    name = builtin_op_name(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    names.append('CUSTOM:' + (oc.CustomCode() or b'?').decode() if name == 'CUSTOM' else name)
  hist = collections.Counter()
  for s in range(model.SubgraphsLength()):
    sg = model.Subgraphs(s)
    for o in range(sg.OperatorsLength()):
      hist[names[sg.Operators(o).OpcodeIndex()]] += 1
  return hist


def check_ops(hist: Mapping[str, int], allowed: Iterable[str] = ALLOWED_OPS) -> None:
  """Raises a ValueError naming every op outside the builtin allow-list."""
  bad = sorted(op for op in hist if op not in set(allowed))
  if bad:
    raise ValueError(f'the exported graph contains ops outside the allowed builtin set: {bad} '
                     f'(histogram {dict(hist)}); it would not run on XNNPACK / the GPU delegate')


def gpu_compatible(tflite_bytes: bytes) -> tuple[bool, str]:
  """(ok, message) of TFLite's static GPU-delegate compatibility analysis of the graph."""
  import contextlib
  import io

  import tensorflow as tf  # heavy: see builtin_op_name
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    tf.lite.experimental.Analyzer.analyze(model_content=tflite_bytes, gpu_compatibility=True)
  text = buf.getvalue()
  ok = 'looks compatible with GPU delegate' in text
  issues = [line.strip() for line in text.splitlines() if 'GPU COMPATIBILITY WARNING' in line]
  return ok, 'compatible' if ok else '; '.join(issues[:5]) or 'analyzer found GPU issues'


def format_histogram(hist: Mapping[str, int]) -> str:
  """'CONV_2D x12, ADD x9, ...': most frequent first."""
  return ', '.join(f'{k} x{v}' for k, v in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
