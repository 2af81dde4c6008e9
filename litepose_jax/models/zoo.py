"""`litepose zoo`: the model zoo table, with one forward pass of each model as a smoke check."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.models import arch as arch_lib
from litepose_jax.models import counting
from litepose_jax.models import create_model
from litepose_jax.models import init_variables

# Published accuracy (official README: CrowdPose test AP, COCO val AP), for the table only.
PUBLISHED_AP = {'XS': (49.5, 40.6), 'S': (58.3, 56.8), 'M': (59.9, 59.8), 'L': (61.9, 62.5)}


def add_arguments(parser) -> None:
  parser.add_argument('--size', type=int, default=None,
                      help='run the forward passes at this input side instead of each preset size')
  parser.add_argument('--no-forward', action='store_true', help='print the table only')
  parser.add_argument('--joints', choices=sorted(joints_lib.JOINT_SETS), default='crowdpose',
                      help='joint set used for the forward passes')


def run(args) -> int:
  js = joints_lib.get_joint_set(args.joints)
  header = (f'{"model":<5} {"input":>5} {"params (14 / 17 joints)":>24} {"GMACs true":>10} '
            f'{"GMACs paper":>11} {"AP CrowdPose/COCO":>18}')
  print(header)
  print('-' * len(header))
  for name in arch_lib.PRESET_NAMES:
    m14 = create_model(name, 14, depthwise_impl='lax')
    size = m14.arch.img_size
    c14 = counting.count(m14, size)
    c17 = counting.count(create_model(name, 17, depthwise_impl='lax'), size)
    ap = PUBLISHED_AP[name]
    print(f'{name:<5} {size:>5} {c14.params:>11,} / {c17.params:>10,} {c14.macs("true") / 1e9:>10.3f} '
          f'{c14.macs("paper") / 1e9:>11.3f} {ap[0]:>9.1f} / {ap[1]:<6.1f}')
  if args.no_forward:
    return 0
  print(f'\nforward pass, batch 1, random weights, {js.name} ({js.num_joints} joints), '
        f'backend {jax.default_backend()}:')
  for name in arch_lib.PRESET_NAMES:
    model = create_model(name, js.num_joints)
    size = args.size or model.arch.img_size
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, size, size, 3)), jnp.float32)
    variables = init_variables(model, size)
    fwd = jax.jit(lambda v, x, model=model: model.apply(v, x))
    t0 = time.perf_counter()
    outs = jax.block_until_ready(fwd(variables, x))
    t1 = time.perf_counter()
    jax.block_until_ready(fwd(variables, x))
    t2 = time.perf_counter()
    if not all(bool(jnp.isfinite(o).all()) for o in outs):
      raise RuntimeError(f'{name}: forward pass produced non-finite values')
    shapes = ', '.join(str(tuple(o.shape)) for o in outs)
    print(f'  {name:<3} @{size}: outputs {shapes}  compile+run {t1 - t0:.1f} s, run '
          f'{(t2 - t1) * 1e3:.0f} ms')
  return 0
