"""scripts/bench_search.py on the tiny super-net: the PyTorch copy computes what the Flax
super-net does, every figure is printed, and nothing compiles after the first candidate."""
import importlib.util
import json
import pathlib
import re

import numpy as np
import torch

from litepose_jax import nas
from tests.search import helpers

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bench():
  spec = importlib.util.spec_from_file_location('bench_search', ROOT / 'scripts' / 'bench_search.py')
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  return bench


def test_torch_copy_matches_the_supernet(tmp_path):
  ckpt = helpers.save_supernet(tmp_path / 'sn')
  net, variables, _ = nas.load_supernet(ckpt, depthwise_impl='lax', conv_impl='lax')
  model = _bench().torch_supernet_from(net, variables).eval()
  arch = dict(nas.sample(helpers.SPACE, 5), img_size=64)
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  want = net.apply(variables, x, nas.subnet_masks(net, arch))
  with torch.no_grad():
    got = model(torch.from_numpy(x.transpose(0, 3, 1, 2)), arch)
  for w, g in zip(want, got):
    w = np.asarray(w)[..., :g.shape[1]]  # the masked super-net pads to its widest output
    np.testing.assert_allclose(g.numpy().transpose(0, 2, 3, 1), w, atol=1e-4)


def test_prints_the_ratio_and_no_compilation_after_the_first(tmp_path, capsys):
  ckpt = helpers.save_supernet(tmp_path / 'sn')
  data = helpers.synthetic_data(tmp_path / 'data', num_images=16)
  cfg = helpers.data_config(tmp_path / 'cfg.py', data)
  out_json = tmp_path / 'bench.json'
  assert _bench().main(['--checkpoint', str(ckpt), '--config', str(cfg), '--size', '64',
                        '--candidates', '2', '--calib-images', '4', '--search-images', '3',
                        '--calib-batch', '2', '--widths', 'masked', '--generation',
                        '--json', str(out_json)]) == 0
  out = capsys.readouterr().out
  assert re.search(r'official flow \(PyTorch\) +\d+\.\d+ s / candidate', out), out
  assert re.search(r'ours, masked \(Fitness\) +\d+\.\d+ s / candidate +\d+\.\d+x cheaper',
                   out), out
  assert re.search(r'compilations: [1-9]\d* for the first candidate, 0 for the other 2', out), out
  record = json.loads(out_json.read_text())
  assert len(record['ap_official']) == len(record['masked']['ap_ours']) == 2
  assert record['masked']['ratio'] > 0 and 'sliced' not in record
  # One generation through search.parallel scores the candidates as one by one did.
  assert re.search(r'as one generation over \d+ devices: \d+\.\d+ s / candidate .*equal', out), out
  assert record['masked']['generation_equal'] is True
