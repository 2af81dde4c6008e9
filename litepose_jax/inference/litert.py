"""Running an exported LitePose .tflite with LiteRT (ai-edge-litert), JAX-model conventions.

The LiteRT backend of the Predictor, beside the JAX one (predictor.JaxBackend); `litepose export`
writes the files it reads (the graph and its sidecar json, inference/sidecar.py).

Resizable input: the graph is exported at one square size, but when XNNPACK runs all of it (one
delegate partition) the interpreter takes any [1, H, W, 3] with H and W multiples of
sidecar.RESIZE_MULTIPLE and gives the JAX model's outputs at that size (XNNPACK re-plans every
op, TRANSPOSE_CONV included, from the new input shape; TFLite's own TRANSPOSE_CONV kernel would
keep the exported output_shape). Multiples of 64 keep every map up to stride 32 even, so the
'SAME' paddings and the depthwise 'split' covers chosen at export time stay right. This is what
lets a .tflite run at the official test size (short side to the input size, long side a multiple
of 64). Every resized call checks the output shapes.
"""
from __future__ import annotations

import os

import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.inference import sidecar


def delegate_partitions(interpreter) -> int:
  """Delegated partitions of a LiteRT interpreter's graph: 1 when XNNPACK takes the whole graph;
  more when ops it cannot take split it (those run on TFLite's own, slower kernels)."""
  # LiteRT lists one DELEGATE node per delegated partition (a private but long-stable API).
  return sum(op['op_name'] == 'DELEGATE' for op in interpreter._get_ops_details())


class TFLiteModel:
  """A LitePose .tflite behind the JAX model's call convention.

  `model(images [1, H, W, 3] float32 normalised)` returns
  (out4 [1, H/4, W/4, 2J] = J heatmaps then J tags, out2 [1, H/2, W/2, J]).
  Uses the LiteRT CPU interpreter (XNNPACK) with `num_threads` threads.
  """

  def __init__(self, path: str | os.PathLike, num_threads: int = 2):
    from ai_edge_litert import interpreter as litert  # heavy import: only when a model loads
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f'TFLite model not found: {path}')
    if not isinstance(num_threads, int) or num_threads < 1:
      raise UserError(f'num_threads (--threads) must be a positive integer, got {num_threads!r}')
    self.path = path
    self.num_threads = num_threads
    self.meta = sidecar.read(path)
    self.joint_set = sidecar.joint_set_from(self.meta)
    try:
      self._interpreter = litert.Interpreter(model_path=path, num_threads=num_threads)
      # Delegates apply at allocation: done here so that delegate_partitions() is known at once.
      self._interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
      raise UserError(f'{path} is not a loadable TFLite model: {e}') from e
    signatures = self._interpreter.get_signature_list()
    if len(signatures) != 1:
      raise UserError(f'{path}: expected one signature, found {sorted(signatures)}')
    key = next(iter(signatures))
    names = signatures[key]
    missing = [n for n in sidecar.OUTPUT_NAMES if n not in names['outputs']]
    if missing or names['inputs'] != [sidecar.INPUT_NAME]:
      raise UserError(f'{path}: signature {key!r} has inputs {names["inputs"]} and outputs '
                      f'{names["outputs"]}; expected [{sidecar.INPUT_NAME!r}] and '
                      f'{list(sidecar.OUTPUT_NAMES)}')
    self._runner = self._interpreter.get_signature_runner(key)
    # The exported shape; a resizable model also takes other sizes (see `resizable`).
    self.input_shape = tuple(self.meta['input']['shape'])
    self.resizable = sidecar.resizable(self.meta) and self.delegate_partitions() == 1

  def delegate_partitions(self) -> int:
    """How many pieces XNNPACK runs the graph in (see `delegate_partitions`)."""
    return delegate_partitions(self._interpreter)

  @property
  def input_size(self) -> tuple[int, int]:
    """(H, W) the graph was exported for."""
    return self.input_shape[1], self.input_shape[2]

  def accepts(self, height: int, width: int) -> bool:
    """Whether the graph runs on a [1, height, width, 3] input (the exported size or, resizable,
    multiples of sidecar.RESIZE_MULTIPLE)."""
    if (1, height, width, 3) == self.input_shape:
      return True
    m = sidecar.RESIZE_MULTIPLE
    return self.resizable and height > 0 and width > 0 and not height % m and not width % m

  def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """images [1, H, W, 3] float32 -> {'heatmaps4', 'tags4', 'heatmaps2'} arrays."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[0] != 1 or images.shape[3] != 3 or not self.accepts(
        *images.shape[1:3]):
      can = (f'[1, H, W, 3] with H and W multiples of {sidecar.RESIZE_MULTIPLE}'
             if self.resizable else f'{self.input_shape} only (its input is not resizable)')
      raise UserError(f'{self.path} takes images of shape {can}, got {images.shape}')
    # The signature runner resizes the input and re-allocates when the shape changes (~5 ms on
    # XS), and does nothing more when it stays the same.
    out = self._runner(**{sidecar.INPUT_NAME: images})
    out = {name: out[name] for name in sidecar.OUTPUT_NAMES}
    if images.shape != self.input_shape:
      _check_output_shapes(self.path, images.shape, out)
    return out

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """images [1, H, W, 3] -> (out4 [1, H/4, W/4, 2J], out2 [1, H/2, W/2, J])."""
    out = self.raw(images)
    return np.concatenate([out['heatmaps4'], out['tags4']], axis=-1), out['heatmaps2']


def _check_output_shapes(path: str, input_shape, outputs) -> None:
  """Raises when a resized graph's outputs are not at input / stride (it did not really resize)."""
  _, h, w, _ = input_shape
  for name, value in outputs.items():
    s = sidecar.OUTPUT_STRIDES[name]
    if value.shape[1:3] != (h // s, w // s):
      raise RuntimeError(f'{path}: resized to {h}x{w}, {name} came out {value.shape} instead of '
                         f'[1, {h // s}, {w // s}, J]; this graph cannot run at that size')
