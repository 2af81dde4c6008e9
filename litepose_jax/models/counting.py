"""Parameter and MAC counting from the model's own structure (`litepose macs`).

Every layer call is observed with flax's method interceptor during an abstract (shape-only) trace,
so the count follows whatever the module actually builds, ablations included.

Conventions (docs/OFFICIAL.md, "Architecture"):
- 'true': Conv = output elements x (C_in / groups) x kh x kw; ConvTranspose = input elements x
  C_out x kh x kw; BN, activations and adds not counted.
- 'paper': what the published 1.2 / 5.0 / 7.8 / 13.7 G come from (old ptflops 0.6): transposed
  convs counted once per *output* pixel (4x for stride 2), plus 2 per BN element (affine) and
  1 per activation element.
  EfficientHRNet: its SE 1x1 convs count as convs in both; its Swish / sigmoid elements, SE
  global means and SE scalings are not counted (old ptflops knew no Swish module; counting them,
  or the means' inputs, misses SUPERNET_SPEC.md §7.2's checked 2.10 / 4.21 / 7.73 G).
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib
from litepose_jax.models import efficient_hrnet_arch
from litepose_jax.models import hrnet_arch
from litepose_jax.models import layers

CONVENTIONS = ('true', 'paper')
FAMILIES = ('all', 'litepose', 'higherhrnet', 'efficienthrnet')


def preset_names(family: str = 'all') -> tuple[str, ...]:
  """The zoo's preset names of `family` ('all', 'litepose', 'higherhrnet' or 'efficienthrnet'),
  LitePose first."""
  if family not in FAMILIES:
    raise UserError(f'family must be one of {FAMILIES}, got {family!r}')
  names = ()
  if family in ('all', 'litepose'):
    names += arch_lib.PRESET_NAMES
  if family in ('all', 'higherhrnet'):
    names += hrnet_arch.preset_names()
  if family in ('all', 'efficienthrnet'):
    names += efficient_hrnet_arch.preset_names()
  return names


@dataclasses.dataclass
class Counts:
  params: int = 0
  conv_macs: int = 0        # dense + depthwise conv multiply-accumulates
  deconv_macs: int = 0      # true transposed-conv MACs (per input pixel)
  deconv_out_macs: int = 0  # transposed convs counted per output pixel (old ptflops)
  bn_elements: int = 0
  act_elements: int = 0

  def macs(self, convention: str = 'true') -> int:
    """Multiply-accumulates under 'true' or 'paper' convention."""
    if convention == 'true':
      return self.conv_macs + self.deconv_macs
    if convention == 'paper':
      return self.conv_macs + self.deconv_out_macs + 2 * self.bn_elements + self.act_elements
    raise UserError(f'convention must be one of {CONVENTIONS}, got {convention!r}')


def count(model: nn.Module, height: int, width: int | None = None) -> Counts:
  """Counts parameters and MACs of `model` for one [1, height, width, 3] image."""
  width = height if width is None else width
  c = Counts()

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name != '__call__':
      return out
    m, x = context.module, args[0]
    if isinstance(m, layers.Conv):
      c.conv_macs += math.prod(out.shape) * x.shape[-1] * m.kernel_size ** 2
    elif isinstance(m, layers.DepthwiseConv):
      c.conv_macs += math.prod(out.shape) * m.kernel_size ** 2
    elif isinstance(m, layers.Deconv):
      per_pixel = x.shape[-1] * m.features * 4 * 4
      c.deconv_macs += math.prod(x.shape[:-1]) * per_pixel
      c.deconv_out_macs += math.prod(out.shape[:-1]) * per_pixel
    elif isinstance(m, nn.BatchNorm):
      c.bn_elements += math.prod(out.shape)
    elif isinstance(m, layers.Activation):
      c.act_elements += math.prod(out.shape)
    return out

  x = jnp.zeros((1, height, width, 3), jnp.float32)
  with nn.intercept_methods(interceptor):
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  c.params = sum(math.prod(p.shape) for p in jax.tree.leaves(variables['params']))
  return c


def add_arguments(parser) -> None:
  parser.add_argument('--arch', default='S',
                      help='LitePose preset (XS, S, M, L) or architecture JSON path, or a '
                           f'HigherHRNet preset ({", ".join(hrnet_arch.preset_names())}), an '
                           'EfficientHRNet preset '
                           f'({", ".join(efficient_hrnet_arch.preset_names())}) or either\'s '
                           'official experiment .yaml')
  parser.add_argument('--joints', type=int, default=14, help='number of joints (14 CrowdPose, 17 COCO)')
  parser.add_argument('--size', type=int, default=None,
                      help="input side in pixels (default: the architecture's img_size)")
  parser.add_argument('--width', type=int, default=None, help='input width if not square')
  parser.add_argument('--convention', choices=CONVENTIONS, default='true',
                      help="'true' conv+deconv MACs, or 'paper' (reproduces the published G)")
  parser.add_argument('--kernel-size', type=int, default=None, help='global depthwise kernel override')
  parser.add_argument('--width-mult', type=float, default=1.0, help='channel width multiplier')
  parser.add_argument('--no-fusion', action='store_true', help='plain deconv head ablation')
  parser.add_argument('--all', action='store_true', help='print the whole model zoo as a table')
  parser.add_argument('--family', choices=FAMILIES, default='all',
                      help="with --all: only one family's presets")


def run(args) -> int:
  from litepose_jax.models import create_model  # pylint: disable=g-import-not-at-top
  if args.all:
    print(f'{"model":<17} {"input":>5} {"joints":>6} {"params":>11} {"true GMACs":>11} '
          f'{"paper GMACs":>12}')
    for joints in (14, 17):
      for name in preset_names(args.family):
        m = create_model(name, joints, depthwise_impl='lax')
        c = count(m, m.arch.img_size)
        print(f'{name:<17} {m.arch.img_size:>5} {joints:>6} {c.params:>11,} '
              f'{c.macs("true") / 1e9:>11.3f} {c.macs("paper") / 1e9:>12.3f}')
    return 0
  m = create_model(args.arch, args.joints, fusion=not args.no_fusion, kernel_size=args.kernel_size,
                   width_mult=args.width_mult, depthwise_impl='lax')
  h = args.size or m.arch.img_size
  w = args.width or h
  mult = getattr(m.arch, 'input_multiple', 16)  # an HRNet family's lowest branch: 32
  if h % mult or w % mult:
    raise UserError(f'--size/--width must be multiples of {mult}, got {h}x{w}')
  c = count(m, h, w)
  print(f'arch: {m.arch.name}  input: {h}x{w}  joints: {args.joints}')
  print(f'params: {c.params:,}')
  print(f'MACs ({args.convention}): {c.macs(args.convention) / 1e9:.3f} G')
  return 0
