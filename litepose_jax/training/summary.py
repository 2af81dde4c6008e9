"""Training logs: metrics.jsonl, TensorBoard scalars / images, and the prediction panels."""
from __future__ import annotations

from collections.abc import Mapping
import json
import math
import os

import cv2
import numpy as np

from litepose_jax.data import normalize


def _truncate_after(path: str, step: int) -> None:
  """Keeps the metrics.jsonl lines with step <= `step` (and no torn last line), atomically."""
  kept = []
  with open(path) as f:
    for line in f:
      try:
        rec = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut short by the crash that the run is resuming from
      if int(rec.get('step', 0)) <= step:
        kept.append(json.dumps(rec) + '\n')
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.writelines(kept)
  os.replace(tmp, path)


class MetricWriter:
  """Appends {'step': s, ...} lines to WORKDIR/metrics.jsonl and mirrors them to TensorBoard.

  Only process 0 writes; other processes get a writer whose methods do nothing. A run resumed at
  step S (resume_step) first drops the lines logged after S by the interrupted run, which the
  resumed run logs again, so every step appears once.
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True,
               resume_step: int | None = None):
    self.enabled = enabled
    self._tb = None
    self._jsonl = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, 'metrics.jsonl')
    if resume_step is not None and os.path.isfile(path):
      _truncate_after(path, int(resume_step))
    self._jsonl = open(path, 'a')
    if tensorboard:
      # Imported here: TensorFlow takes seconds to import and only process 0 writes.
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tf = tf
      self._tb = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in values.items()}
    self._jsonl.write(json.dumps({'step': int(step), **{
        k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      with self._tb.as_default(step=int(step)):
        for k, v in clean.items():
          self._tf.summary.write(k, self._tf.constant(v, self._tf.float32),
                                 metadata=self._metadata('scalars'))

  def images(self, step: int, name: str, images: np.ndarray) -> None:
    """images [N, H, W, 3] uint8."""
    if not self.enabled or self._tb is None:
      return
    images = np.asarray(images, np.uint8)
    h, w = images.shape[1:3]
    # The TensorBoard image-plugin layout: [width, height, png_0, png_1, ...] strings.
    pngs = [cv2.imencode('.png', im[..., ::-1])[1].tobytes() for im in images]
    tensor = self._tf.constant([str(w).encode(), str(h).encode()] + pngs)
    with self._tb.as_default(step=int(step)):
      self._tf.summary.write(name, tensor, metadata=self._metadata('images'))
    self._tb.flush()

  def _metadata(self, plugin: str):
    # Written with the core tf.summary.write op so that the tensorboard package (which provides
    # tf.summary.scalar / image) is not needed to write the logs, only to view them. Imported
    # here with TensorFlow (see __init__).
    from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    return meta

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def _overlay(image: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
  h, w = image.shape[:2]
  peak = np.clip(np.max(np.asarray(heatmaps, np.float32), axis=-1), 0.0, 1.0)
  peak = cv2.resize(peak, (w, h), interpolation=cv2.INTER_LINEAR)
  colour = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
  a = (0.6 * peak)[..., None]
  return (image * (1 - a) + colour * a).astype(np.uint8)


def prediction_panels(images, gt_heatmaps, pred_heatmaps) -> np.ndarray:
  """[N, H, 3W, 3] uint8: image | ground-truth heatmaps | predicted heatmaps (max over joints)."""
  imgs = normalize.to_uint8(images)
  rows = [np.concatenate([im, _overlay(im, g), _overlay(im, p)], axis=1)
          for im, g, p in zip(imgs, np.asarray(gt_heatmaps), np.asarray(pred_heatmaps))]
  return np.stack(rows)
