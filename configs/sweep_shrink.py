"""Sweep: the gradual-shrinking study, HigherHRNet-W16 -> Shrink1 -> Shrink2 -> Shrink3 -> LitePose.

The paper's motivation (Sec. 3.2; slides pp. 9-10; SUPERNET_SPEC.md §7.1): start from HigherHRNet
with base width 16 and remove the high-resolution branches' blocks step by step; Shrink3 keeps
blocks only on the lowest-resolution branch ("single branch"). Slides: 12.50 -> 9.15 GMACs
(paper convention) while CrowdPose AP goes up 50.4 -> 53.0. The last point is LitePose-M: of the
four LitePose presets it is the one closest to Shrink3's cost at the same 512 px input (see the
table below), so it shows what large kernels and the fusion head buy at a similar budget.

Every point trains with the same recipe: the official LitePose normal-training recipe at 512 px
(configs/litepose_l.py: Adam 4e-3, 500 epochs; 512 px is also the input of the shipped shrink yaml,
w16_512_adam_lr1e-3.yaml, which trained with Adam 1e-3, 300 epochs, steps 200 / 260; pass
--config.optim.lr=1e-3 --config.num_epochs=300 '--config.optim.milestones=(200,260)' for that).
The HRNet points ignore model.kernel_size / width_mult / fusion (they have no depthwise convs
and their own deconv head).

Arguments (comma separated): dataset=crowdpose|coco, synthetic, fake, runlocal (as for the
litepose_*.py configs); quickstart: every point on configs/quickstart.py's recipe instead (64 px,
the easy synthetic crowds of scripts/quickstart.py, tuned to learn within minutes on a CPU).

  litepose sweep configs/sweep_shrink.py --workdir runs/shrink --plan
  litepose sweep configs/sweep_shrink.py --workdir runs/shrink --config.data.data_dir=/data/crowdpose
  litepose sweep configs/sweep_shrink.py:synthetic --workdir runs/shrink_synth
  litepose sweep configs/sweep_shrink.py:synthetic --workdir runs/shrink_synth --report --latency

Cost of each point at 512 px, 14 joints (`--plan`):

  run               params    GMACs true   GMACs paper   (slides)
  higherhrnet-w16   7.21 M    11.22        12.49         12.50
  shrink1           6.71 M     8.88        10.11         10.12
  shrink2           7.62 M     8.73        10.01         10.02
  shrink3           7.38 M     7.87         9.14          9.15
  M (LitePose-M)    3.53 M     6.88        10.24           -

Expected on the quickstart recipe with 1200 steps (`litepose sweep configs/sweep_shrink.py:quickstart
--workdir runs/shrink_q --config.total_steps=1200 --config.model.conv_impl=lax
--config.eval.num_images=48`, 10-17 min per point on a 2-core CPU), synthetic AP (not CrowdPose
AP): W16 0.024, Shrink1 0.058, Shrink2 0.140, Shrink3 0.227, LitePose-M 0.514: up at every step,
as in the paper. Measured runs and latencies: docs/BENCHMARKS.md, "HigherHRNet family and the
shrinking study".
"""
from __future__ import annotations

from litepose_jax import config_files

# HigherHRNet presets of litepose_jax.models.create_model, then the LitePose of similar cost.
ARCHS = ('higherhrnet-w16', 'shrink1', 'shrink2', 'shrink3', 'M')


def get_sweep(arg=None):
  """The LitePose 512 px recipe and one run per architecture of the shrinking study."""
  a = config_files.parse_arg(arg, dataset='crowdpose', synthetic=False, quickstart=False,
                             fake=False, runlocal=False)
  if a.quickstart:
    # The CPU-sized synthetic recipe that learns (configs/quickstart.py), for every point.
    flags = ','.join(f for f in ('fake', 'runlocal') if a[f])
    config = 'quickstart.py' + (f':{flags}' if flags else '')
  else:
    flags = ''.join(f',{f}' for f in ('synthetic', 'fake', 'runlocal') if a[f])
    config = f'litepose_l.py:dataset={a.dataset}{flags}'
  return {'config': config, 'runs': [{'model.arch': arch} for arch in ARCHS]}
