"""Rasterisation for the synthetic data set: cluttered backgrounds, figures, camera effects.

All drawing is OpenCV with sub-pixel coordinates (shift=4) and no anti-aliasing, so a given
random stream always produces the same pixels. Everything here is uint8 BGR, [H, W, 3].
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from litepose_jax.data import synthetic_figure as sf

_SHIFT = 4
_ONE = 1 << _SHIFT

_SKIN = np.array([(45, 65, 100), (70, 100, 150), (100, 135, 190), (140, 170, 220),
                  (175, 200, 240)], np.float64)  # BGR, dark to light
_HAIR = np.array([(20, 20, 25), (30, 45, 70), (40, 70, 110), (90, 150, 200), (150, 150, 150)],
                 np.float64)
PATTERNS = ('solid', 'stripes', 'checker', 'speckle')
_PATTERN_P = (0.45, 0.25, 0.12, 0.18)


def _fx(p) -> tuple[int, int]:
  q = np.rint(np.asarray(p) * _ONE)
  return int(q[0]), int(q[1])


def _color(rng, lo=0, hi=255) -> tuple:
  return tuple(rng.uniform(lo, hi, 3).tolist())


def draw_op(img: np.ndarray, op: tuple, color) -> None:
  """Draws one primitive ('limb', 'poly', 'ellipse', 'circle', 'line'), pixel coordinates."""
  kind = op[0]
  if kind == 'limb':
    _, p0, p1, r0, r1 = op
    x0, y0, x1, y1 = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    dx, dy = x1 - x0, y1 - y0
    n = math.hypot(dx, dy)
    if n > 1e-3:
      ux, uy = -dy / n, dx / n
      quad = np.array([[x0 + ux * r0, y0 + uy * r0], [x1 + ux * r1, y1 + uy * r1],
                       [x1 - ux * r1, y1 - uy * r1], [x0 - ux * r0, y0 - uy * r0]])
      cv2.fillConvexPoly(img, np.rint(quad * _ONE).astype(np.int32), color, cv2.LINE_8, _SHIFT)
    cv2.circle(img, (round(x0 * _ONE), round(y0 * _ONE)), round(r0 * _ONE), color, -1,
               cv2.LINE_8, _SHIFT)
    cv2.circle(img, (round(x1 * _ONE), round(y1 * _ONE)), round(r1 * _ONE), color, -1,
               cv2.LINE_8, _SHIFT)
  elif kind == 'poly':
    cv2.fillConvexPoly(img, np.rint(op[1] * _ONE).astype(np.int32), color, cv2.LINE_8, _SHIFT)
  elif kind == 'ellipse':
    _, c, (a0, a1), angle = op
    v = np.rint(np.array([c[0], c[1], a0, a1]) * _ONE).astype(int).tolist()
    cv2.ellipse(img, (v[0], v[1]), (v[2], v[3]), angle, 0, 360, color, -1, cv2.LINE_8, _SHIFT)
  elif kind == 'circle':
    c, r = op[1], op[2]
    cv2.circle(img, (round(float(c[0]) * _ONE), round(float(c[1]) * _ONE)), round(r * _ONE),
               color, -1, cv2.LINE_8, _SHIFT)
  elif kind == 'line':
    _, p0, p1, t = op
    cv2.line(img, _fx(p0), _fx(p1), color, max(1, int(round(t))), cv2.LINE_8, _SHIFT)
  else:
    raise ValueError(f'unknown drawing primitive {kind!r}')


# ------------------------------------------------------------------------------------------------
# Backgrounds


def _random_shape(img: np.ndarray, rng: np.random.Generator) -> None:
  h, w = img.shape[:2]
  side = max(h, w)
  kind = sf.pick(rng, (0.22, 0.14, 0.14, 0.16, 0.12, 0.1, 0.12))
  color = _color(rng)
  c = rng.uniform(-0.1, 1.1, 2) * (w, h)
  if kind == 0:  # rectangle, possibly rotated
    half = rng.uniform(0.03, 0.35, 2) * side
    rect = cv2.boxPoints(((float(c[0]), float(c[1])), (float(2 * half[0]), float(2 * half[1])),
                          float(rng.uniform(0, 90) if rng.random() < 0.5 else 0)))
    draw_op(img, ('poly', rect), color)
  elif kind == 1:
    draw_op(img, ('circle', c, rng.uniform(0.02, 0.2) * side), color)
  elif kind == 2:
    draw_op(img, ('ellipse', c, tuple(rng.uniform(0.02, 0.25, 2) * side), rng.uniform(0, 180)),
            color)
  elif kind == 3:  # thick straight line (poles, edges, furniture)
    p1 = c + rng.normal(0, 0.3, 2) * side
    draw_op(img, ('line', c, p1, rng.uniform(1, 0.04 * side)), color)
  elif kind == 4:  # convex polygon
    pts = c + rng.normal(0, 0.12, (int(rng.integers(3, 7)), 2)) * side
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    draw_op(img, ('poly', hull), color)
  elif kind == 5:  # striped patch
    half = rng.uniform(0.08, 0.35, 2) * side
    period = rng.uniform(3, 12)
    color2 = _color(rng)
    x0, y0 = c - half
    vertical = rng.random() < 0.5
    n = int(2 * half[0 if vertical else 1] / period)
    draw_op(img, ('poly', np.array([c - half, c + (half[0], -half[1]), c + half,
                                    c + (-half[0], half[1])])), color)
    for k in range(0, n, 2):
      off = k * period
      a = (x0 + off, y0) if vertical else (x0, y0 + off)
      b = (x0 + off, y0 + 2 * half[1]) if vertical else (x0 + 2 * half[0], y0 + off)
      draw_op(img, ('line', np.array(a), np.array(b), period / 2), color2)
  else:  # limb-like distractor: two tapered segments in person-like colours
    p0 = c
    p1 = p0 + rng.normal(0, 0.12, 2) * side
    p2 = p1 + rng.normal(0, 0.12, 2) * side
    r = rng.uniform(0.01, 0.035) * side
    col = _skin(rng) if rng.random() < 0.5 else color
    draw_op(img, ('limb', p0, p1, r, r * 0.8), col)
    draw_op(img, ('limb', p1, p2, r * 0.8, r * 0.6), col)


def render_background(rng: np.random.Generator, h: int, w: int,
                      clutter: tuple[int, int]) -> np.ndarray:
  """A cluttered background: gradient, uneven lighting, shapes, blurred blobs, fine texture."""
  # Smooth fields are synthesised at 1/8 resolution and upsampled (cheap, and smooth anyway).
  gh, gw = max(2, h // 8), max(2, w // 8)
  theta = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
  t = xx * np.cos(theta) + yy * np.sin(theta)
  t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
  c0, c1 = rng.uniform(15, 240, (2, 3)).astype(np.float32)
  light = rng.uniform(0.65, 1.35, (int(rng.integers(2, 5)), int(rng.integers(2, 5))))
  light = cv2.resize(light.astype(np.float32), (gw, gh), interpolation=cv2.INTER_CUBIC)
  small = np.clip((c0 + (c1 - c0) * t[..., None]) * light[..., None], 0, 255).astype(np.uint8)
  img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

  for _ in range(int(rng.integers(clutter[0], clutter[1] + 1))):
    _random_shape(img, rng)

  # Out-of-focus blobs: drawn small, upscaled (= blurred), blended in.
  blobs = np.zeros((gh, gw, 3), np.uint8)
  alpha = np.zeros((gh, gw), np.uint8)
  for _ in range(int(rng.integers(0, 6))):
    c = rng.uniform(0, 1, 2) * (gw, gh)
    r = rng.uniform(0.05, 0.3) * max(gh, gw)
    draw_op(blobs, ('circle', c, r), _color(rng))
    draw_op(alpha, ('circle', c, r), float(rng.uniform(80, 220)))
  if alpha.any():
    blobs = cv2.resize(blobs, (w, h), interpolation=cv2.INTER_LINEAR)
    a = cv2.resize(alpha.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_LINEAR)
    img = cv2.blendLinear(img, blobs, 1.0 - a, a)

  # Fine texture (grain of walls, floors, foliage).
  amp = rng.uniform(0, 25)
  tex = rng.standard_normal((max(2, h // 3), max(2, w // 3), 3), dtype=np.float32) * amp
  tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
  return cv2.add(img, tex, dtype=cv2.CV_8U)


# ------------------------------------------------------------------------------------------------
# Figures


def _skin(rng) -> tuple:
  x = rng.uniform(0, len(_SKIN) - 1)
  k = int(x)
  c = _SKIN[k] + (_SKIN[min(k + 1, len(_SKIN) - 1)] - _SKIN[k]) * (x - k)
  return tuple(float(v) for v in np.clip(c + rng.normal(0, 8, 3), 0, 255))


@dataclasses.dataclass
class Appearance:
  """Per-person colours (BGR) and clothing choices."""
  skin: tuple
  hair: tuple
  shirt: tuple
  pants: tuple
  shoes: tuple
  long_sleeves: bool
  long_pants: bool
  pattern: str
  pattern_amp: float
  pattern_period: float  # body units
  pattern_angle: float


def sample_appearance(rng: np.random.Generator) -> Appearance:
  """Random clothing and skin colours for one person."""
  hair = _HAIR[int(rng.integers(len(_HAIR)))] + rng.normal(0, 10, 3)
  shirt = _color(rng) if rng.random() < 0.8 else _color(rng, 10, 70)
  pants = _color(rng, 10, 200)
  return Appearance(
      skin=_skin(rng), hair=tuple(float(v) for v in np.clip(hair, 0, 255)), shirt=shirt,
      pants=pants, shoes=_color(rng, 5, 90), long_sleeves=bool(rng.random() < 0.5),
      long_pants=bool(rng.random() < 0.75),
      pattern=PATTERNS[sf.pick(rng, _PATTERN_P)],
      pattern_amp=float(rng.uniform(0.12, 0.35)), pattern_period=float(rng.uniform(0.03, 0.08)),
      pattern_angle=float(rng.uniform(0, np.pi)))


def _shade(color, f):
  return tuple(min(255.0, c * f) for c in color)


def figure_ops(fig: sf.Figure, pose: sf.Pose, app: Appearance, px: np.ndarray,
               depth: np.ndarray, scale: float) -> list[tuple[float, list]]:
  """Depth-sorted drawing groups [(depth, [(op, colour, is_cloth), ...])] in px's pixel frame."""
  b = fig.build * scale
  pt = lambda name: px[sf.PT[name]]  # noqa: E731
  dp = lambda name: depth[sf.PT[name]]  # noqa: E731
  centre = 0.5 * (dp('neck') + dp('pelvis'))
  shade = lambda d: min(1.15, max(0.72, 1.0 + 1.3 * float(d - centre)))  # noqa: E731
  slot = {'sleeve': app.shirt, 'forearm': app.shirt if app.long_sleeves else app.skin,
          'pants': app.pants, 'shin': app.pants if app.long_pants else app.skin,
          'shoe': app.shoes, 'skin': app.skin}
  cloth = {'sleeve': True, 'forearm': app.long_sleeves, 'pants': True, 'shin': app.long_pants,
           'shoe': False, 'skin': False}
  groups = []
  for a, e, r0, r1, s in sf.LIMBS:
    d = 0.5 * (dp(a) + dp(e))
    op = ('limb', pt(a), pt(e), max(0.8, r0 * b), max(0.8, r1 * b))
    groups.append((d, [(op, _shade(slot[s], shade(d)), cloth[s])]))
  for side in ('left', 'right'):
    d = dp(f'{side}_hand')
    groups.append((d, [(('circle', pt(f'{side}_hand'), max(0.8, 0.026 * b)),
                        _shade(app.skin, shade(d)), False)]))

  torso = [(('poly', cv2.convexHull(px[len(sf.POINT_NAMES):].astype(np.float32))
             .reshape(-1, 2).astype(np.float64)), app.shirt, True)]
  body_fwd = sf.view_dir(np.array([0.0, 0.0, 1.0]), pose)
  if body_fwd[2] > 0.3:  # shirt front: a darker seam / placket from the collar down
    torso.append((('line', pt('seam_top'), pt('seam_bottom'), max(1.0, 0.012 * scale)),
                   _shade(app.shirt, 0.6), True))
  groups.append((centre, torso))

  # Head: skin ellipse, hair, and a face only when it looks toward the camera.
  hc, top = pt('head_center'), pt('head')
  up = top - hc
  n = np.hypot(*up)
  angle = float(np.degrees(np.arctan2(up[1], up[0]))) if n > 1e-3 else -90.0
  face_z = sf.view_dir(fig.face_dir, pose)[2]
  back = float(np.clip(-face_z, 0, 1))
  head = [(('ellipse', hc, (0.07 * scale, 0.056 * scale), angle), app.skin, False)]
  hair_c = pt('hair_center') - (0.02 * back * scale) * (up / max(n, 1e-3))
  head.append((('ellipse', hair_c, ((0.05 + 0.025 * back) * scale, 0.058 * scale), angle),
               app.hair, False))
  if face_z > 0.2:
    r = max(0.6, 0.009 * scale)
    for side in ('left', 'right'):
      head.append((('circle', pt(f'{side}_eye'), r), (25.0, 25.0, 30.0), False))
    head.append((('line', pt('mouth_left'), pt('mouth_right'), max(1.0, 0.008 * scale)),
                 _shade(app.skin, 0.55), False))
  groups.append((max(dp('head_center'), dp('neck')) + 1e-3, head))
  groups.sort(key=lambda g: g[0])
  return groups


