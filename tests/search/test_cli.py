"""`litepose search` end to end on the tiny super-net and synthetic data (a tiny evolution), its
one-line errors, and where its data config comes from."""
from __future__ import annotations

import functools
import json

import pytest

from litepose_jax import cli
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.search import cli as search_cli
from litepose_jax.search import costs
from litepose_jax.search import run
from tests.nas.helpers import LAX
from tests.search.helpers import JOINTS
from tests.search.helpers import SPACE
from tests.search.helpers import data_config
from tests.search.helpers import save_supernet
from tests.search.helpers import synthetic_data

TINY = ['--population', '4', '--iterations', '1', '--parents', '2', '--mutants', '2',
        '--crossovers', '2', '--calib-images', '8', '--search-images', '6', '--calib-batch', '4',
        '--uniform-mults', '0.25,1.0', '--no-progress']


def gmacs(arch, convention='true'):
  return costs.arch_costs(arch, JOINTS)[f'macs_{convention}'] / 1e9


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('search_cli')
  ckpt = save_supernet(root / 'supernet')
  cfg = data_config(root / 'data_cfg.py', synthetic_data(root / 'data', num_images=20))
  return root, str(ckpt), str(cfg)


def test_search_end_to_end(setup, capsys, monkeypatch):
  root, ckpt, cfg = setup
  # XLA's own convolutions: the same sub-nets, compiled several times faster on CPU.
  monkeypatch.setattr(nas, 'load_supernet', functools.partial(nas.load_supernet, **LAX))
  lo, hi = gmacs(nas.smallest(SPACE)), gmacs(nas.largest(SPACE))
  budgets = [round(lo + (hi - lo) * f, 4) for f in (0.3, 0.7)]
  out = root / 'out'
  argv = ['search', '--checkpoint', ckpt, '--config', cfg, '--macs',
          ','.join(f'{b:g}' for b in budgets), '--out', str(out), *TINY]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  results = json.loads((out / run.RESULTS).read_text())
  assert [b['name'] for b in results['budgets']] == [f'macs{b:g}G' for b in budgets]
  for budget, row in zip(budgets, results['budgets']):
    path = out / row['file']
    net = models.create_model(str(path), JOINTS)  # the official schema, loadable as is
    assert net.arch.img_size == row['arch']['img_size']
    assert gmacs(json.loads(path.read_text())) <= budget
    assert row['macs_true'] == costs.arch_costs(row['arch'], JOINTS)['macs_true']
    assert 0.0 <= row['ap'] <= 1.0 and row['evaluations'] >= 4
    assert f'| {row["name"]} | {row["ap"]:.4f} |' in printed
  assert len(results['uniform']) == 4  # 0.25 and 1.0 at 64 and 96 px
  lines = (out / run.EVALUATIONS).read_text().splitlines()
  assert len(lines) == len(results['candidates']) + len(results['uniform'])  # each net once
  for name in ('splits.json', run.TABLE, run.PICTURE, run.FITNESS):
    assert (out / name).is_file()
  assert f'wrote {out}' in printed
  # Done: the same command returns the results as they are, evaluating or redrawing nothing.
  (out / run.PICTURE).unlink()
  assert cli.main(argv) == 0
  assert not (out / run.PICTURE).exists()
  # Scores of another calibration cannot be reused: refused, in one line.
  assert cli.main(argv + ['--seed', '1']) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('litepose search: error: ') and 'seed differ' in err and '\n' not in err
  assert (out / run.EVALUATIONS).read_text().splitlines() == lines
  assert json.loads((out / run.RESULTS).read_text()) == results


def test_unsatisfiable_budget_is_one_line(setup, capsys):
  root, ckpt, cfg = setup
  smallest = gmacs(nas.smallest(SPACE), 'paper')
  rc = cli.main(['search', '--checkpoint', ckpt, '--config', cfg, '--macs', '0.0001',
                 '--convention', 'paper', '--out', str(root / 'none'), *TINY])
  err = capsys.readouterr().err.strip()
  assert rc == 2 and '\n' not in err
  assert err.startswith('litepose search: error: --macs 0.0001: no sub-net fits this budget')
  assert f'{smallest:.4g} G MACs (paper convention)' in err
  assert not (root / 'none' / run.EVALUATIONS).exists()


def test_config_defaults_to_the_workdirs_saved_one(tmp_path):
  work = tmp_path / 'work'
  (work / 'checkpoints' / '7').mkdir(parents=True)
  (work / 'best').mkdir()
  (work / 'config.json').write_text(json.dumps(
      {'data': {'dataset': 'crowdpose', 'split': 'train', 'data_dir': '/d'}, 'seed': 1}))
  for where in (work, work / 'checkpoints' / '7', work / 'best'):
    assert search_cli.saved_config_path(str(where)) == str(work / 'config.json')
  data = search_cli.load_data_config(None, str(work / 'checkpoints' / '7'),
                                     ['data.data_dir=/e'])
  assert data.split == 'train' and data.data_dir == '/e'
  with pytest.raises(UserError, match='--config is required'):
    search_cli.load_data_config(None, str(tmp_path))
