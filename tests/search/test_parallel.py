"""Parallel scoring: a generation's scores from 2 processes x 2 CPU devices (jax.distributed over
localhost) equal one device's exactly, every process returns the full list, done() sees each
score once; in one process, score_many equals scoring one by one."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from litepose_jax import nas
from litepose_jax.search import fitness as fitness_lib
from litepose_jax.search import parallel
from tests.search.helpers import SPACE
from tests.search.helpers import save_supernet
from tests.search.helpers import search_setup
from tests.search.helpers import synthetic_data
from tests.training.helpers import communicate_all
from tests.training.helpers import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]


def _driver(args, devices):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_PLATFORMS='cpu')
  return subprocess.Popen([sys.executable, '-m', 'tests.search.score_driver', *map(str, args)],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def test_two_processes_two_devices_equal_one_device(tmp_path):
  ckpt = save_supernet(tmp_path / 'supernet')
  data = synthetic_data(tmp_path / 'data', num_images=24)
  port = free_port()
  procs = [_driver([ckpt, data, tmp_path / 'multi', tmp_path / f'multi{pid}.json',
                    f'127.0.0.1:{port}', 2, pid], devices=2) for pid in range(2)]
  procs.append(_driver([ckpt, data, tmp_path / 'single', tmp_path / 'single.json'], devices=1))
  communicate_all(procs, timeout=600)
  single = json.loads((tmp_path / 'single.json').read_text())
  assert (single['devices'], single['processes']) == (1, 1)
  scores = single['scores']
  assert len(scores) == 5 and len(set(scores)) == 5  # five sub-nets, told apart
  for pid in range(2):
    multi = json.loads((tmp_path / f'multi{pid}.json').read_text())
    assert (multi['devices'], multi['processes']) == (4, 2)
    assert multi['scores'] == scores  # exactly: each candidate computed whole on one device
    # Own candidates first (k % 4 on devices 2 pid, 2 pid + 1), then the other process's.
    assert sorted(i for i, _ in multi['done']) == list(range(5))
    own = [k for k in range(5) if (k % 4) // 2 == pid]
    assert sorted(i for i, _ in multi['done'][:len(own)]) == own
    assert all(scores[i] == s for i, s in multi['done'])
  # Both processes carved the same splits into one directory.
  assert json.loads((tmp_path / 'multi' / 'splits.json').read_text())['search_ids'] == \
      json.loads((tmp_path / 'single' / 'splits.json').read_text())['search_ids']


@pytest.fixture(scope='module')
def fitness(tmp_path_factory):
  net, variables, cfg, splits = search_setup(tmp_path_factory.mktemp('parallel'))
  return fitness_lib.Fitness(net, variables, cfg, splits, calib_batch=4, eval_batch=4)


def test_one_process_equals_scoring_one_by_one(fitness):
  archs = [nas.sample(SPACE, seed) for seed in (0, 1)]
  for a in archs:
    a['img_size'] = 64
  done = []
  got = parallel.score_many(fitness, archs, lambda i, s: done.append((i, s)))
  assert got == [fitness(a) for a in archs]
  assert done == list(enumerate(got))
  assert parallel.score_many(fitness, []) == []
  parallel.initialize_distributed('')  # no coordinator: nothing to do, no error
