"""Ground-truth-like network maps built from known people (shared by inference tests and benches)."""
import cv2
import numpy as np

from litepose_jax.data.targets import render_heatmaps


def random_people(rng, num_people, num_joints, size, min_dist=4, margin=2):
  """[P, J, 3] integer joint positions (visibility 1) with same-type joints >= min_dist apart."""
  h, w = size
  people = np.zeros((num_people, num_joints, 3), np.float32)
  for j in range(num_joints):
    placed = []
    for p in range(num_people):
      for _ in range(1000):
        xy = rng.integers([margin, margin], [w - margin, h - margin])
        if all(np.abs(xy - q).max() >= min_dist for q in placed):
          break
      else:
        raise RuntimeError('could not place joints; use a larger map')
      placed.append(xy)
      people[p, j, :2] = xy + 0.5  # pixel centres: rendered at int(x), decoded near x
  people[..., 2] = 1
  return people


def clustered_people(rng, num_people, num_joints, size, spread=12):
  """People whose joints lie in a small box each, boxes overlapping (crowd-like), same-type >= 4 apart."""
  h, w = size
  people = np.zeros((num_people, num_joints, 3), np.float32)
  placed = [[] for _ in range(num_joints)]
  for p in range(num_people):
    centre = rng.integers([spread, spread], [w - spread, h - spread])
    for j in range(num_joints):
      for _ in range(10000):
        xy = np.clip(centre + rng.integers(-spread, spread + 1, 2), 1, [w - 2, h - 2])
        if all(np.abs(xy - q).max() >= 4 for q in placed[j]):
          break
      else:
        raise RuntimeError('could not place joints; use a larger map')
      placed[j].append(xy)
      people[p, j, :2] = xy + 0.5  # pixel centres: rendered at int(x), decoded near x
  people[..., 2] = 1
  return people


def render_maps(people, size, tag_values=None, box_margin=3):
  """(heatmaps [H, W, J], tags [H, W, J, 1]) for people [P, J, 3] (square size x size or (h, w)).

  Each person's tag value fills its joints' bounding box (+margin) in every joint channel, then a
  3x3 patch around each visible joint, so that peaks always carry their own person's tag.
  """
  h, w = (size, size) if np.isscalar(size) else size
  num_people, num_joints = people.shape[:2]
  side = max(h, w)
  heat = render_heatmaps(people, side)[:h, :w]
  if tag_values is None:
    tag_values = 2.0 * np.arange(1, num_people + 1)
  tags = np.zeros((h, w, num_joints, 1), np.float32)
  for p in range(num_people):
    vis = people[p, :, 2] > 0
    if not vis.any():
      continue
    x0, y0 = np.maximum(people[p, vis, :2].min(0).astype(int) - box_margin, 0)
    x1, y1 = people[p, vis, :2].max(0).astype(int) + box_margin + 1
    tags[y0:y1, x0:x1] = tag_values[p]
  for p in range(num_people):
    for j in range(num_joints):
      if people[p, j, 2] > 0:
        x, y = people[p, j, :2].astype(int)
        tags[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2, j] = tag_values[p]
  return heat, tags


def match_people(decoded, truth):
  """Index of the decoded person nearest to each true person (by mean joint distance)."""
  vis = truth[..., 2] > 0
  d = np.linalg.norm(decoded[None, :, :, :2] - truth[:, None, :, :2], axis=-1)
  d = np.where(vis[:, None, :], d, 0).sum(-1) / np.maximum(vis.sum(-1), 1)[:, None]
  return d.argmin(axis=1)


def assert_same_poses(fast, slow):
  """Both (poses, scores) pairs hold the same people in the same order."""
  (p1, s1), (p2, s2) = fast, slow
  assert p1.shape == p2.shape
  np.testing.assert_allclose(p1, p2, atol=1e-4)
  np.testing.assert_allclose(s1, s2, atol=1e-5)


def smooth_random(rng, shape, scale):
  """Uniform noise [H, W, C] blurred per channel with a Gaussian of sigma `scale`."""
  x = rng.random(shape).astype(np.float32)
  return np.stack([cv2.GaussianBlur(x[..., c], (0, 0), scale) for c in range(shape[-1])], -1)


def people_maps(rng, num_people, size, missing, tag_dim=1, noise=0.02):
  """Clustered people with `missing` of the joints invisible; flip-like tags repeat the value."""
  people = clustered_people(rng, num_people, 14, size, spread=12)
  people[..., 2] = rng.random(people.shape[:2]) >= missing
  heat, tags = render_maps(people, size)
  heat = heat + rng.normal(0, noise, heat.shape).astype(np.float32)
  tags = np.repeat(tags, tag_dim, axis=-1)
  tags = tags + rng.normal(0, 0.1, tags.shape).astype(np.float32)
  return heat, tags
