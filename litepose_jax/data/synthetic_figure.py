"""Articulated human-like figures for the synthetic data set: pose sampling, 3D skeleton, projection.

A figure is a stick skeleton in 3D body units (standing height = 1) with human proportions,
posed by joint angles drawn from a few pose families (standing, walking, arms raised, reaching,
sitting, crouching, bending, random), turned by a yaw angle about the vertical axis and projected
orthographically. Body frame: +X is the person's LEFT, +Y up, +Z the direction the person faces;
at yaw 0 the person faces the camera, so their left side appears on the image's right, exactly as
in real photographs. That is the only left/right cue (plus face, chest seam and feet direction,
and far-side parts drawn darker and behind the torso): every cue survives a horizontal flip with
the flip-index permutation, so flip augmentation stays label-consistent.
"""
from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math

import numpy as np

# Every 3D point a figure carries; the first 19 are the labelled joints of both joint sets.
POINT_NAMES = (
    'head', 'neck', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist',
    'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    # Helpers for drawing only.
    'head_center', 'hair_center', 'left_hand', 'right_hand', 'left_toe', 'right_toe',
    'seam_top', 'seam_bottom', 'pelvis', 'mouth_left', 'mouth_right')
PT = {n: i for i, n in enumerate(POINT_NAMES)}
NUM_TORSO_HULL = 12  # torso hull points are stored after the named points

POSE_FAMILIES = ('stand', 'walk', 'raise_both', 'raise_one', 'reach', 'sit', 'crouch', 'bend',
                 'random')
POSE_WEIGHTS = (0.18, 0.24, 0.10, 0.12, 0.08, 0.09, 0.06, 0.05, 0.08)

# Segment radii at (start, end) in body units, before the per-person build factor.
_LIMBS = (  # (start point, end point, r0, r1, clothing slot)
    ('left_shoulder', 'left_elbow', 0.036, 0.027, 'sleeve'),
    ('right_shoulder', 'right_elbow', 0.036, 0.027, 'sleeve'),
    ('left_elbow', 'left_wrist', 0.027, 0.020, 'forearm'),
    ('right_elbow', 'right_wrist', 0.027, 0.020, 'forearm'),
    ('left_hip', 'left_knee', 0.052, 0.036, 'pants'),
    ('right_hip', 'right_knee', 0.052, 0.036, 'pants'),
    ('left_knee', 'left_ankle', 0.036, 0.024, 'shin'),
    ('right_knee', 'right_ankle', 0.036, 0.024, 'shin'),
    ('left_ankle', 'left_toe', 0.024, 0.020, 'shoe'),
    ('right_ankle', 'right_toe', 0.024, 0.020, 'shoe'),
    ('neck', 'head_center', 0.024, 0.024, 'skin'),
)


@dataclasses.dataclass
class Pose:
  """Joint angles in radians (arms/legs: [left, right] x (abduction, flexion, bend))."""
  family: str
  yaw: float
  roll: float
  lean: float
  side_bend: float
  twist: float
  head_fwd: float
  head_side: float
  head_yaw: float
  arms: np.ndarray  # [2, 4]: abduction, flexion, elbow bend, elbow-axis skew
  legs: np.ndarray  # [2, 3]: abduction, flexion, knee bend


@dataclasses.dataclass
class Figure:
  """A posed figure in 3D body units: points [P, 3] (named points then the torso hull)."""
  points: np.ndarray
  head_dir: np.ndarray  # [3] unit vector neck -> head top
  face_dir: np.ndarray  # [3] unit vector the face looks along
  left_dir: np.ndarray  # [3] unit vector toward the head's left ear
  build: float          # width multiplier


@functools.lru_cache(maxsize=64)
def _cumulative(weights: tuple[float, ...]) -> list[float]:
  return list(itertools.accumulate(weights))