def _pattern(app: Appearance, h: int, w: int, scale: float, rng) -> np.ndarray:
  period = max(2.0, app.pattern_period * scale)
  yy, xx = np.ogrid[0:h, 0:w]
  if app.pattern == 'stripes':
    ph = (xx * np.cos(app.pattern_angle) + yy * np.sin(app.pattern_angle)) / period
    t = np.sign(np.sin(2 * np.pi * ph))
  elif app.pattern == 'checker':
    t = np.sign(np.sin(np.pi * xx / period)) * np.sign(np.sin(np.pi * yy / period))
  else:
    small = rng.standard_normal((max(2, int(h / period * 2)), max(2, int(w / period * 2))),
                                dtype=np.float32)
    t = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), -1, 1)
  return (1.0 + app.pattern_amp * t).astype(np.float32)


def render_figure(canvas: np.ndarray, label: np.ndarray, pid: int,
                  groups: list[tuple[float, list]], roi: tuple[int, int, int, int],
                  app: Appearance, scale: float, rng: np.random.Generator) -> None:
  """Paints one figure into canvas [H, W, 3] and writes pid into label [H, W] where visible.

  groups come from figure_ops with coordinates relative to the roi's top-left corner.
  """
  x0, y0, x1, y1 = roi
  if x1 <= x0 or y1 <= y0:
    return
  h, w = y1 - y0, x1 - x0
  # BGR + a tag channel (1 = skin / shoes / details, 2 = textured clothing): one draw per part.
  layer = np.zeros((h, w, 4), np.uint8)
  for _, ops in groups:
    for op, color, is_cloth in ops:
      draw_op(layer, op, (*color, 2.0 if is_cloth else 1.0))
  tag = layer[..., 3]
  if app.pattern != 'solid':
    cm = tag == 2
    pat = _pattern(app, h, w, scale, rng)
    layer[cm, :3] = np.clip(layer[cm, :3] * pat[cm][:, None], 0, 255).astype(np.uint8)
  m = tag > 0
  canvas[y0:y1, x0:x1][m] = layer[m, :3]
  label[y0:y1, x0:x1][m] = pid


