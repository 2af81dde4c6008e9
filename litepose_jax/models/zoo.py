"""`litepose zoo`: the model zoo table, with one forward pass of each model as a smoke check."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError
from litepose_jax.models import counting
from litepose_jax.models import create_model
from litepose_jax.models import init_variables

# Published accuracy (CrowdPose test AP, COCO val AP; None: not in the reference files), for the
# table only. LitePose: official README. HigherHRNet-W32: the paper, as NUMBERS.md quotes it. The
# shrinking study: LitePose slide 10 (SUPERNET_SPEC.md §7.1) gives 50.4 / 51.0 / 51.8 / 53.0 mAP
# for "gradually shrinking depth"; paired with the presets in that order (the slide's text layer
# does not pair them unambiguously; the spec's reading, AP rising as blocks go). EfficientHRNet
# H-1: the LitePose README's comparison (SUPERNET_SPEC.md §8.1: 56.3 CrowdPose, 59.2 COCO val);
# H-2..H-4 have no published number in the reference files.
PUBLISHED_AP: dict[str, tuple[float | None, float | None]] = {
    'XS': (49.5, 40.6), 'S': (58.3, 56.8), 'M': (59.9, 59.8), 'L': (61.9, 62.5),
    'higherhrnet-w32': (65.9, 67.1), 'higherhrnet-w48': (None, None),
    'higherhrnet-w16': (50.4, None), 'shrink1': (51.0, None), 'shrink2': (51.8, None),
    'shrink3': (53.0, None),
    'efficienthrnet-h1': (56.3, 59.2), 'efficienthrnet-h2': (None, None),
    'efficienthrnet-h3': (None, None), 'efficienthrnet-h4': (None, None),
}


def _ap(v: float | None) -> str:
  return '-' if v is None else f'{v:.1f}'


def add_arguments(parser) -> None:
  parser.add_argument('--size', type=int, default=None,
                      help='run the forward passes at this input side instead of each preset size')
  parser.add_argument('--no-forward', action='store_true', help='print the table only')
  parser.add_argument('--joints', choices=sorted(joints_lib.JOINT_SETS), default='crowdpose',
                      help='joint set used for the forward passes')
  parser.add_argument('--family', choices=counting.FAMILIES, default='all',
                      help="only one family's presets")


def run(args) -> int:
  js = joints_lib.get_joint_set(args.joints)
  names = counting.preset_names(args.family)
  mults = {getattr(create_model(n, 14).arch, 'input_multiple', 16) for n in names}
  if args.size and any(args.size % m for m in mults):
    raise UserError(f'--size must be a multiple of {max(mults)} for these models, got {args.size}')
  header = (f'{"model":<17} {"input":>5} {"params (14 / 17 joints)":>24} {"GMACs true":>10} '
            f'{"GMACs paper":>11} {"AP CrowdPose/COCO":>18}')
  print(header)
  print('-' * len(header))
  for name in names:
    m14 = create_model(name, 14, depthwise_impl='lax')
    size = m14.arch.img_size
    c14 = counting.count(m14, size)
    c17 = counting.count(create_model(name, 17, depthwise_impl='lax'), size)
    ap = PUBLISHED_AP[name]
    print(f'{name:<17} {size:>5} {c14.params:>11,} / {c17.params:>10,} '
          f'{c14.macs("true") / 1e9:>10.3f} {c14.macs("paper") / 1e9:>11.3f} '
          f'{_ap(ap[0]):>9} / {_ap(ap[1]):<6}')
  if args.no_forward:
    return 0
  print(f'\nforward pass, batch 1, random weights, {js.name} ({js.num_joints} joints), '
        f'backend {jax.default_backend()}:')
  for name in names:
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
    print(f'  {name:<17} @{size}: outputs {shapes}  compile+run {t1 - t0:.1f} s, run '
          f'{(t2 - t1) * 1e3:.0f} ms')
  return 0
