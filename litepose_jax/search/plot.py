"""The search picture (`litepose search` writes it as pareto.png): AP against cost.

One panel of AP against MACs (in the search's convention) and, when the candidates' latency is
known, a second one of AP against latency. Every evaluated candidate is a gray dot, the Pareto
front (the best AP at each cost) a blue line, the net chosen for each budget a red dot labelled
with the budget's name, and the uniform-width nets (every width times one multiplier) green
triangles labelled `mult@resolution`, for reference. Drawn with OpenCV like the rest of the
project (no plotting library).
"""
from __future__ import annotations

from collections.abc import Sequence
import math
import os
from typing import Any

import cv2
import numpy as np

# One panel (px); two panels side by side make a 1200 x 500 picture.
PANEL_W, PANEL_H = 600, 500
# Plot area inside a panel: room for the y tick numbers (left), the title (top) and the x ticks
# and label (bottom).
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 22, 42, 58
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours (cv2.imwrite order).
_BLACK, _WHITE = (0, 0, 0), (255, 255, 255)
_AXIS, _GRID, _TEXT = (60, 60, 60), (228, 228, 228), (40, 40, 40)
_CANDIDATE = (165, 165, 165)
_FRONT = (200, 110, 30)  # blue
_CHOSEN = (40, 40, 220)  # red
_UNIFORM = (60, 150, 40)  # green


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
  """Indices of the points that no other point beats (cost x <= and AP y >=, one of them
  strictly), cheapest first: the best AP reachable at each cost."""
  order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i], i))
  front: list[int] = []
  best = -math.inf
  for i in order:
    if ys[i] > best:
      front.append(i)
      best = ys[i]
  return front


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
  """About `target` round tick values (steps of 1, 2, 2.5 or 5 x 10^k) covering [lo, hi]."""
  if not hi > lo:
    hi = lo + (abs(lo) or 1.0)
  raw = (hi - lo) / target
  power = 10.0 ** math.floor(math.log10(raw))
  step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
  first = math.ceil(lo / step - 1e-9) * step
  ticks, k = [], 0
  while first + k * step <= hi + step * 1e-9:
    ticks.append(round(first + k * step, 12))
    k += 1
  return ticks


def _tick_text(v: float, ticks: list[float]) -> str:
  """A tick number with as many decimals as the step between ticks needs."""
  step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(v) or 1.0
  decimals = 0
  while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
    decimals += 1
  return f'{v:.{decimals}f}'


def _range(values: list[float]) -> tuple[float, float]:
  """[lo, hi] around `values` with 6 % padding each side (10 % of the value, at least 0.001,
  around equal values), never below 0 when no value is (costs and APs are not negative)."""
  lo, hi = min(values), max(values)
  pad = (hi - lo) * 0.06 or max(abs(lo) * 0.1, 1e-3)
  return (lo - pad if lo < 0 else max(lo - pad, 0.0)), hi + pad


