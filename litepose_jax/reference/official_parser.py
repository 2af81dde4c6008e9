"""A slow, literal HeatmapParser (loops on purpose): the oracle the fast parser is tested against.

Written from the official lib/core/group.py (HeatmapParser) of LitePose / HigherHRNet, not from
litepose_jax.inference, so that the two can disagree (docs/OFFICIAL.md, "Inference and grouping").

Follows the official data flow: det [J, H, W], tag [J, H, W, T]; NMS by 5x5 max-pool; top-k of the
whole NMS'd map; match_by_tag with a dict keyed by the first tag value; Hungarian on the
1e10-padded cost matrix; adjust; scores; refine over every joint of every person.
Documented deviations (shared with the fast parser): top-k ties ordered by pixel index; scipy's
Hungarian solver instead of munkres.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment

# The official 1-based visiting order, spelt out here on purpose (not read from joints.py): an
# oracle that shared the library's order could not catch a wrong one.
JOINT_ORDER = [i - 1 for i in [1, 2, 3, 4, 5, 6, 7, 12, 13, 8, 9, 10, 11, 14, 15, 16, 17]]


def _nms(det):
  j, h, w = det.shape
  pad = np.full((j, h + 4, w + 4), -np.inf, np.float32)
  pad[:, 2:-2, 2:-2] = det
  pooled = np.full_like(det, -np.inf)
  for dy in range(5):
    for dx in range(5):
      pooled = np.maximum(pooled, pad[:, dy:dy + h, dx:dx + w])
  return det * (pooled == det)


def _top_k(det, tag, k):
  j, h, w = det.shape
  nmsed = _nms(det).reshape(j, -1)
  val_k = np.zeros((j, k), np.float32)
  ind = np.zeros((j, k), np.int64)
  for jj in range(j):
    order = np.lexsort((np.arange(h * w), -nmsed[jj]))[:k]
    ind[jj] = order
    val_k[jj] = nmsed[jj][order]
  tag_flat = tag.reshape(j, h * w, -1)
  tag_k = np.stack([tag_flat[jj][ind[jj]] for jj in range(j)])
  loc_k = np.stack([ind % w, ind // w], axis=2)
  return tag_k, loc_k, val_k


def _match_by_tag(tag_k, loc_k, val_k, num_joints, max_people, det_thr, tag_thr):
  default = np.zeros((num_joints, 3 + tag_k.shape[2]))
  joint_dict, tag_dict = {}, {}
  for i in range(num_joints):
    idx = JOINT_ORDER[i]
    tags = tag_k[idx]
    joints = np.concatenate((loc_k[idx], val_k[idx, :, None], tags), 1)
    mask = joints[:, 2] > det_thr
    tags, joints = tags[mask], joints[mask]
    if joints.shape[0] == 0:
      continue
    if i == 0 or len(joint_dict) == 0:
      for tag, joint in zip(tags, joints):
        key = tag[0]
        joint_dict.setdefault(key, np.copy(default))[idx] = joint
        tag_dict[key] = [tag]
    else:
      grouped_keys = list(joint_dict.keys())[:max_people]
      grouped_tags = [np.mean(tag_dict[g], axis=0) for g in grouped_keys]
      diff = joints[:, None, 3:] - np.array(grouped_tags)[None, :, :]
      diff_normed = np.linalg.norm(diff, ord=2, axis=2)
      diff_saved = np.copy(diff_normed)
      diff_normed = np.round(diff_normed) * 100 - joints[:, 2:3]
      num_added, num_grouped = diff.shape[0], diff.shape[1]
      if num_added > num_grouped:
        diff_normed = np.concatenate(
            (diff_normed, np.zeros((num_added, num_added - num_grouped)) + 1e10), axis=1)
      rows, cols = linear_sum_assignment(diff_normed)
      for row, col in zip(rows, cols):
        if row < num_added and col < num_grouped and diff_saved[row][col] < tag_thr:
          key = grouped_keys[col]
          joint_dict[key][idx] = joints[row]
          tag_dict[key].append(tags[row])
        else:
          key = tags[row][0]
          joint_dict.setdefault(key, np.copy(default))[idx] = joints[row]
          tag_dict[key] = [tags[row]]
  return np.array([joint_dict[k] for k in joint_dict]).astype(np.float32)


def _adjust(people, det):
  for p in people:
    for joint_id, joint in enumerate(p):
      if joint[2] > 0:
        y, x = joint[0:2]  # the official names are swapped: y holds x, x holds y
        xx, yy = int(x), int(y)
        tmp = det[joint_id]
        if tmp[xx, min(yy + 1, tmp.shape[1] - 1)] > tmp[xx, max(yy - 1, 0)]:
          y += 0.25
        else:
          y -= 0.25
        if tmp[min(xx + 1, tmp.shape[0] - 1), yy] > tmp[max(0, xx - 1), yy]:
          x += 0.25
        else:
          x -= 0.25
        p[joint_id, 0:2] = (y + 0.5, x + 0.5)
  return people


def _refine(det, tag, keypoints):
  tags = []
  for i in range(keypoints.shape[0]):
    if keypoints[i, 2] > 0:
      x, y = keypoints[i][:2].astype(np.int32)
      tags.append(tag[i, y, x])
  prev_tag = np.mean(tags, axis=0)
  ans = []
  for i in range(keypoints.shape[0]):
    tmp = det[i, :, :]
    tt = (((tag[i, :, :] - prev_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5)
    tmp2 = tmp - np.round(tt)
    y, x = np.unravel_index(np.argmax(tmp2), tmp.shape)
    xx, yy = x, y
    val = tmp[y, x]
    x = x + 0.5
    y = y + 0.5
    if tmp[yy, min(xx + 1, tmp.shape[1] - 1)] > tmp[yy, max(xx - 1, 0)]:
      x += 0.25
    else:
      x -= 0.25
    if tmp[min(yy + 1, tmp.shape[0] - 1), xx] > tmp[max(0, yy - 1), xx]:
      y += 0.25
    else:
      y -= 0.25
    ans.append((x, y, val))
  ans = np.array(ans)
  for i in range(det.shape[0]):
    if ans[i, 2] > 0 and keypoints[i, 2] == 0:
      keypoints[i, :2] = ans[i, :2]
      keypoints[i, 2] = ans[i, 2]
  return keypoints


def reference_parse(heatmaps, tags, max_people=30, detection_threshold=0.1, tag_threshold=1.0,
                    adjust=True, refine=True):
  """heatmaps [H, W, J], tags [H, W, J, T] -> (poses [N, J, 3], scores [N]) the official way."""
  det = np.ascontiguousarray(np.transpose(heatmaps, (2, 0, 1)), np.float32)
  tag = np.asarray(tags, np.float32)
  if tag.ndim == 3:
    tag = tag[..., None]
  tag = np.ascontiguousarray(np.transpose(tag, (2, 0, 1, 3)))
  num_joints = det.shape[0]
  tag_k, loc_k, val_k = _top_k(det, tag, max_people)
  people = _match_by_tag(tag_k, loc_k, val_k, num_joints, max_people, detection_threshold,
                         tag_threshold)
  if people.size == 0:
    return np.zeros((0, num_joints, 3), np.float32), np.zeros((0,), np.float32)
  if adjust:
    people = _adjust(people, det)
  scores = np.array([p[:, 2].mean() for p in people], np.float32)
  if refine:
    people = np.stack([_refine(det, tag, p) for p in people])
  return people[:, :, :3], scores
