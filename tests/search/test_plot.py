"""search.plot: the Pareto front, axis ticks and the search picture."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from litepose_jax.search import plot


def test_pareto_front_of_known_points():
  #        0    1    2    3    4    5    6
  xs = [1.0, 2.0, 2.0, 3.0, 4.0, 0.5, 5.0]
  ys = [0.3, 0.5, 0.4, 0.45, 0.6, 0.1, 0.6]
  # 2 is beaten by 1 (same cost, lower AP), 3 by 1 (dearer, lower AP), 6 by 4 (dearer, same AP).
  assert plot.pareto_front(xs, ys) == [5, 0, 1, 4]
  assert plot.pareto_front([], []) == []
  assert plot.pareto_front([2.0], [0.1]) == [0]
  # Equal points: only the first counts.
  assert plot.pareto_front([1.0, 1.0], [0.5, 0.5]) == [0]


@pytest.mark.parametrize('lo, hi, expected', [
    (0.0, 10.0, [0, 2, 4, 6, 8, 10]),
    (0.013, 0.061, [0.02, 0.03, 0.04, 0.05, 0.06]),
    (-0.4, 14.6, [0, 2.5, 5, 7.5, 10, 12.5]),
])
def test_nice_ticks(lo, hi, expected):
  assert plot.nice_ticks(lo, hi) == pytest.approx(expected)


def points(n=60, seed=0):
  rng = np.random.default_rng(seed)
  macs = rng.uniform(0.05, 1.0, n) * 1e9
  cands = [{'ap': 0.2 + 0.3 * m / 1e9 + rng.normal(0, 0.02), 'macs_true': m,
            'macs_paper': 1.4 * m, 'latency_ms_model': 3 + m / 1e8} for m in macs]
  chosen = [dict(max(cands[:20], key=lambda c: c['ap']), name='macs0.5G', latency_ms_measured=9.0)]
  uniform = [{'mult': 0.5, 'img_size': 64, 'ap': 0.25, 'macs_true': 2e8, 'macs_paper': 2.8e8,
              'latency_ms_model': 5.0}]
  return cands, chosen, uniform


def test_draw_search_writes_both_panels(tmp_path):
  cands, chosen, uniform = points()
  path = tmp_path / 'sub' / 'pareto.png'
  img = plot.draw_search(cands, chosen, uniform, str(path), convention='paper',
                         latency_note='LiteRT, 2 threads')
  read = cv2.imread(str(path))
  assert read.shape == img.shape == (plot.PANEL_H, 2 * plot.PANEL_W, 3)
  np.testing.assert_array_equal(read, img)
  for panel in (img[:, :plot.PANEL_W], img[:, plot.PANEL_W:]):
    colours = panel.reshape(-1, 3)
    assert (colours != 255).any(axis=1).mean() > 0.03  # not blank
    # Each panel shows the front (blue), the chosen net (red) and the uniform net (green).
    assert ((colours == plot._FRONT).all(axis=1)).sum() > 50
    assert ((colours == plot._CHOSEN).all(axis=1)).sum() > 50
    assert ((colours == plot._UNIFORM).all(axis=1)).sum() > 30


def test_draw_search_without_latency_has_one_panel(tmp_path):
  cands, chosen, uniform = points()
  for c in cands + chosen + uniform:
    c.pop('latency_ms_model')
    c.pop('latency_ms_measured', None)
  img = plot.draw_search(cands, chosen, uniform, str(tmp_path / 'p.png'))
  assert img.shape == (plot.PANEL_H, plot.PANEL_W, 3)
  assert (img != 255).any(axis=2).mean() > 0.03
  # Degenerate inputs draw too: a single candidate, nothing chosen.
  one = plot.draw_search(cands[:1], [], [])
  assert one.shape == (plot.PANEL_H, plot.PANEL_W, 3)