class _Panel:
  """Maps data to pixels inside one panel of the picture (its top-left corner at x0)."""

  def __init__(self, img: np.ndarray, x0: int, xr: tuple[float, float],
               yr: tuple[float, float]):
    self.img, self.x0, self.xr, self.yr = img, x0, xr, yr
    self.left, self.right = x0 + _LEFT, x0 + PANEL_W - _RIGHT
    self.top, self.bottom = _TOP, PANEL_H - _BOTTOM
    self.taken: list[tuple[int, int, int, int]] = []  # label boxes drawn so far

  def px(self, x: float, y: float) -> tuple[int, int]:
    fx = (x - self.xr[0]) / (self.xr[1] - self.xr[0])
    fy = (y - self.yr[0]) / (self.yr[1] - self.yr[0])
    return (int(round(self.left + fx * (self.right - self.left))),
            int(round(self.bottom - fy * (self.bottom - self.top))))

  def text(self, s: str, org: tuple[int, int], scale: float = 0.45, color=_TEXT,
           thick: int = 1) -> None:
    cv2.putText(self.img, s, org, _FONT, scale, color, thick, cv2.LINE_AA)

  def axes(self, title: str, xlabel: str, ylabel: str) -> None:
    """Grid, frame, tick numbers, title and axis labels."""
    xt = [t for t in nice_ticks(*self.xr) if self.xr[0] <= t <= self.xr[1]]
    yt = [t for t in nice_ticks(*self.yr) if self.yr[0] <= t <= self.yr[1]]
    for t in xt:
      x, _ = self.px(t, self.yr[0])
      cv2.line(self.img, (x, self.top), (x, self.bottom), _GRID, 1)
      cv2.line(self.img, (x, self.bottom), (x, self.bottom + 5), _AXIS, 1)
      s = _tick_text(t, xt)
      (w, _), _ = cv2.getTextSize(s, _FONT, 0.42, 1)
      self.text(s, (x - w // 2, self.bottom + 20), 0.42)
    for t in yt:
      _, y = self.px(self.xr[0], t)
      cv2.line(self.img, (self.left, y), (self.right, y), _GRID, 1)
      cv2.line(self.img, (self.left - 5, y), (self.left, y), _AXIS, 1)
      s = _tick_text(t, yt)
      (w, h), _ = cv2.getTextSize(s, _FONT, 0.42, 1)
      self.text(s, (self.left - 8 - w, y + h // 2), 0.42)
    cv2.rectangle(self.img, (self.left, self.top), (self.right, self.bottom), _AXIS, 1)
    (w, _), _ = cv2.getTextSize(title, _FONT, 0.6, 1)
    self.text(title, ((self.left + self.right - w) // 2, 26), 0.6, _BLACK, 1)
    (w, _), _ = cv2.getTextSize(xlabel, _FONT, 0.5, 1)
    self.text(xlabel, ((self.left + self.right - w) // 2, PANEL_H - 14), 0.5)
    self.text(ylabel, (self.x0 + 8, 26), 0.5)

  def reserve(self, centre: tuple[int, int], r: int) -> None:
    """Keeps labels off a marker of radius r at `centre`."""
    self.taken.append((centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r))

  def label(self, s: str, anchor: tuple[int, int], color, scale: float = 0.45,
            required: bool = True) -> None:
    """`s` beside the point at `anchor`: right of it, else left, above or below, a little
    further out each round, where it covers no earlier label or reserved marker and stays in
    the plot; a label that finds no such place is drawn at the first one if `required`, else
    left out (a crowd of reference labels would bury the points)."""
    (w, h), _ = cv2.getTextSize(s, _FONT, scale, 1)
    x, y = anchor
    tries = []
    for d in (0, 12, 24, 40):
      tries += [(x + 9 + d, y - 6), (x - 9 - w - d, y - 6), (x + 9 + d, y + h + 6),
                (x - 9 - w - d, y + h + 6), (x - w // 2, y - 12 - d), (x - w // 2, y + h + 12 + d)]
    # Shifted sideways into the plot where they would stick out of it (points near an edge).
    tries = [(min(max(ox, self.left + 3), self.right - 3 - w), oy) for ox, oy in tries]
    place = None
    for ox, oy in tries:
      box = (ox - 1, oy - h - 2, ox + w + 1, oy + 3)
      inside = (box[0] >= self.left + 2 and box[2] <= self.right - 2 and box[1] >= self.top + 2
                and box[3] <= self.bottom - 2)
      free = all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1]
                 for t in self.taken)
      if inside and free:
        place = ox, oy
        break
    if place is None:
      if not required:
        return
      place = tries[0]
    ox, oy = place
    self.taken.append((ox - 1, oy - h - 2, ox + w + 1, oy + 3))
    # A white halo keeps the label readable over the gray dots.
    self.text(s, (ox, oy), scale, _WHITE, 3)
    self.text(s, (ox, oy), scale, color, 1)


def _triangle(img: np.ndarray, c: tuple[int, int], r: int, color) -> None:
  pts = np.array([(c[0], c[1] - r), (c[0] - r, c[1] + r - 2), (c[0] + r, c[1] + r - 2)], np.int32)
  cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
  cv2.polylines(img, [pts], True, _BLACK, 1, cv2.LINE_AA)


def _legend(p: _Panel, entries: list[tuple[str, str]]) -> None:
  """Legend box in the plot's top-left corner (on a Pareto plot the empty corner: cheap and
  accurate nets do not exist). entries: (kind, text), kind one of dot/front/chosen/uniform."""
  x, y = p.left + 10, p.top + 10
  width = 34 + max(cv2.getTextSize(t, _FONT, 0.42, 1)[0][0] for _, t in entries)
  cv2.rectangle(p.img, (x, y), (x + width, y + 8 + 18 * len(entries)), _WHITE, -1)
  cv2.rectangle(p.img, (x, y), (x + width, y + 8 + 18 * len(entries)), _GRID, 1)
  for k, (kind, text) in enumerate(entries):
    cy = y + 14 + 18 * k
    if kind == 'dot':
      cv2.circle(p.img, (x + 14, cy), 3, _CANDIDATE, -1, cv2.LINE_AA)
    elif kind == 'front':
      cv2.line(p.img, (x + 5, cy), (x + 23, cy), _FRONT, 2, cv2.LINE_AA)
    elif kind == 'chosen':
      cv2.circle(p.img, (x + 14, cy), 5, _CHOSEN, -1, cv2.LINE_AA)
      cv2.circle(p.img, (x + 14, cy), 5, _BLACK, 1, cv2.LINE_AA)
    else:
      _triangle(p.img, (x + 14, cy), 6, _UNIFORM)
    p.text(text, (x + 30, cy + 5), 0.42)


def _panel(img: np.ndarray, x0: int, key, candidates: list[dict], chosen: list[dict],
           uniform: list[dict], title: str, xlabel: str) -> None:
  """One panel: AP against the cost key(point) of every point that has one."""
  cands = [(key(c), c['ap']) for c in candidates if key(c) is not None]
  unis = [(key(u), u['ap'], u) for u in uniform if key(u) is not None]
  picks = [(key(c), c['ap'], c) for c in chosen if key(c) is not None]
  xs = [p[0] for p in cands] + [p[0] for p in unis] + [p[0] for p in picks]
  ys = [p[1] for p in cands] + [p[1] for p in unis] + [p[1] for p in picks]
  p = _Panel(img, x0, _range(xs or [0.0, 1.0]), _range(ys or [0.0, 1.0]))
  p.axes(title, xlabel, 'AP')
  for x, y in cands:
    cv2.circle(img, p.px(x, y), 3, _CANDIDATE, -1, cv2.LINE_AA)
  front = [cands[i] for i in pareto_front([c[0] for c in cands], [c[1] for c in cands])]
  if len(front) > 1:
    # A staircase: the best AP reachable at a cost holds until the next front point.
    stairs = []
    for (x, y), nxt in zip(front, front[1:] + [None]):
      stairs.append(p.px(x, y))
      if nxt is not None:
        stairs.append(p.px(nxt[0], y))
    cv2.polylines(img, [np.array(stairs, np.int32)], False, _FRONT, 2, cv2.LINE_AA)
  for x, y in front:
    cv2.circle(img, p.px(x, y), 3, _FRONT, -1, cv2.LINE_AA)
  for x, y, _ in unis:
    _triangle(img, p.px(x, y), 7, _UNIFORM)
  for x, y, _ in picks:
    cv2.circle(img, p.px(x, y), 7, _CHOSEN, -1, cv2.LINE_AA)
    cv2.circle(img, p.px(x, y), 7, _BLACK, 1, cv2.LINE_AA)
  # Labels after every marker, the chosen nets' first so that theirs get the best places.
  for x, y, _ in picks:
    p.reserve(p.px(x, y), 7)
  for x, y, _ in unis:
    p.reserve(p.px(x, y), 6)
  for x, y, c in picks:
    p.label(str(c['name']), p.px(x, y), _CHOSEN, 0.5)
  for x, y, u in unis:
    p.label(f'{u["mult"]:g}@{u["img_size"]}', p.px(x, y), _UNIFORM, 0.42, required=False)
  entries = [('dot', f'candidates ({len(cands)})'), ('front', 'Pareto front')]
  if picks:
    entries.append(('chosen', 'chosen per budget'))
  if unis:
    entries.append(('uniform', 'uniform width (mult@px)'))
  _legend(p, entries)


def _latency(point: dict) -> float | None:
  """A point's latency (ms): measured when it was, else the latency model's prediction."""
  measured = point.get('latency_ms_measured')
  return measured if measured is not None else point.get('latency_ms_model')


def draw_search(candidates: Sequence[dict[str, Any]], chosen: Sequence[dict[str, Any]],
                uniform: Sequence[dict[str, Any]], path: str | None = None, *,
                convention: str = 'true', latency_note: str = '') -> np.ndarray:
  """The search picture (uint8 BGR [500, 600 or 1200, 3]), written to `path` when given.

  Points are dicts with 'ap' (fraction) and 'macs_true' / 'macs_paper' (MACs); latency from
  'latency_ms_measured' or else 'latency_ms_model' (ms); chosen ones also have 'name' (the
  budget), uniform ones 'mult' and 'img_size'. The latency panel is drawn when every candidate
  has a latency; latency_note completes its axis label (e.g. 'LiteRT, 2 threads').
  """
  candidates, chosen, uniform = list(candidates), list(chosen), list(uniform)
  with_latency = bool(candidates) and all(_latency(c) is not None for c in candidates)
  img = np.full((PANEL_H, PANEL_W * (2 if with_latency else 1), 3), 255, np.uint8)
  field = f'macs_{convention}'
  _panel(img, 0, lambda c: c[field] / 1e9, candidates, chosen, uniform, 'AP vs MACs',
         f'GMACs ({convention} convention)')
  if with_latency:
    note = f', {latency_note}' if latency_note else ''
    _panel(img, PANEL_W, _latency, candidates, chosen, uniform, 'AP vs latency',
           f'latency (ms{note})')
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, img):
      raise OSError(f'could not write the search picture {path}')
  return img
