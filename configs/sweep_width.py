"""Sweep: width multiplier 0.5 / 0.75 / 1.0 / 1.25 of the stem and stage channels.

Arguments: model=XS|S|M|L (default S), dataset=crowdpose|coco, base=<base-config flags joined by +>.

  litepose sweep configs/sweep_width.py:model=S --workdir runs/width --print
"""
from litepose_jax import config_files


def get_sweep(arg=None):
  a = config_files.parse_arg(arg, model='S', dataset='crowdpose', base='')
  extra = f',{a.base.replace("+", ",")}' if a.base else ''
  return {
      'config': f'litepose_{a.model.lower()}.py:dataset={a.dataset}{extra}',
      'runs': [{'model.width_mult': w} for w in (0.5, 0.75, 1.0, 1.25)],
  }
