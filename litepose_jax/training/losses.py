"""LitePose / HigherHRNet training losses, vectorised over the batch.

Heatmap loss per image: mean over (H, W, J) of mask * (pred - gt)^2 (masked pixels stay in the
denominator, as in the official code). Associative-embedding loss on the stage-0 tags: pull draws
a person's tags to their mean, push drives the means of different people apart. All functions
return per-image values [B]; the trainer averages over the batch. The per-person loops they replace
are official lib/core/loss.py (HeatmapLoss, AELoss.singleTagLoss); docs/OFFICIAL.md, "Targets and
loss".
"""
from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp

from litepose_jax.errors import UserError

AE_LOSS_TYPES = ('exp', 'max')


def heatmap_loss(pred, gt, mask):
  """Masked MSE per image: pred, gt [B, H, W, J], mask [B, H, W] -> [B]."""
  if pred.shape != gt.shape:
    raise ValueError(f'heatmap prediction {pred.shape} and target {gt.shape} differ in shape')
  if mask.shape != pred.shape[:3]:
    raise ValueError(f'mask shape {mask.shape} does not match the heatmaps {pred.shape[:3]}')
  pred = pred.astype(jnp.float32)
  err = (pred - gt.astype(jnp.float32)) ** 2 * mask.astype(jnp.float32)[..., None]
  return jnp.mean(err, axis=(1, 2, 3))


def ae_loss(tags, joints, loss_type: str = 'exp'):
  """(push [B], pull [B]) of tag maps tags [B, H, W, J] and joints [B, P, J, 2] int.

  joints[b, p, s] = (k * H * W + y * W + x, visible) indexes the tag map flattened as (J, H, W),
  the layout of the official JointsGenerator; slots with visible == 0 are ignored.
  """
  if loss_type not in AE_LOSS_TYPES:
    raise UserError(f'ae loss type (loss.ae_type) must be one of {AE_LOSS_TYPES}, got '
                    f'{loss_type!r}')
  if joints.ndim != 4 or joints.shape[-1] != 2 or joints.shape[0] != tags.shape[0]:
    raise ValueError(f'joints must be [B={tags.shape[0]}, P, J, 2], got {joints.shape}')
  b = tags.shape[0]
  # NHWC -> (J, H, W) flattening so the official indices apply unchanged.
  flat = jnp.transpose(tags.astype(jnp.float32), (0, 3, 1, 2)).reshape(b, -1)
  idx = joints[..., 0].reshape(b, -1)
  vis = (joints[..., 1] > 0).astype(jnp.float32)  # [B, P, S]
  t = jnp.take_along_axis(flat, jnp.clip(idx, 0, flat.shape[1] - 1), axis=1).reshape(vis.shape)
  count = jnp.sum(vis, axis=-1)  # [B, P]
  has = (count > 0).astype(jnp.float32)
  denom = jnp.maximum(count, 1.0)
  mean = jnp.sum(t * vis, axis=-1) / denom  # [B, P]
  pull_p = jnp.sum(vis * (t - mean[..., None]) ** 2, axis=-1) / denom
  num = jnp.sum(has, axis=-1)  # [B]
  pull = jnp.sum(pull_p * has, axis=-1) / jnp.maximum(num, 1.0)
  diff = mean[:, :, None] - mean[:, None, :]
  if loss_type == 'exp':
    sim = jnp.exp(-diff ** 2)
  else:
    sim = jnp.maximum(1.0 - jnp.abs(diff), 0.0)
  pair = has[:, :, None] * has[:, None, :]
  # The diagonal contributes exactly 1 per person, removed by subtracting num.
  total = jnp.sum(sim * pair, axis=(1, 2)) - num
  push = jnp.where(num >= 2, 0.5 * total / jnp.maximum(num * (num - 1.0), 1.0), 0.0)
  return push, pull


def litepose_loss(out4, out2, batch: Mapping, *, num_joints: int, heatmap_factors=(1.0, 1.0),
                  push_factor: float = 1e-3, pull_factor: float = 1e-3, ae_type: str = 'exp'):
  """Per-image loss parts {name: [B]} and their sum 'total' for the two LitePose outputs.

  out4 [B, H/4, W/4, 2J] (J heatmaps then J tags), out2 [B, H/2, W/2, J]; batch holds heatmaps4,
  heatmaps2, masks4, masks2 and joints (see litepose_jax.data.pipeline).
  """
  j = num_joints
  if out4.shape[-1] != 2 * j or out2.shape[-1] != j:
    raise ValueError(f'outputs have {out4.shape[-1]} / {out2.shape[-1]} channels; expected '
                     f'{2 * j} / {j} for {j} joints')
  parts = {
      'heatmap4': heatmap_factors[0] * heatmap_loss(out4[..., :j], batch['heatmaps4'],
                                                     batch['masks4']),
      'heatmap2': heatmap_factors[1] * heatmap_loss(out2, batch['heatmaps2'], batch['masks2']),
  }
  push, pull = ae_loss(out4[..., j:], batch['joints'], ae_type)
  parts['push'] = push_factor * push
  parts['pull'] = pull_factor * pull
  parts['total'] = parts['heatmap4'] + parts['heatmap2'] + parts['push'] + parts['pull']
  return parts


def batch_loss(out4, out2, batch: Mapping, num_joints: int, loss_cfg) -> dict:
  """litepose_loss with config.loss's factors, each part averaged over the batch (as the official
  trainer does): -> {'total', 'heatmap4', 'heatmap2', 'push', 'pull'} scalars."""
  parts = litepose_loss(out4, out2, batch, num_joints=num_joints,
                        heatmap_factors=tuple(loss_cfg.heatmap_factors),
                        push_factor=loss_cfg.push_factor, pull_factor=loss_cfg.pull_factor,
                        ae_type=loss_cfg.ae_type)
  return {k: jnp.mean(v) for k, v in parts.items()}
