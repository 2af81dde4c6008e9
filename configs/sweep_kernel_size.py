"""Sweep: depthwise kernel size 3 / 5 / 7 / 9 for every block (paper: 7x7 gives +14.0 mAP over 3x3
on CrowdPose for +25% compute).

Arguments: model=XS|S|M|L (default S), dataset=crowdpose|coco, plus any base-config flag in
`base` (e.g. 'base=synthetic').

  litepose sweep configs/sweep_kernel_size.py:model=S --workdir runs/ks --plan
  litepose sweep configs/sweep_kernel_size.py:model=S --workdir runs/ks --print
  litepose sweep configs/sweep_kernel_size.py:model=XS,base=synthetic --workdir runs/ks_synth

Cost of each point (`--plan` prints it for any model and size; LitePose-S at 448 px, 14 joints):

  kernel   params    GMACs true   GMACs paper
  3        2.27 M    2.84         4.21
  5        2.45 M    3.15         4.52
  7        2.73 M    3.61         4.98   (LitePose-S as published: 7 everywhere)
  9        3.10 M    4.23         5.60

3 -> 7 is +27% true MACs (+18% in the paper's convention), the paper's "+25% compute".
"""
from __future__ import annotations

from litepose_jax import config_files

KERNEL_SIZES = (3, 5, 7, 9)


def get_sweep(arg=None):
  """The base recipe of `model` and one run per depthwise kernel size."""
  a = config_files.parse_arg(arg, model='S', dataset='crowdpose', base='')
  extra = f',{a.base.replace("+", ",")}' if a.base else ''
  return {
      'config': f'litepose_{a.model.lower()}.py:dataset={a.dataset}{extra}',
      'runs': [{'model.kernel_size': k} for k in KERNEL_SIZES],
  }
