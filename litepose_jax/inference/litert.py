"""Running an exported LitePose .tflite with LiteRT (ai-edge-litert), JAX-model conventions.

The LiteRT backend of the Predictor, beside the JAX one (predictor.JaxBackend); `litepose export`
writes the files it reads (the graph and its sidecar json, inference/sidecar.py).
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
    self.input_shape = tuple(self.meta['input']['shape'])

  def delegate_partitions(self) -> int:
    """How many pieces XNNPACK runs the graph in (see `delegate_partitions`)."""
    return delegate_partitions(self._interpreter)

  @property
  def input_size(self) -> tuple[int, int]:
    """(H, W) the graph was exported for."""
    return self.input_shape[1], self.input_shape[2]

  def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """images [1, H, W, 3] float32 -> {'heatmaps4', 'tags4', 'heatmaps2'} arrays."""
    images = np.asarray(images, np.float32)
    if images.shape != self.input_shape:
      raise ValueError(f'{self.path} takes images of shape {self.input_shape} (batch 1, static), '
                       f'got {images.shape}')
    out = self._runner(**{sidecar.INPUT_NAME: images})
    return {name: out[name] for name in sidecar.OUTPUT_NAMES}

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """images [1, H, W, 3] -> (out4 [1, H/4, W/4, 2J], out2 [1, H/2, W/2, J])."""
    out = self.raw(images)
    return np.concatenate([out['heatmaps4'], out['tags4']], axis=-1), out['heatmaps2']
