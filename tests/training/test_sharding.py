"""One train step data-parallel over 8 fake CPU devices equals the same step on 1 device.

The device count is fixed when JAX starts, so the comparison runs in a child process started with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (this file is its script).
"""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def _child(arch_path: str, out_dir: str) -> None:
  import jax
  import numpy as np

  from litepose_jax import config_files
  from litepose_jax.training import trainer
  assert len(jax.devices()) == 8, jax.devices()
  results = {}
  for name, devices in (('one', jax.devices()[:1]), ('eight', jax.devices())):
    cfg = config_files.load_config(
        str(REPO / 'configs' / 'litepose_xs.py') + ':fake,runlocal',
        [f'model.arch={arch_path}', 'data.batch_size=8', 'progress=False', 'total_steps=1'])
    r = trainer.train_and_evaluate(cfg, os.path.join(out_dir, name), devices=devices)
    state = r['state']
    assert len(state.params['stem_conv']['conv']['kernel'].sharding.device_set) == len(devices) \
        if 'stem_conv' in state.params else True
    results[name] = (jax.tree.map(np.asarray, jax.device_get(
        {'params': state.params, 'batch_stats': state.batch_stats})), r['metrics'])
  (p1, m1), (p8, m8) = results['one'], results['eight']
  worst = {}
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(p1), jax.tree.leaves(p8)):
    worst[jax.tree_util.keystr(path)] = float(np.max(np.abs(a - b)))
  with open(os.path.join(out_dir, 'compare.json'), 'w') as f:
    json.dump({'loss_one': m1['train/total'], 'loss_eight': m8['train/total'],
               'changed': float(max(np.max(np.abs(a)) for a in jax.tree.leaves(p1))),
               'max_abs_diff': worst}, f)


def test_eight_devices_equal_one_device(tiny_arch_path, tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, __file__, tiny_arch_path, str(tmp_path)], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-4000:]
  res = json.loads((tmp_path / 'compare.json').read_text())
  assert abs(res['loss_one'] - res['loss_eight']) <= 1e-5 * abs(res['loss_one'])
  diffs = res['max_abs_diff']
  # Running statistics are direct functions of the global batch statistics: per-device BatchNorm
  # would make them differ at the 1e-2 level.
  stats = {k: v for k, v in diffs.items() if 'batch_stats' in k}
  assert stats and max(stats.values()) < 1e-5, stats
  # Adam's first step moves every weight by ~lr * g / (|g| + eps) ~ lr = 4e-3 (a sign error or a
  # missing gradient all-reduce shows up at that scale); gradients near eps amplify summation-order
  # noise, hence 10% of lr.
  params = {k: v for k, v in diffs.items() if 'params' in k}
  assert params and max(params.values()) < 4e-4, sorted(params.items(), key=lambda kv: -kv[1])[:5]


if __name__ == '__main__':
  _child(sys.argv[1], sys.argv[2])
