"""search.accuracy_model: Spearman with ties, the MLP on a separable objective, determinism and
pair checks; and `search_budgets(prescreen=K)` with test_run.py's fake scorer and costs (no
super-net): fewer measurements, a measured best, predicted lines in the log, resumability."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.search import accuracy_model as am
from litepose_jax.search import cli
from litepose_jax.search import run
from tests.search.helpers import JOINTS
from tests.search.helpers import SPACE
from tests.search.test_run import HIGH
from tests.search.test_run import LOW
from tests.search.test_run import Scorer
from tests.search.test_run import fake_ap
from tests.search.test_run import search


def test_ranks_average_ties():
  np.testing.assert_array_equal(am.ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
  np.testing.assert_array_equal(am.ranks([3, 1, 3, 3, 2]), [4, 1, 4, 4, 2])
  np.testing.assert_array_equal(am.ranks([5.0]), [1])


def test_spearman_known_cases():
  assert am.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
  assert am.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  # Monotone, not linear: still 1.
  assert am.spearman([1, 2, 3, 4, 5], [1, 8, 27, 64, 125]) == pytest.approx(1.0)
  # Ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10).
  assert am.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
  # Without ties it is 1 - 6 sum(d^2) / (n (n^2 - 1)): d = (1, -1, 1, -1, 0) -> 1 - 24 / 120.
  assert am.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
  assert math.isnan(am.spearman([1, 1, 1], [1, 2, 3]))  # constant: undefined
  with pytest.raises(ValueError, match='3 and 2'):
    am.spearman([1, 2, 3], [1, 2])


def separable(space, seed=0):
  """A separable objective of the genes: a random weight per (gene, value)."""
  rng = np.random.default_rng(seed)
  weights = [rng.normal(size=n) for n in space.num_choices()]
  return lambda arch: float(sum(w[g] for w, g in zip(weights, nas.encode(arch, space))))


def test_mlp_recovers_a_separable_ranking():
  f = separable(nas.OFFICIAL)
  archs = [nas.sample(nas.OFFICIAL, s) for s in range(140)]
  aps = np.array([f(a) for a in archs]) * 0.01 + 0.3  # on an AP-like scale
  model = am.fit_accuracy_model(archs[:60], aps[:60], nas.OFFICIAL, seed=0)
  assert model.pairs == 60
  assert model.spearman(archs[60:], aps[60:]) > 0.8  # nets it never saw
  assert abs(float(np.mean(model.predict(archs[60:]))) - float(np.mean(aps[60:]))) < 0.01
  assert am.cross_validated_rank_correlation(archs[:60], aps[:60], nas.OFFICIAL) > 0.8
  # A target unrelated to the genes is not "recovered".
  noise = np.random.default_rng(1).normal(size=60)
  assert abs(am.cross_validated_rank_correlation(archs[:60], noise, nas.OFFICIAL)) < 0.5


def test_deterministic_per_seed():
  # The official space and 60 pairs, as above: the compiled programs are reused.
  f = separable(nas.OFFICIAL, seed=2)
  archs = [nas.sample(nas.OFFICIAL, s) for s in range(200, 260)]
  aps = [f(a) for a in archs]
  a = am.fit_accuracy_model(archs, aps, nas.OFFICIAL, seed=0).predict(archs)
  b = am.fit_accuracy_model(archs, aps, nas.OFFICIAL, seed=0).predict(archs)
  c = am.fit_accuracy_model(archs, aps, nas.OFFICIAL, seed=1).predict(archs)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert (am.cross_validated_rank_correlation(archs, aps, nas.OFFICIAL, seed=3)
          == am.cross_validated_rank_correlation(archs, aps, nas.OFFICIAL, seed=3))
  folds = am.fold_of(23, 5, seed=0)
  assert sorted(np.bincount(folds)) == [4, 4, 5, 5, 5]


def test_too_few_or_broken_pairs_are_user_errors():
  archs = [nas.sample(SPACE, s) for s in range(12)]
  with pytest.raises(UserError, match=r'fit_accuracy_model: 3 measured .* at least 8'):
    am.fit_accuracy_model(archs[:3], [0.1, 0.2, 0.3], SPACE)
  with pytest.raises(UserError, match='12 architectures but 11 APs'):
    am.fit_accuracy_model(archs, [0.1] * 11, SPACE)
  with pytest.raises(UserError, match='finite'):
    am.fit_accuracy_model(archs, [0.1] * 11 + [math.nan], SPACE)
  assert am.cv_min_pairs(5) == 10
  with pytest.raises(UserError, match=r'\(5 folds\): 9 measured .* at least 10'):
    am.cross_validated_rank_correlation(archs[:9], [0.1] * 9, SPACE, folds=5)
  with pytest.raises(UserError, match='folds must be an integer >= 2'):
    am.cross_validated_rank_correlation(archs, [0.1] * 12, SPACE, folds=1)


# Big enough for the screening to start: 4 uniform + 12 initial nets measured >= population 12,
# then each generation's 16 children are screened (8 measured at K = 2, at least `parents`).
EVO = dict(population_size=12, iterations=4, parents=4, mutants=8, crossovers=8)


def log_lines(path):
  return [json.loads(line) for line in (path / run.EVALUATIONS).read_text().splitlines()]


def test_prescreen_measures_fewer_and_chooses_a_measured_net(tmp_path):
  budgets = run.parse_budgets(f'{LOW},{HIGH}', None)
  plain, screened = Scorer(), Scorer()
  search(tmp_path / 'plain', budgets, plain, **EVO)
  res = search(tmp_path / 'k2', budgets, screened, prescreen=2, **EVO)
  assert screened.calls < plain.calls
  lines = log_lines(tmp_path / 'k2')
  predicted = [r for r in lines if r.get('predicted')]
  measured = [r for r in lines if not r.get('predicted')]
  assert predicted and len(measured) == screened.calls  # each measured net logged once
  # A predicted score is the predictor's, not the scorer's.
  assert all(r['score'] != pytest.approx(fake_ap(r['arch']), abs=1e-9) for r in predicted)
  measured_archs = {json.dumps(r['arch'], sort_keys=True) for r in measured}
  for row in res['budgets']:
    assert json.dumps(row['arch'], sort_keys=True) in measured_archs
    assert row['ap'] == pytest.approx(fake_ap(row['arch']))  # a measured score
    assert row['measured'] < row['evaluations']
  flagged = [c for c in res['candidates'] if c.get('predicted')]
  assert len(flagged) == res['accuracy_model']['predicted'] == len(predicted)
  acc = res['accuracy_model']
  assert acc['measured'] == screened.calls and acc['prescreen'] == 2.0
  assert acc['min_measured'] == EVO['population_size']
  assert -1 <= acc['rank_correlation'] <= 1
  assert 'cross-validated rank correlation' in (tmp_path / 'k2' / run.TABLE).read_text()
  with pytest.raises(UserError, match='--prescreen must be a number >= 1'):
    search(tmp_path / 'bad', budgets, Scorer(), prescreen=0.5, **EVO)


def test_prescreen_is_deterministic_and_resumable(tmp_path):
  budgets = run.parse_budgets(f'{HIGH}', None)
  full = search(tmp_path / 'a', budgets, Scorer(), prescreen=3, **EVO)
  assert search(tmp_path / 'b', budgets, Scorer(), prescreen=3, **EVO) == full
  assert log_lines(tmp_path / 'a') == log_lines(tmp_path / 'b')
  # Killed after most of the measurements, then resumed: the same nets, scores and log.
  measured = full['accuracy_model']['measured']
  with pytest.raises(KeyboardInterrupt):
    search(tmp_path / 'killed', budgets, Scorer(fail_after=measured - 3), prescreen=3, **EVO)
  resumed = Scorer()
  assert search(tmp_path / 'killed', budgets, resumed, prescreen=3, **EVO) == full
  assert resumed.calls == 3
  assert sorted(map(json.dumps, log_lines(tmp_path / 'killed'))) == sorted(
      map(json.dumps, log_lines(tmp_path / 'a')))
  # Without pre-screening on the same log, the predicted nets are measured, not taken as is.
  before = {json.dumps(r['arch'], sort_keys=True) for r in log_lines(tmp_path / 'a')
            if not r.get('predicted')}
  plain = Scorer()
  res = search(tmp_path / 'a', budgets, plain, **EVO)
  nets = {json.dumps(c['arch'], sort_keys=True) for c in res['candidates'] + res['uniform']}
  assert plain.calls == len(nets - before) > 0
  assert all(c['ap'] == pytest.approx(fake_ap(c['arch'])) for c in res['candidates'])
  assert 'accuracy_model' not in res and not any(c.get('predicted') for c in res['candidates'])


def test_cli_flag_and_the_measuring_command(tmp_path, capsys):
  parser = argparse.ArgumentParser()
  cli.add_arguments(parser)
  base = ['--checkpoint', 'sn', '--out', 'o', '--macs', '1']
  assert parser.parse_args(base).prescreen == 1.0  # off by default
  assert parser.parse_args(base + ['--prescreen', '3']).prescreen == 3.0
  # `python -m litepose_jax.search.accuracy_model OUT`: the measured nets of a search's log,
  # in the space of the super-net that fitness.json names (only its model.json is read).
  ckpt = tmp_path / 'supernet'
  ckpt.mkdir()
  (ckpt / 'model.json').write_text(json.dumps(nas.supernet_model_config(SPACE, JOINTS)))
  out = tmp_path / 'search'
  search(out, run.parse_budgets(f'{HIGH}', None), Scorer(), prescreen=2, **EVO)
  with pytest.raises(UserError, match='fitness.json not found'):
    am.measured_pairs(str(out))
  (out / run.FITNESS).write_text(json.dumps({'checkpoint': str(ckpt)}))
  archs, aps, space, _ = am.measured_pairs(str(out))
  assert space == SPACE
  assert len(archs) == sum(1 for r in log_lines(out) if not r.get('predicted'))
  np.testing.assert_allclose(aps, [fake_ap(a) for a in archs])
  assert am.main([str(out), '--seeds', '1']) == 0
  assert f'{len(archs)} measured nets; 5-fold' in capsys.readouterr().out
