"""MetricWriter: metrics.jsonl lines, and one line per step after a resume."""
import json

import numpy as np

from litepose_jax.training import summary


def _steps(path):
  return [json.loads(line)['step'] for line in path.read_text().splitlines()]


def test_resume_drops_lines_after_the_restored_step(tmp_path):
  w = summary.MetricWriter(str(tmp_path), tensorboard=False)
  for s in range(1, 11):
    w.scalars(s, {'loss': 1.0 / s})
  w.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 11, "loss"')  # torn by the crash
  w = summary.MetricWriter(str(tmp_path), tensorboard=False, resume_step=6)
  w.scalars(7, {'loss': float('nan')})
  w.close()
  assert _steps(tmp_path / 'metrics.jsonl') == [1, 2, 3, 4, 5, 6, 7]
  assert json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[-1])['loss'] == 'nan'


def test_fresh_run_appends(tmp_path):
  w = summary.MetricWriter(str(tmp_path), tensorboard=False, resume_step=0)
  w.scalars(0, {'a': 1})
  w.close()
  assert _steps(tmp_path / 'metrics.jsonl') == [0]


def test_prediction_panels_take_bytes_or_normalised_images():
  from litepose_jax.data import normalize
  img = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
  hm = np.zeros((2, 4, 4, 14), np.float32)
  a = summary.prediction_panels(img, hm, hm)
  b = summary.prediction_panels(normalize.normalize_images(img), hm, hm)
  assert a.shape == (2, 16, 48, 3)
  assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
