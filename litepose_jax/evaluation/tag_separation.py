"""How well the associative-embedding tags tell people apart, read at the ground-truth joints.

Grouping (inference/parser.py) accepts a joint for a person only when its tag is within tag_threshold (1.0)
of the person's mean tag, and prefers the person whose rounded distance is smallest. When the tags
of different people in one image are closer than that, people get merged however good the
heatmaps are: the AP stalls while the heatmap loss keeps falling. These numbers make that visible
during training (logged as eval/tag_gap, eval/tag_spread, eval/tag_merged).
"""
from __future__ import annotations

import numpy as np


def person_tags(tags: np.ndarray, people: np.ndarray) -> list[np.ndarray]:
  """Tag vectors [n_p, T] of each person's visible joints inside the map.

  tags [h, w, J, T] (or [h, w, J]); people [P, J, 3] with x, y in map pixels and visibility.
  Joints are read at the truncated pixel, like the official refine reads tags.
  """
  tags = np.asarray(tags, np.float32)
  if tags.ndim == 3:
    tags = tags[..., None]
  h, w, num_joints = tags.shape[:3]
  people = np.asarray(people, np.float32).reshape(-1, num_joints, 3)
  out = []
  for p in people:
    x, y = p[:, 0].astype(np.int64), p[:, 1].astype(np.int64)
    keep = (p[:, 2] > 0) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    out.append(tags[y[keep], x[keep], np.flatnonzero(keep)])
  return out


def tag_separation(images: list[list[np.ndarray]], threshold: float = 1.0) -> dict:
  """Summary of per-image person tags (lists of [n_p, T] from person_tags).

  Returns {'tag_spread': median distance of a joint's tag to its person's mean tag,
  'tag_gap': median distance between the mean tags of two people in the same image,
  'tag_merged': fraction of those pairs closer than threshold, 'tag_pairs': how many pairs};
  spread / gap / merged are NaN when there is nothing to measure.
  """
  spread, gaps = [], []
  for people in images:
    means = []
    for t in people:
      if len(t):
        m = t.mean(axis=0)
        means.append(m)
        spread.append(np.linalg.norm(t - m, axis=1))
    if len(means) >= 2:
      m = np.stack(means)
      d = np.linalg.norm(m[:, None] - m[None], axis=-1)
      gaps.append(d[np.triu_indices(len(means), 1)])
  spread = np.concatenate(spread) if spread else np.zeros(0)
  gaps = np.concatenate(gaps) if gaps else np.zeros(0)
  nan = float('nan')
  return {'tag_spread': float(np.median(spread)) if spread.size else nan,
          'tag_gap': float(np.median(gaps)) if gaps.size else nan,
          'tag_merged': float(np.mean(gaps < threshold)) if gaps.size else nan,
          'tag_pairs': int(gaps.size)}


def collapse_warning(summary: dict, threshold: float = 1.0) -> str | None:
  """A one-line warning when most same-image pairs of people have tags closer than threshold."""
  merged = summary.get('tag_merged', float('nan'))
  if not np.isfinite(merged) or merged <= 0.5:
    return None
  return (f'warning: the tags of {merged:.0%} of the {summary["tag_pairs"]} pairs of people in '
          f'the same evaluated image are closer than the grouping threshold {threshold:g} (median gap '
          f'{summary["tag_gap"]:.2f}): grouping will merge people. Early in training this is '
          "normal; if it persists, the associative-embedding loss is not separating the tags "
          "(try --config.loss.ae_type=max: its push does not vanish when tags are equal, "
          "'exp''s does)")
