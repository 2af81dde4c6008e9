"""Sweep: Fusion Deconv Head vs the plain deconv head (paper: 54.7 vs 47.1 CrowdPose mAP at 4.69
vs 4.06 GMACs).

model.fusion=True is LitePose's head (each deconv stage also gets the raw backbone feature of its
resolution, refined and raw branches summed); False is the official pose_simplenet.py ablation
(deconvs only, no raw branches).

Arguments: model=XS|S|M|L (default S), dataset=crowdpose|coco, base=<base-config flags joined
by +> (e.g. 'base=synthetic+runlocal').

  litepose sweep configs/sweep_fusion.py:model=S --workdir runs/fusion --plan
  litepose sweep configs/sweep_fusion.py:model=XS,base=synthetic --workdir runs/fusion_synth

Cost of each point (`--plan` prints it for any model and size; LitePose-S at 448 px, 14 joints):

  head     params    GMACs true   GMACs paper
  fusion   2.73 M    3.61         4.98
  plain    2.68 M    3.41         4.29

The fusion head costs +0.20 G true (+0.69 G in the paper's convention, which counts transposed
convs per output pixel and BN / activation elements), close to the paper's +0.63 G.
"""
from __future__ import annotations

from litepose_jax import config_files


def get_sweep(arg=None):
  """The base recipe of `model`, once with the fusion head and once with the plain head."""
  a = config_files.parse_arg(arg, model='S', dataset='crowdpose', base='')
  extra = f',{a.base.replace("+", ",")}' if a.base else ''
  return {
      'config': f'litepose_{a.model.lower()}.py:dataset={a.dataset}{extra}',
      'runs': [{'model.fusion': True}, {'model.fusion': False}],
  }
