"""Multi-host training on one machine: 2 processes x 2 CPU devices (jax.distributed over localhost,
gloo collectives) train in lockstep to the same parameters as 1 process with 4 devices."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from litepose_jax import checkpoints
from tests.training.helpers import communicate_all
from tests.training.helpers import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]


def _train_cmd(overrides, workdir, *extra, config='litepose_xs.py'):
  return ([sys.executable, '-m', 'litepose_jax.cli', 'train',
           '--config', str(REPO / 'configs' / config) + ':fake,runlocal',
           '--workdir', str(workdir)]
          + [f'--config.{o}' for o in overrides]
          + ['--config.total_steps=3', '--config.checkpoint_every=3'] + list(extra))


def _env(devices: int) -> dict:
  return dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
              JAX_PLATFORMS='cpu')


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r['train/total'] for r in map(json.loads, f)]


# The super-net case: every host draws the same sub-nets and sizes from (seed, step). Adam's eps
# is raised to 1 (updates ~ lr x gradient): with the default 1e-8 Adam normalises every gradient
# entry, and entries near 0, whose float sums differ between 1 and 2 processes, flip sign and move
# by 2 x lr, which would hide a real mismatch behind a loose tolerance.
SUPERNET = ('supernet.py', ['supernet.space.depths=(1,1,1,1)',
                            'supernet.space.supernet_depths=(1,2,1,1)', 'model.depthwise_impl=lax',
                            'model.conv_impl=lax', 'data.batch_size=4', 'progress=False',
                            'optim.eps=1.0', 'optim.lr=0.1'])


@pytest.mark.parametrize('model', ['tiny', 'supernet'])
def test_two_processes_match_one_process(model, tiny_overrides, tmp_path):
  config, overrides = ('litepose_xs.py', tiny_overrides) if model == 'tiny' else SUPERNET
  port = free_port()
  procs = []
  for pid in range(2):
    cmd = _train_cmd(overrides, tmp_path / 'multi',
                     f'--config.distributed.coordinator_address=127.0.0.1:{port}',
                     '--config.distributed.num_processes=2', f'--config.distributed.process_id={pid}',
                     config=config)
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=_env(2), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  procs.append(subprocess.Popen(_train_cmd(overrides, tmp_path / 'single', config=config),
                                cwd=REPO, env=_env(4), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True))
  outs = communicate_all(procs, timeout=1200)
  assert 'on 4 devices / 2 processes' in outs[0], outs[0][-2000:]
  assert 'on 4 devices / 1 processes' in outs[2], outs[2][-2000:]
  multi, single = _losses(tmp_path / 'multi'), _losses(tmp_path / 'single')
  assert len(multi) == len(single) == 3
  np.testing.assert_allclose(multi, single, rtol=1e-5)
  _, vm, cm = checkpoints.load_model(tmp_path / 'multi')
  _, vs, cs = checkpoints.load_model(tmp_path / 'single')
  assert cm['step'] == cs['step'] == 3
  for a, b in zip(jax.tree.leaves(vm), jax.tree.leaves(vs)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=4e-4)
