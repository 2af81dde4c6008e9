"""Sweep: depthwise kernel size 3 / 5 / 7 / 9 for every block (paper: 7x7 gives +14.0 mAP over 3x3
on CrowdPose for +25% compute).

Arguments: model=XS|S|M|L (default S), dataset=crowdpose|coco, plus any base-config flag in
`base` (e.g. 'base=synthetic').

  litepose sweep configs/sweep_kernel_size.py:model=S --workdir runs/ks --print
  litepose sweep configs/sweep_kernel_size.py:model=XS,base=synthetic --workdir runs/ks_synth
"""
from litepose_jax import config_files


def get_sweep(arg=None):
  a = config_files.parse_arg(arg, model='S', dataset='crowdpose', base='')
  extra = f',{a.base.replace("+", ",")}' if a.base else ''
  return {
      'config': f'litepose_{a.model.lower()}.py:dataset={a.dataset}{extra}',
      'runs': [{'model.kernel_size': k} for k in (3, 5, 7, 9)],
  }