# ------------------------------------------------------------------------------------------------
# Camera


def camera_effects(img: np.ndarray, rng: np.random.Generator, noise_sigma: tuple[float, float],
                   blur_prob: float) -> np.ndarray:
  """Colour cast, gain, gamma (one LUT), optional defocus blur and sensor noise."""
  gain = rng.uniform(0.7, 1.3)
  gamma = float(np.exp(rng.uniform(np.log(0.75), np.log(1.35))))
  cast = rng.uniform(0.85, 1.15, 3)
  v = (np.arange(256, dtype=np.float64) / 255.0) ** gamma * 255.0
  lut = np.clip(v[:, None] * gain * cast[None, :], 0, 255).astype(np.uint8).reshape(256, 1, 3)
  img = cv2.LUT(img, lut)
  if rng.random() < blur_prob:
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.1)))
  sigma = rng.uniform(*noise_sigma)
  h, w = img.shape[:2]
  bank = _noise_bank(h, w)
  oy, ox = int(rng.integers(bank.shape[0] - h + 1)), int(rng.integers(bank.shape[1] - w + 1))
  if sigma > 0:
    img = cv2.add(img, bank[oy:oy + h, ox:ox + w] * np.float32(sigma), dtype=cv2.CV_8U)
  return img


_BANKS: dict[int, np.ndarray] = {}


def _noise_bank(h: int, w: int) -> np.ndarray:
  """A fixed N(0, 1) field [>= 2H, >= 2W, 3]; images take seeded random crops of it.

  Drawing fresh normals per image costs more than the rest of the rendering; a crop of a fixed,
  seed-independent field at a seeded offset is just as deterministic and noise-like.
  """
  # The bank's size depends on the image size only, so crops never depend on rendering history.
  side = max(512, -(-2 * max(h, w) // 256) * 256)
  if side not in _BANKS:
    _BANKS[side] = np.random.default_rng(20240531).standard_normal((side, side, 3),
                                                                   dtype=np.float32)
  return _BANKS[side]
