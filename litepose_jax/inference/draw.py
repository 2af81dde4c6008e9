"""Skeleton drawing with OpenCV (also used by training summaries).

Joint and limb colours by side (left / right / centre, from the joint names), limbs from the joint
set's skeleton, a person id near the head; line widths scale with the image size.
"""
from __future__ import annotations

import cv2
import numpy as np

from litepose_jax.joints import JointSet

# RGB colours: left joints orange, right joints blue, centre green.
SIDE_COLORS = {'left': (255, 140, 0), 'right': (30, 144, 255), 'center': (50, 205, 50)}


def _limb_side(joint_set: JointSet, a: int, b: int) -> str:
  sa, sb = joint_set.side(a), joint_set.side(b)
  return sa if sa == sb else 'center'


def draw_poses(image: np.ndarray, poses: np.ndarray, joint_set: JointSet, *,
               scores: np.ndarray | None = None, threshold: float = 0.1,
               ids: list | None = None) -> np.ndarray:
  """Copy of RGB uint8 image [H, W, 3] with poses [N, J, 3] (x, y, value) drawn on it.

  Joints whose value is <= threshold are not drawn (nor their limbs).
  """
  img = np.ascontiguousarray(image, np.uint8).copy()
  poses = np.asarray(poses, np.float32)
  if poses.size and (poses.ndim != 3 or poses.shape[1] != joint_set.num_joints):
    raise ValueError(f'poses must be [N, {joint_set.num_joints}, 3] for joint set '
                     f'{joint_set.name}, got {poses.shape}')
  h, w = img.shape[:2]
  thick = max(1, int(round(min(h, w) / 200)))
  radius = thick + 1
  for n, pose in enumerate(poses):
    ok = pose[:, 2] > threshold
    pts = np.round(pose[:, :2]).astype(int)
    for a, b in joint_set.skeleton:
      if ok[a] and ok[b]:
        cv2.line(img, tuple(map(int, pts[a])), tuple(map(int, pts[b])),
                 SIDE_COLORS[_limb_side(joint_set, a, b)], thick, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
      cv2.circle(img, tuple(map(int, pts[j])), radius, SIDE_COLORS[joint_set.side(j)], -1,
                 cv2.LINE_AA)
    if ok.any():
      label = str(ids[n] if ids is not None else n)
      if scores is not None:
        label += f' {float(scores[n]):.2f}'
      head = [j for j, name in enumerate(joint_set.names) if name in ('head', 'nose')]
      top = head[0] if head and ok[head[0]] else int(np.flatnonzero(ok)[np.argmin(pose[ok, 1])])
      x, y = pts[top]
      scale = 0.4 * thick
      cv2.putText(img, label, (int(x) + radius, max(int(y) - 2 * radius, 10)),
                  cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick + 1, cv2.LINE_AA)
      cv2.putText(img, label, (int(x) + radius, max(int(y) - 2 * radius, 10)),
                  cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, thick - 1), cv2.LINE_AA)
  return img
