"""Super-net training: which sub-nets a step trains, and the step that trains them.

config.supernet (configs/supernet.py) switches the trainer to the weight-shared super-net
(nas/supernet.py). Every global step draws its sub-nets from (config.seed, step) alone, on the
host and identically on every host, and passes them to the jitted step as channel masks (arrays),
so the step compiles once per input resolution and a resumed run draws the same sequence. The
input resolution of a step is drawn by the data stream (data.input_sizes, data/sizes.py), which
renders images, heatmaps (sigma 2 at every size) and joint indices directly at that size.

Policies:
- 'official': one uniformly sampled sub-net per step (official pose_supermobilenet.py
  `random_sample` at every forward; SUPERNET_SPEC.md §3.2);
- 'sandwich': the largest, the smallest and `num_random` sampled sub-nets per step, gradients
  summed (BigNAS); with distill > 0 every sub-net but the largest also regresses the largest
  net's heatmaps (detached): in-place distillation.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import nas
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.training import losses

POLICIES = ('official', 'sandwich')


def enabled(config) -> bool:
  """Whether `config` trains a super-net (it has a supernet section with enabled=True)."""
  return bool(config.get('supernet') and config.supernet.get('enabled', False))


def search_space(config) -> nas.SearchSpace:
  """The SearchSpace of config.supernet.space (official fields; depths per shipped_depths)."""
  s = config.supernet
  space = nas.space_from_json(dict(s.space), 'config.supernet.space')
  if s.get('shipped_depths', False):
    space = nas.SearchSpace(**{**nas.space_to_json(space),
                               'depths': nas.space.SHIPPED_SAMPLER_DEPTHS})
  return space


def check(config) -> None:
  """UserError naming a bad config.supernet field."""
  s = config.supernet
  if s.policy not in POLICIES:
    raise UserError(f'config.supernet.policy must be one of {POLICIES}, got {s.policy!r}')
  if s.policy == 'sandwich' and (not isinstance(s.num_random, int) or s.num_random < 0):
    raise UserError(f'config.supernet.num_random must be an integer >= 0, got {s.num_random!r}')
  if s.distill < 0:
    raise UserError(f'config.supernet.distill must be >= 0, got {s.distill!r}')
  sizes = tuple(config.data.input_sizes or (config.data.input_size,))
  space = search_space(config)
  outside = sorted(set(sizes) - set(space.resolutions))
  if outside:
    raise UserError(f'config.data.input_sizes {sizes}: {outside} not among the search space\'s '
                    f'resolutions {space.resolutions}')


def draw(config, step: int, space: nas.SearchSpace | None = None) -> list[dict]:
  """The sub-nets (official-schema dicts) global step `step` trains: a function of (seed, step).

  Their img_size is the draw of the sub-net only; the step runs at the batch's size. space:
  search_space(config), when the caller has it (the super-net's own)."""
  s = config.supernet
  space = search_space(config) if space is None else space
  seed = int(config.seed)
  if s.policy == 'official':
    return [nas.sample(space, (seed, 7907, step))]
  return ([nas.largest(space), nas.smallest(space)]
          + [nas.sample(space, (seed, 7907, step, i)) for i in range(s.num_random)])


def step_masks(config, supernet: nas.SuperLitePose, step: int) -> list[dict]:
  """The channel masks of draw(config, step) (numpy; the jitted step's third argument)."""
  return [nas.subnet_masks(supernet, a, check=False)
          for a in draw(config, step, supernet.space)]


def _distill_loss(out4, out2, teacher4, teacher2, num_joints: int):
  """Mean squared difference of the heatmaps from the (detached) largest net's: -> scalar."""
  t4 = jax.lax.stop_gradient(teacher4[..., :num_joints])
  t2 = jax.lax.stop_gradient(teacher2)
  return (jnp.mean(jnp.square(out4[..., :num_joints] - t4)) + jnp.mean(jnp.square(out2 - t2)))


def make_loss_fn(model, config, num_joints: int) -> Callable:
  """(params, batch_stats, batch, masks list) -> (summed loss, (mean parts, batch_stats)).

  Sub-nets run one after another on the same batch, each updating the running statistics of its
  active channels; gradients of the summed loss are the sum of the sub-nets' gradients."""
  lc, distill = config.loss, float(config.supernet.distill)
  sandwich = config.supernet.policy == 'sandwich'

  def loss_fn(params, batch_stats, batch, masks_list):
    images = normalize.model_input(batch['image'], jnp)
    total, parts_sum, teacher = 0.0, None, None
    for i, masks in enumerate(masks_list):
      (out4, out2), updates = model.apply({'params': params, 'batch_stats': batch_stats}, images,
                                          masks, train=True, mutable=['batch_stats'])
      batch_stats = updates['batch_stats']
      parts = losses.batch_loss(out4, out2, batch, num_joints, lc)
      loss = parts['total']
      if sandwich and distill > 0:
        if i == 0:
          teacher = (out4, out2)  # the largest net comes first
          parts['distill'] = jnp.zeros(())
        else:
          parts['distill'] = _distill_loss(out4, out2, *teacher, num_joints)
          loss = loss + distill * parts['distill']
      total = total + loss
      parts_sum = parts if parts_sum is None else jax.tree.map(jnp.add, parts_sum, parts)
    # Logged parts: the average sub-net's, comparable with a single net's loss.
    mean_parts = jax.tree.map(lambda v: v / len(masks_list), parts_sum)
    return total, (mean_parts, batch_stats)

  return loss_fn


def masks_for_jit(masks_list: list[dict]) -> list[dict]:
  """The masks as float32 arrays (a fixed pytree structure: one compile per resolution)."""
  return jax.tree.map(lambda m: np.asarray(m, np.float32), masks_list)