def pick(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
  """Index drawn with probability proportional to weights (one uniform draw; cheaper than choice)."""
  c = _cumulative(tuple(weights))
  return min(bisect.bisect_right(c, rng.random() * c[-1]), len(c) - 1)


class _Uniforms:
  """U(0, 1) numbers drawn from rng in blocks (one generator call per pose instead of dozens)."""

  def __init__(self, rng: np.random.Generator, block: int = 64):
    self._rng, self._block = rng, block
    self._vals, self._i = rng.random(block).tolist(), 0

  def __call__(self) -> float:
    if self._i == len(self._vals):
      self._vals, self._i = self._rng.random(self._block).tolist(), 0
    self._i += 1
    return self._vals[self._i - 1]

  def deg(self, lo: float, hi: float) -> float:
    """U(lo, hi) degrees, returned in radians."""
    return np.pi / 180.0 * (lo + (hi - lo) * self())


# Probabilities of facing the camera, facing away and profile / three-quarter views.
DEFAULT_FACING = (0.55, 0.25, 0.20)


def sample_yaw(draw: _Uniforms, facing: tuple[float, float, float] = DEFAULT_FACING) -> float:
  """Yaw in radians: facing the camera (+-35 deg), away (180 +-35) or side-on (35-145 either way)."""
  r = draw() * sum(facing)
  if r < facing[0]:
    return draw.deg(-35, 35)
  if r < facing[0] + facing[1]:
    return draw.deg(145, 215)
  side = 1.0 if draw() < 0.5 else -1.0
  return side * draw.deg(35, 145)


def sample_pose(rng: np.random.Generator,
                facing: tuple[float, float, float] = DEFAULT_FACING) -> Pose:
  """Draws a pose from one of POSE_FAMILIES with human-like joint ranges (facing: see sample_yaw)."""
  draw = _Uniforms(rng)
  c = np.cumsum(POSE_WEIGHTS)
  family = POSE_FAMILIES[min(int(np.searchsorted(c, draw() * c[-1], side='right')), len(c) - 1)]
  u = draw.deg
  lean, side_bend, twist = u(-5, 10), u(-6, 6), u(-15, 15)
  arms = np.array([[u(5, 25), u(-15, 20), u(0, 35), u(-25, 25)] for _ in range(2)])
  legs = np.array([[u(0, 10), u(-8, 12), u(0, 12)] for _ in range(2)])
  if family == 'walk':
    a = u(12, 35)
    front = int(draw() < 0.5)
    legs[front] = [u(0, 6), a, u(0, 20)]
    legs[1 - front] = [u(0, 6), -a * (0.6 + 0.4 * draw()), u(10, 50)]
    # Arms swing against the legs.
    arms[front, :3] = [u(5, 15), -a * (0.5 + 0.7 * draw()), u(5, 40)]
    arms[1 - front, :3] = [u(5, 15), a * (0.5 + 0.7 * draw()), u(10, 60)]
  elif family == 'raise_both':
    for k in range(2):
      arms[k, :3] = [u(95, 175), u(-20, 35), u(0, 70)]
  elif family == 'raise_one':
    k = int(draw() < 0.5)
    arms[k, :3] = [u(60, 175), u(-20, 70), u(0, 100)]
  elif family == 'reach':
    for k in range(2):
      arms[k, :3] = [u(0, 45), u(40, 110), u(0, 70)]
  elif family == 'sit':
    lean = u(-10, 20)
    for k in range(2):
      legs[k] = [u(0, 20), u(60, 100), u(60, 110)]
      arms[k, :3] = [u(0, 30), u(10, 70), u(30, 100)]
  elif family == 'crouch':
    lean = u(15, 45)
    for k in range(2):
      legs[k] = [u(5, 30), u(50, 100), u(90, 135)]
      arms[k, :3] = [u(0, 40), u(0, 80) + lean, u(10, 90)]
  elif family == 'bend':
    lean = u(30, 75)
    for k in range(2):
      # Arms hang roughly vertically: torso-frame flexion cancels the lean.
      arms[k, :3] = [u(0, 30), lean + u(-25, 25), u(0, 40)]
      legs[k, 2] = u(0, 25)
  elif family == 'random':
    lean, side_bend = u(-15, 40), u(-20, 20)
    for k in range(2):
      arms[k, :3] = [u(0, 180), u(-40, 120), u(0, 140)]
      legs[k] = [u(-5, 40), u(-30, 100), u(0, 130)]
  return Pose(family=family, yaw=sample_yaw(draw, facing), roll=u(-10, 10), lean=lean,
              side_bend=side_bend, twist=twist, head_fwd=u(-15, 20), head_side=u(-12, 12),
              head_yaw=u(-25, 25), arms=arms, legs=legs)


def _rot_x(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _limb_dir(side: float, abd: float, flex: float) -> np.ndarray:
  # abd 0 = hanging, 90 = sideways out, 180 = straight up; flex rotates toward the front.
  return np.array([side * np.sin(abd), -np.cos(abd) * np.cos(flex), np.cos(abd) * np.sin(flex)])


def _bend(u: np.ndarray, hint: np.ndarray, angle: float) -> np.ndarray:
  """Rotates unit vector u by angle toward the part of hint orthogonal to u."""
  w = hint - np.dot(hint, u) * u
  n = math.sqrt(np.dot(w, w))
  if n < 1e-6:
    return u
  return u * np.cos(angle) + (w / n) * np.sin(angle)


def _unit(v):
  return v / math.sqrt(np.dot(v, v))


def _cross(a, b):
  return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def build_figure(pose: Pose, rng: np.random.Generator) -> Figure:
  """Poses a skeleton with per-person proportions (height 1) in the body frame."""
  jit = rng.uniform(0.92, 1.08, 10).tolist()
  torso, head_len, upper_arm, forearm, thigh, shin, sho_half, hip_half = (
      b * f for b, f in zip((0.30, 0.18, 0.17, 0.15, 0.245, 0.245, 0.105, 0.072), jit))
  build = 0.8 + 0.5 * (jit[8] - 0.92) / 0.16

  pts = np.zeros((len(POINT_NAMES) + NUM_TORSO_HULL, 3))
  rt = _rot_z(pose.side_bend) @ _rot_x(pose.lean) @ _rot_y(pose.twist)
  pts[PT['neck']] = rt @ np.array([0.0, torso, 0.0])
  for k, side, tag in ((0, 1.0, 'left'), (1, -1.0, 'right')):
    hip = np.array([side * hip_half, 0.0, 0.0])
    pts[PT[f'{tag}_hip']] = hip
    abd, flex, knee = pose.legs[k]
    thigh_dir = _limb_dir(side, abd, flex)
    pts[PT[f'{tag}_knee']] = hip + thigh * thigh_dir
    shin_dir = _bend(thigh_dir, _unit(np.array([0.0, -1.0, -1.0])), knee)
    ankle = pts[PT[f'{tag}_knee']] + shin * shin_dir
    pts[PT[f'{tag}_ankle']] = ankle
    pts[PT[f'{tag}_toe']] = ankle + np.array([side * 0.012, -0.025, 0.075])

    sho = pts[PT['neck']] + rt @ np.array([side * sho_half, -0.035, 0.0])
    pts[PT[f'{tag}_shoulder']] = sho
    abd, flex, elbow, skew = pose.arms[k]
    ua_dir = rt @ _limb_dir(side, abd, flex)
    elb = sho + upper_arm * ua_dir
    pts[PT[f'{tag}_elbow']] = elb
    hint = rt @ _unit(np.array([side * np.tan(skew), 1.0, 1.0]))
    fa_dir = _bend(ua_dir, hint, elbow)
    pts[PT[f'{tag}_wrist']] = elb + forearm * fa_dir
    pts[PT[f'{tag}_hand']] = elb + (forearm + 0.035) * fa_dir

  head_dir = rt @ _unit(np.array([np.tan(pose.head_side), 1.0, np.tan(pose.head_fwd)]))
  face = rt @ _rot_y(pose.head_yaw) @ np.array([0.0, 0.0, 1.0])
  face = _unit(face - np.dot(face, head_dir) * head_dir)
  left = _cross(head_dir, face)  # +X at rest: the person's left
  neck = pts[PT['neck']]
  hc = neck + 0.11 * head_len / 0.18 * head_dir
  pts[PT['head']] = neck + head_len * head_dir
  pts[PT['head_center']] = hc
  pts[PT['hair_center']] = hc + 0.03 * head_dir - 0.03 * face
  pts[PT['nose']] = hc + 0.062 * face - 0.006 * head_dir
  pts[PT['left_eye']] = hc + 0.046 * face + 0.025 * left + 0.012 * head_dir
  pts[PT['right_eye']] = hc + 0.046 * face - 0.025 * left + 0.012 * head_dir
  pts[PT['left_ear']] = hc + 0.058 * left
  pts[PT['right_ear']] = hc - 0.058 * left
  pts[PT['mouth_left']] = hc + 0.05 * face - 0.03 * head_dir + 0.012 * left
  pts[PT['mouth_right']] = hc + 0.05 * face - 0.03 * head_dir - 0.012 * left
  pts[PT['pelvis']] = 0.0
  pts[PT['seam_top']] = neck + rt @ np.array([0.0, -0.03, 0.06 * build])
  pts[PT['seam_bottom']] = rt @ np.array([0.0, 0.06, 0.062 * build])

  # Torso outline as a hull of chest, waist and pelvis points with some depth, so a profile
  # view still shows a body of plausible thickness.
  zs = (0.05 * build, -0.045 * build)
  chest = np.array([(sd * (sho_half + 0.015), -0.04, z) for sd in (1.0, -1.0) for z in zs])
  waist = np.array([(sd * 0.085 * build, 0.14, z) for sd in (1.0, -1.0) for z in zs])
  hips = np.array([(sd * (hip_half + 0.035 * build), -0.03, z) for sd in (1.0, -1.0) for z in zs])
  pts[len(POINT_NAMES):] = np.concatenate([neck + chest @ rt.T, waist @ rt.T, hips])
  return Figure(points=pts, head_dir=head_dir, face_dir=face, left_dir=left, build=build)


def project(fig: Figure, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
  """Orthographic view after yaw and in-plane roll: (uv [P, 2] with y down, depth [P], + = near)."""
  world = fig.points @ _rot_y(pose.yaw).T
  uv = np.stack([world[:, 0], -world[:, 1]], axis=1)
  c, s = np.cos(pose.roll), np.sin(pose.roll)
  uv = uv @ np.array([[c, -s], [s, c]]).T
  return uv, world[:, 2]


def view_dir(v: np.ndarray, pose: Pose) -> np.ndarray:
  """A body-frame direction in camera space (z > 0 points toward the camera)."""
  return _rot_y(pose.yaw) @ v


LIMBS = _LIMBS
