"""Large depthwise convs as sums of small dilated sub-convs: the `depthwise_impl='split'` of the
export (TFLite / XNNPACK).

A 7x7 (9x9) depthwise conv, symmetric padding, is computed as a sum of 'SAME'-padded dilated
sub-convs whose taps partition the kernel's 49 (81) taps: no PAD / SLICE copies, every sub-conv
within XNNPACK's fast micro-kernels (ai-edge-litert 2.3: 4, 9 or 25 taps; a 49-tap depthwise conv
runs ~25x slower than a 25-tap one). Numerically the same sum in another order.
"""
from __future__ import annotations

from jax import lax
import jax.numpy as jnp
import numpy as np

# Per (kernel, stride) the covers in order of preference: the first that partitions the kernel on
# the input's size is used. Each sub-conv is ((rows, row dilation), (columns, column dilation));
# 'SAME' padding makes it read the kernel's taps at fixed offsets, and taps outside the kernel are
# zero. Chosen with scripts/bench_dwcover.py (exact cover search, timed on the S block shapes, fp32
# and int8, 2 threads; docs/BENCHMARKS.md).
PIECES = {
    # Stride 1: 'SAME' is symmetric, offsets -(n - 1) d / 2 + i d. 21 + 8 + 20 taps (25 + 9 + 25
    # micro-kernel taps; the row split 3 / 2 / 2 it replaces ran 25 + 25 + 25). Fastest in int8
    # everywhere; in fp32 seven 9-tap sub-convs win on 28x28 maps by ~10%.
    (7, 1): ((((7, 1), (3, 2)),     # rows -3..3 x columns -2, 0, 2
              ((2, 6), (4, 2)),     # rows -3, 3 x columns -3, -1, 1, 3
              ((5, 1), (4, 2))),),  # rows -2..2 x columns -3, -1, 1, 3
    # Stride 2: on even sizes 'SAME' pads one less before than after, offsets start at
    # -((n - 1) d - 1) // 2. First: rows 0, 2 x column -3 | row -2 x column -3 | row -3 x
    # columns -3..3 | rows -1, 1, 3 x columns -3..3 | rows -2, 0, 2 x columns -2..3 (4 + 4 + 16 +
    # 24 + 24 taps; even sizes only, 1.6x faster in fp32 than the second on S). Second, for any
    # size: rows -2 | -1, 3 | 0, 2 | -3, 1 on even sizes (-3, 3 | -2, 2 | -1, 1 | 0 on odd ones)
    # x columns -3..3. Zero taps pad e.g. row -3 (k=2, d=7 reads -3 and 4). (A one-row sub-conv
    # was converted to PAD + VALID: its 'SAME' padding is negative before the clamp.)
    (7, 2): ((((2, 2), (2, 7)), ((2, 6), (2, 7)), ((2, 7), (8, 1)), ((3, 2), (8, 1)),
              ((4, 2), (6, 1))),
             (((2, 6), (8, 1)), ((2, 4), (8, 1)), ((2, 2), (8, 1)), ((3, 4), (8, 1)))),
    # 9x9 (the kernel-size sweep): rows -4, 4 | -3, 3 x columns -4..4, rows -2..2 x columns
    # -4, -2, .., 4 | -3, -1, 1, 3 (18 + 18 + 25 + 20 taps; 81 taps in one conv ran ~30x slower).
    (9, 1): ((((2, 8), (9, 1)), ((2, 6), (9, 1)), ((5, 1), (5, 2)), ((5, 1), (4, 2))),),
    # Stride 2, any size: rows -4 | -3, 4 | -2, 3 x columns -4..4, rows -1..2 x columns -4 |
    # -3, 4 | -2..3 (even sizes; 20 + 20 + 20 + 8 + 8 + 24 taps).
    (9, 2): ((((2, 9), (10, 1)), ((2, 7), (10, 1)), ((2, 5), (10, 1)), ((4, 1), (2, 9)),
              ((4, 1), (2, 7)), ((4, 1), (6, 1))),),
}
_DN = ('NHWC', 'HWIO', 'NHWC')


def same_offsets(n: int, d: int, size: int, stride: int) -> list[int]:
  """Input offsets (relative to stride * output index) of the n taps of a 'SAME' conv axis."""
  extent = (n - 1) * d + 1
  out = -(-size // stride)
  before = max((out - 1) * stride + extent - size, 0) // 2
  return [i * d - before for i in range(n)]


def cover(k: int, stride: int, height: int, width: int, covers=None):
  """[(sub-kernel row / column indices into the k x k kernel (-1: zero tap), dilations)] of the
  first cover (default: PIECES[(k, stride)]) whose real taps partition the kernel on this input
  size."""
  p = k // 2
  for pieces in PIECES[(k, stride)] if covers is None else covers:
    hits = np.zeros((k, k), int)
    out = []
    for (nr, dr), (nc, dc) in pieces:
      rows = [o + p if -p <= o <= p else -1 for o in same_offsets(nr, dr, height, stride)]
      cols = [o + p if -p <= o <= p else -1 for o in same_offsets(nc, dc, width, stride)]
      hits[np.ix_([r for r in rows if r >= 0], [c for c in cols if c >= 0])] += 1
      out.append((rows, cols, (dr, dc)))
    if (hits == 1).all():
      return out
  raise ValueError(f'no {k}x{k} stride-{stride} sub-conv cover partitions the kernel on a '
                   f'{height}x{width} input')


def has_split(k: int, stride: int) -> bool:
  """Whether a k x k stride-s depthwise conv has a cover (else 'split' runs it as one conv)."""
  return (k, stride) in PIECES


def split_depthwise(x, kernel, stride: int, bias=None, covers=None):
  """Depthwise conv, symmetric k//2 padding, as a sum of 'SAME'-padded dilated sub-convs of <= 25
  taps (PIECES, or `covers` in its format): [B, H, W, C] x [k, k, 1, C] -> [B, H/s, W/s, C].

  The bias [C] goes onto the first sub-conv so a converter fuses it into that conv. A numpy
  kernel is sliced in numpy: a gather traced on a large constant is not always constant-folded by
  the TFLite converter (it left GATHER_ND + TRANSPOSE in a 9x9 S).
  """
  k, c = kernel.shape[0], x.shape[-1]
  xnp = np if isinstance(kernel, np.ndarray) else jnp
  padded_kernel = xnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index -1: 0
  out = None
  for rows, cols, dilation in cover(k, stride, x.shape[1], x.shape[2], covers):
    sub = padded_kernel[np.asarray(rows)][:, np.asarray(cols)]
    y = lax.conv_general_dilated(x, sub, (stride, stride), 'SAME', rhs_dilation=dilation,
                                 dimension_numbers=_DN, feature_group_count=c)
    if out is None:
      out = y if bias is None else y + bias
    else:
      out = out + y
  return out
