"""A sub-net of the super-net run at its own widths, with a fixed set of programs per resolution.

The masked super-net (nas/supernet.py) runs every sub-net through one program at the largest
widths: no compilation per candidate, but an average sub-net pays for 2-2.5x the multiply-adds it
needs (measured on XLA:CPU: the sliced sub-net runs 1.4-1.9x faster). Compiling each sub-net at
its own widths would cost one compilation per candidate. Between the two: the backbone is cut at
block granularity, where the shapes repeat across candidates. A block's computation depends only
on its input and output widths, which take a handful of values per stage (the width genes'
choices), so the programs for every (block kind, input width, output width) of a resolution are
compiled once, when the resolution is first used, and every candidate afterwards is a sequence
of calls to them:
- stem: the super-net's stem with its channel mask (1% of the work), output at the largest width;
- block programs: `stage{s}_block{b}`'s variables sliced to the candidate's widths inside the
  program (leading channels, as extraction does), input cut to its width, output at its width;
  the blocks of a stage after the first share one program per width; at inference each
  BatchNorm is folded into its conv (layers.py's folded mode);
- pad programs: a stage's output zero-padded back to the largest width (what the masked
  super-net holds there);
- head: the super-net's Fusion Deconv Head with the sub-net's masks, on the padded features.
What it buys depends on the machine: on a 2-vCPU CPU a 96-px candidate costs 0-20% less than
through the masked super-net when the machine is quiet (XLA spreads one large program over both
cores better than many small ones) and 20-25% less when it is shared (docs/BENCHMARKS.md).
Outputs and batch statistics equal the masked super-net's (tests/search/test_sliced.py): the
padded channels are the zeros its masks write, and the blocks compute the same sums on fewer
channels. Every program also comes in a calibration form (training-mode BatchNorm) that returns
the per-batch statistics, padded to the largest widths, added to running sums.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import itertools
import threading
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from litepose_jax import models
from litepose_jax.data import normalize
from litepose_jax.inference import fusion
from litepose_jax.nas import recalibrate as recalibrate_lib
from litepose_jax.nas import space as space_lib
from litepose_jax.nas import supernet as supernet_lib


class _Stem(supernet_lib.SuperLitePose):
  """The super-net's stem alone (same variable paths): images -> stem output, masked."""

  @nn.compact
  def __call__(self, x, train: bool = False, masks=None):  # pylint: disable=arguments-renamed
    return self._stem(x, train, masks or {})


class _Head(supernet_lib.SuperLitePose):
  """The super-net's head alone (same variable paths): [stem, stage0..3] features -> outputs."""

  @nn.compact
  def __call__(self, feats, train: bool = False, masks=None):  # pylint: disable=arguments-renamed
    return self._head(feats, train, masks or {})


def _part(cls, net: supernet_lib.SuperLitePose):
  fields = {f.name: getattr(net, f.name) for f in dataclasses.fields(net)
            if f.init and f.name not in ('parent', 'name')}
  return cls(**fields)


def _leading(tree: Any, shapes: Any) -> Any:
  """Every leaf of `tree` cut to the leading entries of the same leaf of `shapes`."""
  return jax.tree.map(lambda leaf, s: leaf[tuple(slice(0, n) for n in s.shape)], tree, shapes)


def _pad_last(x, width: int):
  """[..., c] -> [..., width], zeros after the first c channels."""
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])])


@dataclasses.dataclass(frozen=True)
class _Plan:
  """A candidate's path through the programs: widths and depths (static)."""
  stem: int
  widths: tuple[int, ...]
  depths: tuple[int, ...]


