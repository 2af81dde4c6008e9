"""The json written beside every exported .tflite: everything an app needs to use the model.

`model.tflite` gets `model.tflite.json` with the input size and normalisation, the output names and
strides, the keypoint convention (names, flip index, skeleton, sigmas, grouping order) and where
the weights came from. The app feeds `(rgb / 255 - mean) / std` as float32 NHWC [1, H, W, 3] and
decodes the outputs itself (decoding is not in the graph).

Written by `litepose export`, read by the LiteRT runtime (litert.py) and by apps; both sides live
here so that the format is described once.
"""
from __future__ import annotations

from collections.abc import Mapping
import json
import os
from typing import Any

from litepose_jax import joints as joints_lib
from litepose_jax.data import normalize
from litepose_jax.errors import UserError

FORMAT = 'litepose-tflite'
VERSION = 1
INPUT_NAME = 'image'
# Output tensor names in the TFLite signature (and their stride w.r.t. the input).
OUTPUT_NAMES = ('heatmaps4', 'tags4', 'heatmaps2')
OUTPUT_STRIDES = {'heatmaps4': 4, 'tags4': 4, 'heatmaps2': 2}
IMAGENET_MEAN = normalize.MEAN
IMAGENET_STD = normalize.STD
# A resizable export takes [1, H, W, 3] for H, W multiples of this (inference/litert.py).
RESIZE_MULTIPLE = 64
REQUIRED_KEYS = ('format', 'version', 'input', 'outputs', 'joint_set', 'model', 'quantization')


def sidecar_path(tflite_path: str | os.PathLike) -> str:
  """model.tflite -> model.tflite.json."""
  return os.fspath(tflite_path) + '.json'


def build(*, size: int, joint_set: joints_lib.JointSet, model_cfg: Mapping[str, Any],
          quantization: str, source: str, random_init: bool,
          parity: Mapping[str, Any] | None = None) -> dict:
  """The sidecar dict for a [1, size, size, 3] export."""
  j = joint_set.num_joints
  outputs = []
  for name in OUTPUT_NAMES:
    s = OUTPUT_STRIDES[name]
    outputs.append({
        'name': name, 'shape': [1, size // s, size // s, j], 'dtype': 'float32', 'stride': s,
        'meaning': {'heatmaps4': 'per-joint heatmaps at 1/4 resolution',
                    'tags4': 'per-joint associative-embedding tags at 1/4 resolution',
                    'heatmaps2': 'per-joint heatmaps at 1/2 resolution'}[name]})
  return {
      'format': FORMAT,
      'version': VERSION,
      'input': {
          'name': INPUT_NAME, 'shape': [1, size, size, 3], 'dtype': 'float32', 'layout': 'NHWC',
          'color': 'RGB',
          'normalization': {'formula': '(pixel / 255 - mean) / std', 'scale': 1.0 / 255.0,
                            'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)},
          'resize': 'scale the image by k = min(W_in / w, H_in / h) and centre it (bilinear '
                    'warp), black (0) borders before normalisation (the fixed-size input); '
                    'a keypoint (x, y) in input pixels maps back to x / k + w / 2 - W_in / (2 k) '
                    '(same for y with h, H_in); outputs at stride s: multiply by s first',
          'resizable': _resizable_entry(size),
      },
      'outputs': outputs,
      'joint_set': {
          'name': joint_set.name, 'num_joints': j, 'names': list(joint_set.names),
          'flip_index': list(joint_set.flip_index),
          'skeleton': [list(e) for e in joint_set.skeleton], 'sigmas': list(joint_set.sigmas),
          'group_order': list(joint_set.group_order),
      },
      'model': dict(model_cfg),
      'quantization': quantization,
      'source': source,
      'random_init': random_init,
      'note': ('random weights: for benchmarking only, predictions are meaningless'
               if random_init else ''),
      'parity': dict(parity or {}),
  }


def _resizable_entry(size: int) -> dict:
  """The sidecar's input.resizable: whether and how the graph runs at other input sizes."""
  if size % RESIZE_MULTIPLE:
    return {'value': False, 'why': f'exported at {size}, not a multiple of {RESIZE_MULTIPLE}'}
  return {
      'value': True, 'multiple': RESIZE_MULTIPLE,
      'how': 'interpreter.resize_tensor_input(input, [1, H, W, 3]) and allocate_tensors(), H and '
             f'W multiples of {RESIZE_MULTIPLE}, with the XNNPACK delegate running the whole graph '
             "(LiteRT's CPU default); outputs are at H / stride, W / stride",
      'official_test_size': 'short side to the exported size, the long side keeping the aspect '
                            'ratio rounded up to a multiple of 64 (official '
                            'get_multi_scale_size); the image is warped to exactly that size '
                            '(litepose eval / predict do this for a .tflite by default)',
  }


def resizable(data: Mapping[str, Any]) -> bool:
  """Whether a sidecar's graph runs at other sizes (multiples of RESIZE_MULTIPLE).

  Sidecars written before the field existed describe the same graph: their exported size
  decides.
  """
  entry = data['input'].get('resizable')
  if entry is not None:
    return bool(entry.get('value'))
  _, h, w, _ = data['input']['shape']
  return not h % RESIZE_MULTIPLE and not w % RESIZE_MULTIPLE


def write(tflite_path: str | os.PathLike, data: Mapping[str, Any]) -> str:
  """Writes the sidecar next to `tflite_path`; returns its path."""
  path = sidecar_path(tflite_path)
  with open(path, 'w') as f:
    json.dump(dict(data), f, indent=2)
  return path


def read(tflite_path: str | os.PathLike) -> dict:
  """Reads and validates the sidecar of `tflite_path`."""
  path = sidecar_path(tflite_path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: every litepose .tflite needs its sidecar json '
                            '(written by `litepose export`)')
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise UserError(f'{path} is not valid JSON: {e}') from e
  missing = [k for k in REQUIRED_KEYS if k not in data]
  if missing:
    raise UserError(f'{path} lacks the field(s) {missing}')
  if data['format'] != FORMAT:
    raise UserError(f'{path}: format is {data["format"]!r}, expected {FORMAT!r}')
  return data


def joint_set_from(data: Mapping[str, Any]) -> joints_lib.JointSet:
  """The JointSet a sidecar describes (a built-in one when the name and joints match)."""
  js = data['joint_set']
  for key in ('names', 'flip_index'):
    if key not in js:
      raise UserError(f'sidecar joint_set lacks {key!r}')
  builtin = joints_lib.JOINT_SETS.get(js.get('name'))
  if builtin is not None and list(builtin.names) == list(js['names']):
    return builtin
  return joints_lib.custom_joint_set(js['names'], js['flip_index'], js.get('skeleton', ()),
                                     js.get('sigmas'), name=js.get('name', 'custom'))
