"""Skeleton drawing with OpenCV (`litepose predict`).

Joint and limb colours by side (left / right / centre, from the joint names), limbs from the joint
set's skeleton, a label near each person's head (its index in the image's results and its score);
line widths scale with the image size. `draw_prediction` is what `litepose predict` writes: small
images are upscaled first so that the skeletons and labels are legible, and people below a person
score are left out.
"""
from __future__ import annotations

import cv2
import numpy as np

from litepose_jax.joints import JointSet

# RGB colours: left joints orange, right joints blue, centre green.
SIDE_COLORS = {'left': (255, 140, 0), 'right': (30, 144, 255), 'center': (50, 205, 50)}
# A person's score is the mean of its joints' heatmap values. A model that has found the people in
# an image also returns stray groups of a few weak joints: on the quickstart XS model's val images
# (2026-12-02) the people scored 0.65-0.78 and the strays 0.007-0.11; drawn, the strays' labels
# cover the real people's. The results json keeps everyone.
MIN_PERSON_SCORE = 0.2
# Drawings of smaller images are upscaled to this long side (px): on a 128-px image a skeleton
# is a few pixels wide and its label unreadable.
MIN_LONG_SIDE = 512


def _limb_side(joint_set: JointSet, a: int, b: int) -> str:
  sa, sb = joint_set.side(a), joint_set.side(b)
  return sa if sa == sb else 'center'


def _label_origin(img: np.ndarray, anchor: tuple[int, int], size: tuple[int, int],
                  taken: list[tuple[int, int, int, int]]) -> tuple[int, int]:
  """Bottom-left corner for a text box of size (w, h) at anchor, moved down past the boxes in
  `taken` (x0, y0, x1, y1) that it would cover; the chosen box is appended to `taken`."""
  (tw, th), (x, y) = size, anchor
  y = max(y, th + 2)
  for _ in range(len(taken) + 1):
    box = (x, y - th - 2, x + tw, y + 2)
    hit = [t for t in taken if box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3]]
    if not hit:
      break
    y = max(t[3] for t in hit) + th + 2
  y = min(y, img.shape[0] - 2)
  taken.append((x, y - th - 2, x + tw, y + 2))
  return x, y


def _draw_person(img: np.ndarray, pose: np.ndarray, joint_set: JointSet, label: str,
                 threshold: float, taken: list | None = None) -> None:
  """Draws one person (pose [J, 3]) and its label on img in place; labels avoid the boxes in
  `taken` (those of the people drawn before)."""
  h, w = img.shape[:2]
  thick = max(1, int(round(min(h, w) / 200)))
  radius = thick + 1
  ok = pose[:, 2] > threshold
  if not ok.any():
    return
  pts = np.round(pose[:, :2]).astype(int)
  for a, b in joint_set.skeleton:
    if ok[a] and ok[b]:
      cv2.line(img, tuple(map(int, pts[a])), tuple(map(int, pts[b])),
               SIDE_COLORS[_limb_side(joint_set, a, b)], thick, cv2.LINE_AA)
  for j in np.flatnonzero(ok):
    cv2.circle(img, tuple(map(int, pts[j])), radius, SIDE_COLORS[joint_set.side(j)], -1,
               cv2.LINE_AA)
  head = [j for j, name in enumerate(joint_set.names) if name in ('head', 'nose')]
  top = head[0] if head and ok[head[0]] else int(np.flatnonzero(ok)[np.argmin(pose[ok, 1])])
  x, y = pts[top]
  scale = 0.4 * thick
  size = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick + 1)[0]
  origin = _label_origin(img, (int(x) + radius, int(y) - 2 * radius), size,
                         [] if taken is None else taken)
  # A white halo under black text: readable on dark and light backgrounds.
  cv2.putText(img, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick + 1,
              cv2.LINE_AA)
  cv2.putText(img, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, thick - 1),
              cv2.LINE_AA)


def draw_poses(image: np.ndarray, poses: np.ndarray, joint_set: JointSet, *,
               scores: np.ndarray | None = None, threshold: float = 0.1,
               ids: list | None = None) -> np.ndarray:
  """Copy of RGB uint8 image [H, W, 3] with poses [N, J, 3] (x, y, value) drawn on it.

  Joints whose value is <= threshold are not drawn (nor their limbs). Each person is labelled
  with ids[n] (default n) and, with scores [N], its score.
  """
  img = np.ascontiguousarray(image, np.uint8).copy()
  poses = np.asarray(poses, np.float32)
  if poses.size and (poses.ndim != 3 or poses.shape[1] != joint_set.num_joints):
    raise ValueError(f'poses must be [N, {joint_set.num_joints}, 3] for joint set '
                     f'{joint_set.name}, got {poses.shape}')
  taken: list[tuple[int, int, int, int]] = []  # label boxes drawn so far: none covers another
  for n, pose in enumerate(poses):
    label = str(ids[n] if ids is not None else n)
    if scores is not None:
      label += f' {float(scores[n]):.2f}'
    _draw_person(img, pose, joint_set, label, threshold, taken)
  return img


def upscale(image: np.ndarray, poses: np.ndarray,
            min_long_side: int = MIN_LONG_SIDE) -> tuple[np.ndarray, np.ndarray]:
  """(image, poses [N, J, 3]) resized so that the long side is at least min_long_side px.

  Larger images are returned as they are. Keypoints move with the pixel centres.
  """
  h, w = image.shape[:2]
  k = min_long_side / max(h, w)
  if k <= 1.0:
    return image, poses
  size = (int(round(w * k)), int(round(h * k)))
  big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
  poses = np.array(poses, np.float32)  # a copy
  if poses.size:
    poses[..., 0] = (poses[..., 0] + 0.5) * size[0] / w - 0.5
    poses[..., 1] = (poses[..., 1] + 0.5) * size[1] / h - 0.5
  return big, poses


def draw_prediction(image: np.ndarray, poses: np.ndarray, scores: np.ndarray,
                    joint_set: JointSet, *, threshold: float = 0.1,
                    min_score: float = MIN_PERSON_SCORE,
                    min_long_side: int = MIN_LONG_SIDE) -> np.ndarray:
  """The picture `litepose predict` writes: RGB image [H, W, 3] upscaled to a long side of at
  least min_long_side, with the people whose score is >= min_score (labelled with their index
  among all people of the image, as in the results json)."""
  scores = np.asarray(scores, np.float32)
  keep = np.flatnonzero(scores >= min_score)
  big, moved = upscale(image, np.asarray(poses, np.float32)[keep], min_long_side)
  return draw_poses(big, moved, joint_set, scores=scores[keep], threshold=threshold,
                    ids=[int(i) for i in keep])