class SlicedSubnets:
  """Maps and calibration statistics of sub-nets through per-resolution block programs.

  supernet: the SuperLitePose; flip_index: joint permutation of the flip test (None: no flip).
  `maps(variables, batch_stats, masks, spec, images, device)` and `calibrate(...)` run one batch;
  `prepare(size, ..., device)` compiles every program of a resolution (done by the first call).
  """

  def __init__(self, supernet: supernet_lib.SuperLitePose, flip_index=None):
    self.net = supernet
    self.flip_index = None if flip_index is None else tuple(flip_index)
    self._stem, self._head = _part(_Stem, supernet), _part(_Head, supernet)
    self._compiled: dict[tuple, Any] = {}
    self._prepared: set[tuple] = set()
    # search.parallel scores candidates from one thread per device: one compiles at a time.
    self._lock = threading.Lock()

  @property
  def compiles(self) -> int:
    """Programs compiled so far (all resolutions, batch sizes and devices)."""
    return len(self._compiled)

  # Plans --------------------------------------------------------------------------------------

  def plan(self, spec: models.ArchSpec) -> _Plan | None:
    """The candidate's plan, or None where the sliced blocks would not compute the super-net's
    sub-net (a stride-1 first block whose widths coincide: LitePose would add a residual that the
    super-net has not; never inside the official space)."""
    big = self.net.arch
    widths = spec.channels
    for si, stage in enumerate(spec.stages):
      if stage.stride == 1 and widths[si] == widths[si + 1] and (
          big.channels[si] != big.channels[si + 1]):
        return None
    return _Plan(spec.input_channel, tuple(s.channels for s in spec.stages),
                 tuple(len(s.blocks) for s in spec.stages))

  def _choices(self) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Distinct stem widths and, per stage, distinct widths the space allows."""
    space = self.net.space
    return space.choices(0), [space.choices(1 + space_lib.NUM_DECONVS + s)
                              for s in range(len(self.net.arch.stages))]

  # Programs -----------------------------------------------------------------------------------

  def _block_fn(self, si: int, first: bool, cin: int, cout: int, train: bool) -> Callable:
    """(block variables at the super-net's widths, x [B, H, W, >= cin][, sums]) -> y [.., cout]
    (calibration: (y, sums + this batch's statistics at the super-net's widths))."""
    bi = 0 if first else 1
    module = self.net.block(si, bi, cout, folded=False, standalone=True)
    # Inference folds each BN into its conv (layers.py): one pass less per layer, ~15-25%.
    folded = self.net.block(si, bi, cout, folded=True, standalone=True)

    def fn(block_vars, x, sums=None):
      x = x[..., :cin]
      shapes = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, False), x)
      params = _leading(block_vars['params'], shapes['params'])
      stats = _leading(block_vars['batch_stats'], shapes['batch_stats'])
      if not train:
        return folded.apply({'params': params, 'batch_stats': stats}, x, False)
      y, batch = recalibrate_lib.module_batch_stats(module, params, stats, x, True)
      out = {}
      for k, (m, v, _) in batch.items():
        width = sums[k][0].shape[-1]
        out[k] = (sums[k][0] + _pad_last(m, width), sums[k][1] + _pad_last(v, width),
                  jnp.arange(width) < m.shape[-1])
      return y, out
    return fn

  def _stem_fn(self, train: bool) -> Callable:
    net, flip = self._stem, self.flip_index is not None

    def fn(variables, masks, images, sums=None):
      x = normalize.normalize_images(images, jnp)
      if not train:
        if flip:
          x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
        return net.apply(variables, x, False, masks)
      y, batch = recalibrate_lib.module_batch_stats(net, variables['params'],
                                                    variables['batch_stats'], x, True, masks)
      return y, _add(sums, batch)
    return fn

  def _head_fn(self, train: bool) -> Callable:
    net, j, flip_index = self._head, self.net.num_joints, self.flip_index

    def fn(variables, masks, feats, sums=None):
      if not train:
        out4, out2 = net.apply(variables, feats, False, masks)
        return fusion.fuse_outputs_jax(out4, out2, j, flip_index)
      _, batch = recalibrate_lib.module_batch_stats(net, variables['params'],
                                                    variables['batch_stats'], feats, True, masks)
      return _add(sums, batch)
    return fn

  def _program(self, key: tuple, fn: Callable, args: tuple):
    """The compiled `fn` for `args` (abstract, placed on the key's device), made once."""
    if key not in self._compiled:
      self._compiled[key] = jax.jit(fn).lower(*args).compile()
    return self._compiled[key]

  def prepare(self, size: int, batch: int, train: bool, variables: Mapping[str, Any],
              masks: Mapping[str, Any], sums: Mapping[str, Any] | None, device) -> None:
    """Compiles every program a candidate at `size` with image batches of `batch` can call."""
    key = (size, batch, train, device)
    with self._lock:
      if key not in self._prepared:
        self._prepare(key, variables, masks, sums)
        self._prepared.add(key)

  def _prepare(self, key: tuple, variables, masks, sums) -> None:
    size, batch, train, device = key
    sharding = jax.sharding.SingleDeviceSharding(device)
    sds = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
    abstract = lambda tree: jax.tree.map(lambda a: sds(np.shape(a), a.dtype), tree)
    a_vars, a_masks = abstract(variables), abstract(masks)
    a_sums = None if sums is None else abstract(sums)
    images = sds((batch, size, size, 3), jnp.uint8)
    stem = (a_vars, a_masks, images) + ((a_sums,) if train else ())
    stem_out = jax.eval_shape(self._stem_fn(train), *stem)
    stem_out = stem_out[0] if train else stem_out
    self._program(('stem',) + key, self._stem_fn(train), stem)
    stems, stages = self._choices()
    feats = [sds(stem_out.shape, stem_out.dtype)]
    x_shape = stem_out.shape
    prev_widths = stems
    for si, stage in enumerate(self.net.arch.stages):
      for first in (True, False) if len(stage.blocks) > 1 else (True,):
        bi = 0 if first else 1
        name = f'stage{si}_block{bi}'
        block_vars = {'params': a_vars['params'][name],
                      'batch_stats': a_vars['batch_stats'][name]}
        block_sums = None if a_sums is None else {
            k[len(name) + 1:]: v for k, v in a_sums.items() if k.startswith(name + '/')}
        for cin, cout in itertools.product(prev_widths if first else (None,), stages[si]):
          cin = cout if cin is None else cin
          h = x_shape[1] // (stage.stride if first else 1)
          x = sds(x_shape[:3] + (x_shape[3] if first and si == 0 else cin,), self.net.dtype)
          args = (block_vars, x) + ((block_sums,) if train else ())
          self._program(('block', si, first, cin, cout) + key,
                        self._block_fn(si, first, cin, cout, train), args)
        if first:
          x_shape = (x_shape[0], h, h, None)
      for w in stages[si]:
        x = sds(x_shape[:3] + (w,), self.net.dtype)
        self._program(('pad', si, w) + key, _pad_fn(stage.channels), (x,))
      feats.append(sds(x_shape[:3] + (stage.channels,), self.net.dtype))
      prev_widths = stages[si]
    head = (a_vars, a_masks, feats) + ((a_sums,) if train else ())
    self._program(('head',) + key, self._head_fn(train), head)

  # Running ------------------------------------------------------------------------------------

  def run(self, plan: _Plan, variables, masks, images, device, sums=None):
    """One batch through the candidate's programs: fused (heatmaps, tags) as
    fusion.fuse_outputs_jax gives them, or (calibration, `sums` given) the updated sums."""
    train = sums is not None
    size, batch = images.shape[1], images.shape[0]
    key = (size, batch, train, device)
    self.prepare(size, batch, train, variables, masks, sums, device)
    call = lambda k, *a: self._compiled[k + key](*a)
    if train:
      y, sums = call(('stem',), variables, masks, images, sums)
    else:
      y = call(('stem',), variables, masks, images)
    feats = [y]
    cin = plan.stem
    for si, (cout, depth) in enumerate(zip(plan.widths, plan.depths)):
      for bi in range(depth):
        name = f'stage{si}_block{bi}'
        block_vars = {'params': variables['params'][name],
                      'batch_stats': variables['batch_stats'][name]}
        prog = ('block', si, bi == 0, cin if bi == 0 else cout, cout)
        if train:
          block_sums = {k[len(name) + 1:]: v for k, v in sums.items()
                        if k.startswith(name + '/')}
          y, block_sums = call(prog, block_vars, y, block_sums)
          sums = dict(sums, **{f'{name}/{k}': v for k, v in block_sums.items()})
        else:
          y = call(prog, block_vars, y)
      feats.append(call(('pad', si, cout), y))
      cin = cout
    if train:
      return call(('head',), variables, masks, feats, sums)
    return call(('head',), variables, masks, feats)


def _pad_fn(width: int) -> Callable:
  return lambda x: _pad_last(x, width)


def _add(sums: Mapping[str, tuple], batch: Mapping[str, tuple]) -> dict:
  """sums with this batch's (mean, var) added for the BatchNorms in `batch`."""
  out = dict(sums)
  for k, (m, v, active) in batch.items():
    out[k] = (sums[k][0] + m, sums[k][1] + v, active)
  return out
