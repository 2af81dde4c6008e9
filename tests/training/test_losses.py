"""Loss tests against hand-computed values and a per-person loop like the official one."""
import math

import numpy as np
import pytest

from litepose_jax.errors import UserError
from litepose_jax.training import losses

H, W, J = 2, 3, 2


def _tags(values):
  """[1, H, W, J] tag map whose (k, y, x) entry is values[(k, y, x)] (else 0)."""
  t = np.zeros((1, H, W, J), np.float32)
  for (k, y, x), v in values.items():
    t[0, y, x, k] = v
  return t


def _joints(people, max_people=4):
  """[1, P, J, 2]: people is a list of lists of (k, y, x) visible joints."""
  out = np.zeros((1, max_people, J, 2), np.int32)
  for p, joints in enumerate(people):
    for s, (k, y, x) in enumerate(joints):
      out[0, p, s] = (k * H * W + y * W + x, 1)
  return out


def test_ae_no_people_is_zero():
  push, pull = losses.ae_loss(_tags({(0, 0, 0): 5.0}), _joints([]))
  assert float(push[0]) == 0.0 and float(pull[0]) == 0.0


def test_ae_one_person():
  tags = _tags({(0, 0, 0): 1.0, (1, 1, 2): 3.0})
  push, pull = losses.ae_loss(tags, _joints([[(0, 0, 0), (1, 1, 2)]]))
  # mean 2; pull = ((1-2)^2 + (3-2)^2) / 2 = 1; push needs two people.
  assert float(pull[0]) == pytest.approx(1.0)
  assert float(push[0]) == 0.0


@pytest.mark.parametrize('kind,expected_push', [('exp', 0.5 * math.exp(-2.25)), ('max', 0.0)])
def test_ae_two_people(kind, expected_push):
  tags = _tags({(0, 0, 0): 1.0, (1, 1, 2): 3.0, (0, 1, 1): 0.5})
  # Person 3 has no visible joints and must be ignored entirely.
  people = [[(0, 0, 0), (1, 1, 2)], [(0, 1, 1)], []]
  push, pull = losses.ae_loss(tags, _joints(people), kind)
  # pull = (1 + 0) / 2; means 2 and 0.5: push = 0.5 * 2 * f(1.5) / (2 * 1) = 0.5 f(1.5).
  assert float(pull[0]) == pytest.approx(0.5)
  assert float(push[0]) == pytest.approx(expected_push, rel=1e-6)


def test_ae_max_close_means():
  tags = _tags({(0, 0, 0): 0.2, (0, 0, 1): 0.5})
  push, _ = losses.ae_loss(tags, _joints([[(0, 0, 0)], [(0, 0, 1)]]), 'max')
  assert float(push[0]) == pytest.approx(0.5 * 2 * 0.7 / 2)


def _reference(tags, joints, kind):
  """The per-image loop of official lib/core/loss.py (AELoss.singleTagLoss), in numpy."""
  flat = np.transpose(tags, (0, 3, 1, 2)).reshape(tags.shape[0], -1)
  pushes, pulls = [], []
  for b in range(tags.shape[0]):
    means, pull = [], 0.0
    for person in joints[b]:
      t = [flat[b, i] for i, v in person if v > 0]
      if not t:
        continue
      m = np.mean(t)
      means.append(m)
      pull += np.mean((np.array(t) - m) ** 2)
    n = len(means)
    pulls.append(pull / n if n else 0.0)
    if n < 2:
      pushes.append(0.0)
      continue
    m = np.array(means)
    d = m[:, None] - m[None, :]
    f = np.exp(-d ** 2) if kind == 'exp' else np.maximum(1 - np.abs(d), 0)
    pushes.append(0.5 * (f.sum() - n) / (n * (n - 1)))
  return np.array(pushes), np.array(pulls)


@pytest.mark.parametrize('kind', ['exp', 'max'])
def test_ae_many_people_batch_matches_loop(kind):
  rng = np.random.default_rng(0)
  b, r, j, p = 3, 8, 5, 12
  tags = rng.normal(size=(b, r, r, j)).astype(np.float32)
  joints = np.zeros((b, p, j, 2), np.int32)
  for bi in range(b):
    for pi in range(rng.integers(0, p + 1)):
      nvis = rng.integers(0, j + 1)
      ks = np.sort(rng.choice(j, nvis, replace=False))
      for s, k in enumerate(ks):
        joints[bi, pi, s] = (k * r * r + rng.integers(r) * r + rng.integers(r), 1)
  push, pull = losses.ae_loss(tags, joints, kind)
  ref_push, ref_pull = _reference(tags, joints, kind)
  np.testing.assert_allclose(np.asarray(push), ref_push, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(np.asarray(pull), ref_pull, rtol=1e-5, atol=1e-7)


def test_heatmap_loss_masked_pixels_stay_in_denominator():
  pred = np.zeros((2, 2, 2, 1), np.float32)
  gt = np.zeros_like(pred)
  gt[0, 0, 0, 0] = 2.0  # squared error 4, unmasked
  gt[0, 1, 1, 0] = 3.0  # masked out
  gt[1, 0, 1, 0] = 1.0
  mask = np.ones((2, 2, 2), np.float32)
  mask[0, 1, 1] = 0.0
  out = losses.heatmap_loss(pred, gt, mask)
  np.testing.assert_allclose(np.asarray(out), [4.0 / 4, 1.0 / 4])


def test_litepose_loss_factors_and_total():
  rng = np.random.default_rng(1)
  j, r = 2, 4
  out4 = rng.normal(size=(2, r, r, 2 * j)).astype(np.float32)
  out2 = rng.normal(size=(2, 2 * r, 2 * r, j)).astype(np.float32)
  batch = {'heatmaps4': np.zeros((2, r, r, j), np.float32),
           'heatmaps2': np.zeros((2, 2 * r, 2 * r, j), np.float32),
           'masks4': np.ones((2, r, r), np.float32), 'masks2': np.ones((2, 2 * r, 2 * r), np.float32),
           'joints': np.array([[[[0, 1], [r * r + 5, 1]], [[3, 1], [0, 0]]]] * 2, np.int32)}
  parts = losses.litepose_loss(out4, out2, batch, num_joints=j)
  np.testing.assert_allclose(np.asarray(parts['heatmap4']), np.mean(out4[..., :j] ** 2, axis=(1, 2, 3)),
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(parts['heatmap2']), np.mean(out2 ** 2, axis=(1, 2, 3)), rtol=1e-6)
  push, pull = _reference(out4[..., j:], batch['joints'], 'exp')
  np.testing.assert_allclose(np.asarray(parts['push']), 1e-3 * push, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(parts['pull']), 1e-3 * pull, rtol=1e-5)
  total = sum(np.asarray(parts[k]) for k in ('heatmap4', 'heatmap2', 'push', 'pull'))
  np.testing.assert_allclose(np.asarray(parts['total']), total, rtol=1e-6)


def test_bad_inputs_raise():
  with pytest.raises(UserError, match='ae loss type'):
    losses.ae_loss(_tags({}), _joints([]), 'sum')
  with pytest.raises(ValueError, match='mask shape'):
    losses.heatmap_loss(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)), np.zeros((1, 3, 2)))
