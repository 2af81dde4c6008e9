"""search.run: budgets from the flags, and the search's budget / cache / resume / finalist logic
with a fake scorer and fake costs on the tiny space (the real scorer runs in test_cli.py)."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import zlib

import numpy as np
import pytest

from litepose_jax import models
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.search import run
from tests.search.helpers import SPACE

REPO = pathlib.Path(__file__).resolve().parents[2]


def widths(arch):
  return ([arch['input_channel']] + list(arch['deconv_setting'])
          + [s['channel'] for s in arch['backbone_setting']])


def fake_costs(arch):
  """MACs grow with resolution and widths (paper = 1.4 x true), as real ones do."""
  true = arch['img_size'] ** 2 * sum(widths(arch)) * 10
  return {'params': sum(widths(arch)) * 1000, 'macs_true': true, 'macs_paper': int(true * 1.4)}


def fake_ap(arch):
  """Bigger nets score better, plus an arch-dependent jitter (so the best is not the largest)."""
  jitter = zlib.crc32(json.dumps(arch, sort_keys=True).encode()) % 1000 / 1000
  return 0.2 + fake_costs(arch)['macs_true'] / 4e8 + 0.05 * jitter


class Scorer:
  """score_many with a call count; `fail_after` scores, it raises (a killed search)."""

  def __init__(self, fail_after=None):
    self.calls, self.fail_after = 0, fail_after

  def __call__(self, archs, done=None):
    scores = []
    for i, a in enumerate(archs):
      if self.fail_after is not None and self.calls >= self.fail_after:
        raise KeyboardInterrupt('killed')
      self.calls += 1
      scores.append(fake_ap(a))
      if done is not None:
        done(i, scores[-1])
    return scores


class FakeLatency:
  """Predicts 1 ms per 1e6 true MACs; the real runtime (measure) is 30 % slower on bigger nets."""

  def __init__(self):
    self.measured = 0

  def predict(self, arch):
    return fake_costs(arch)['macs_true'] / 1e6

  def measure(self, arch):
    self.measured += 1
    return self.predict(arch) * (1.0 + 0.3 * (arch['img_size'] == 96))

  def to_dict(self):
    return {'kind': 'fake'}


EVO = dict(population_size=6, iterations=2, parents=3, mutants=3, crossovers=3)
ALL_MACS = sorted(fake_costs(nas.sample(SPACE, s))['macs_true'] / 1e9 for s in range(200))
# Budgets (true GMACs) that admit about a quarter and about three quarters of the space.
LOW, HIGH = round(ALL_MACS[50], 4), round(ALL_MACS[150], 4)


def search(out, budgets, scorer=None, **kw):
  kw = {**EVO, 'uniform_mults': (0.5, 1.0), 'progress': False, **kw}
  return run.search_budgets(SPACE, budgets, str(out), score_many=scorer or Scorer(),
                            costs=fake_costs, **kw)


def test_parse_budgets():
  b = run.parse_budgets('1.2,5,8', None)
  assert [(x.macs, x.latency_ms, x.name) for x in b] == [
      (1.2, None, 'macs1.2G'), (5.0, None, 'macs5G'), (8.0, None, 'macs8G')]
  assert run.parse_budgets('5', '30') == [run.Budget(5.0, 30.0, 'macs5G_lat30ms')]
  assert run.parse_budgets(None, '30') == [run.Budget(None, 30.0, 'lat30ms')]
  assert [x.name for x in run.parse_budgets('1,2', '30')] == ['macs1G_lat30ms', 'macs2G_lat30ms']
  assert [x.name for x in run.parse_budgets('4', '20, 40')] == ['macs4G_lat20ms', 'macs4G_lat40ms']
  assert [x.name for x in run.parse_budgets('1,2', '10,20')] == ['macs1G_lat10ms',
                                                                  'macs2G_lat20ms']


@pytest.mark.parametrize('macs, lat, match', [
    (None, None, 'no budget'),
    ('1,,2', None, '--macs'),
    ('abc', None, '--macs'),
    ('0', None, '--macs'),
    ('-1', None, '--macs'),
    ('inf', None, '--macs'),
    (None, 'nan', '--latency-ms'),
    ('1,2,3', '10,20', '3 values and --latency-ms 2'),
    ('1,2,1', None, 'macs1G is given twice'),
])
def test_parse_budgets_errors(macs, lat, match):
  with pytest.raises(UserError, match=match):
    run.parse_budgets(macs, lat)


def test_budget_seed_depends_on_seed_and_name_only():
  assert run.budget_seed(0, 'macs1G') == run.budget_seed(0, 'macs1G')
  assert len({run.budget_seed(0, 'macs1G'), run.budget_seed(1, 'macs1G'),
              run.budget_seed(0, 'macs2G')}) == 3


def test_sliced_fitness_choice():
  # 'auto' slices on XLA:CPU (the test backend) only where the compile pays back.
  assert run.sliced_fitness('auto', run.SLICED_BREAK_EVEN)
  assert not run.sliced_fitness('auto', run.SLICED_BREAK_EVEN - 1)
  assert run.sliced_fitness('sliced', 1) and not run.sliced_fitness('masked', 10 ** 6)
  with pytest.raises(UserError, match='--fitness-widths'):
    run.run_search('unused', [], 'unused', data_cfg={}, fitness_widths='fast')


def test_best_meets_its_budget_and_files_are_written(tmp_path):
  budgets = run.parse_budgets(f'{LOW},{HIGH}', None)
  res = search(tmp_path, budgets)
  for b, row in zip(budgets, res['budgets']):
    assert row['macs_true'] <= b.macs * 1e9
    # The best of what its evolution saw: no candidate within the budget scored higher.
    assert row['ap'] == pytest.approx(fake_ap(row['arch']))
    assert row['latency_ms_measured'] is None and row['latency_met'] is None
    saved = json.loads((tmp_path / f'{b.name}.json').read_text())
    assert saved == row['arch']
    models.resolve_arch(str(tmp_path / f'{b.name}.json'))  # the official schema
  # The tighter budget cannot have found a better net than the looser one could afford.
  assert res['budgets'][0]['macs_true'] <= LOW * 1e9 < HIGH * 1e9
  assert {(u['mult'], u['img_size']) for u in res['uniform']} == {
      (0.5, 64), (0.5, 96), (1.0, 64), (1.0, 96)}
  assert all(u['ap'] == pytest.approx(fake_ap(u['arch'])) for u in res['uniform'])
  table = (tmp_path / 'table.md').read_text()
  assert f'| macs{LOW:g}G | ' in table and '| x0.5 |' in table
  assert (tmp_path / 'pareto.png').stat().st_size > 1000
  assert json.loads((tmp_path / 'results.json').read_text()) == json.loads(json.dumps(res))


def test_paper_convention_bounds_paper_macs(tmp_path):
  # A budget of LOW paper GMACs admits only nets of LOW / 1.4 true GMACs.
  res = search(tmp_path, run.parse_budgets(f'{HIGH}', None), convention='paper')
  row = res['budgets'][0]
  assert row['convention'] == 'paper' and row['macs_paper'] <= HIGH * 1e9
  assert all(c['macs_paper'] <= HIGH * 1e9 for c in res['candidates'])


def test_budgets_share_the_evaluations(tmp_path):
  scorer = Scorer()
  res = search(tmp_path, run.parse_budgets(f'{LOW},{HIGH}', None), scorer)
  lines = (tmp_path / run.EVALUATIONS).read_text().splitlines()
  distinct = {json.dumps(c['arch'], sort_keys=True) for c in res['candidates'] + res['uniform']}
  # Each net scored once in the whole run, however many budgets' evolutions drew it.
  assert scorer.calls == len(lines) == len(distinct)
  # Every net that the low budget's evolution saw fits the high budget too, so the high one
  # reuses some of them.
  alone = Scorer()
  search(tmp_path / 'alone', run.parse_budgets(f'{HIGH}', None), alone)
  assert scorer.calls < alone.calls + res['budgets'][0]['evaluations'] + len(res['uniform'])
  # Budgets are independent of each other: the same nets as one search per budget.
  for b, row in zip(run.parse_budgets(f'{LOW},{HIGH}', None), res['budgets']):
    single = search(tmp_path / b.name, [b])
    assert single['budgets'][0]['arch'] == row['arch']


def test_resume_evaluates_nothing_and_a_killed_search_ends_the_same(tmp_path):
  budgets = run.parse_budgets(f'{LOW},{HIGH}', None)
  full = search(tmp_path / 'full', budgets)
  # Rerun with results.json gone: everything replays from the log.
  os.remove(tmp_path / 'full' / run.RESULTS)
  again = Scorer()
  assert search(tmp_path / 'full', budgets, again) == full
  assert again.calls == 0
  # A search killed half-way, then resumed, ends with the uninterrupted one's result.
  with pytest.raises(KeyboardInterrupt):
    search(tmp_path / 'killed', budgets, Scorer(fail_after=len(full['candidates']) // 2))
  assert not (tmp_path / 'killed' / run.RESULTS).exists()
  resumed = Scorer()
  res = search(tmp_path / 'killed', budgets, resumed)
  assert 0 < resumed.calls < len(full['candidates']) + len(full['uniform'])
  assert [r['arch'] for r in res['budgets']] == [r['arch'] for r in full['budgets']]
  assert res['candidates'] == full['candidates']


def test_finished_search_with_same_args_is_returned_as_is(tmp_path):
  budgets = run.parse_budgets(f'{HIGH}', None)
  first = search(tmp_path, budgets, args={'id': 1})
  (tmp_path / 'pareto.png').unlink()
  assert search(tmp_path, budgets, args={'id': 1}) == first
  assert not (tmp_path / 'pareto.png').exists()  # nothing redone
  search(tmp_path, budgets, args={'id': 2})
  assert (tmp_path / 'pareto.png').exists()  # other arguments: done again (from the log)


def test_unsatisfiable_budget_names_the_smallest_net(tmp_path):
  smallest = fake_costs(nas.smallest(SPACE))
  tiny = smallest['macs_true'] / 1e9 / 2
  with pytest.raises(UserError, match=rf'--macs {tiny:g}: no sub-net fits .* '
                                      rf'{smallest["macs_true"] / 1e9:.4g} G MACs \(true'):
    search(tmp_path, run.parse_budgets(f'{HIGH},{tiny:g}', None))
  assert not (tmp_path / run.EVALUATIONS).exists()  # refused before any evaluation
  lat = FakeLatency()
  with pytest.raises(UserError, match=r'--latency-ms 0.001: no sub-net fits .* ms'):
    search(tmp_path, run.parse_budgets(None, '0.001'), latency_model=lat, measure=lat.measure)


def test_latency_budget_measures_finalists_until_one_fits(tmp_path):
  lat = FakeLatency()
  ms = float(np.median([lat.predict(nas.sample(SPACE, s)) for s in range(100)]))
  budgets = run.parse_budgets(f'{HIGH}', f'{ms:.3f}')
  res = search(tmp_path, budgets, latency_model=lat, measure=lat.measure)
  row = res['budgets'][0]
  assert row['name'] == f'macs{HIGH:g}G_lat{float(f"{ms:.3f}"):g}ms'
  assert row['latency_met'] is True
  assert row['latency_ms_measured'] == pytest.approx(lat.measure(row['arch']))
  assert row['latency_ms_measured'] <= budgets[0].latency_ms
  assert row['macs_true'] <= HIGH * 1e9
  assert row['latency_ms_model'] == pytest.approx(lat.predict(row['arch']))
  assert all(c['latency_ms_model'] is not None for c in res['candidates'])
  # Measured nets are kept: a rerun measures nothing.
  os.remove(tmp_path / run.RESULTS)
  rerun = FakeLatency()
  assert search(tmp_path, budgets, latency_model=rerun, measure=rerun.measure) == res
  assert rerun.measured == 0
  # ... on the same machine and threads only: another measure_key measures again.
  os.remove(tmp_path / run.RESULTS)
  search(tmp_path, budgets, latency_model=rerun, measure=rerun.measure, measure_key='other')
  assert rerun.measured >= 1


class OptimisticLatency(FakeLatency):
  """A model 3x optimistic on 96-px nets: it admits nets that the measurement then rejects."""

  def predict(self, arch):
    return super().predict(arch) / (3 if arch['img_size'] == 96 else 1)

  def measure(self, arch):
    self.measured += 1
    return FakeLatency.predict(self, arch)


def test_latency_finalists_are_measured_until_one_fits(tmp_path):
  lat = OptimisticLatency()
  # Every 64-px net fits by either measure; most 96-px ones, which score higher, by the model
  # only: those finalists fail their measurement and a later one is chosen.
  budget = lat.predict(nas.largest(dataclasses.replace(SPACE, resolutions=(64,))))
  res = search(tmp_path, run.parse_budgets(None, f'{budget:.6f}'), latency_model=lat,
               measure=lat.measure)
  row = res['budgets'][0]
  assert row['latency_met'] is True and row['latency_ms_measured'] <= budget
  # Measured in score order: every better candidate (all within the model's bound), then it.
  better = [c for c in res['candidates'] if c['ap'] > row['ap']]
  assert better and lat.measured == len(better) + 1
  assert all(lat.measure(c['arch']) > budget for c in better)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


# One process of a two-process search with the fakes (jax.distributed over localhost).
WORKER = '''
import json, sys
from litepose_jax.search import parallel, run
parallel.initialize_distributed(sys.argv[1], 2, int(sys.argv[2]))
from tests.search import test_run as t
lat = t.OptimisticLatency()
if sys.argv[2] == '1':  # were process 1 to measure, it would pick other finalists
  lat.measure = lambda arch: 1e9
budget = float(sys.argv[4])
res = t.search(sys.argv[3], run.parse_budgets(None, f'{budget:.6f}'), latency_model=lat,
               measure=lat.measure)
print('RESULT', json.dumps([[r['arch'], r['latency_ms_measured']] for r in res['budgets']]))
'''


def test_two_processes_choose_alike_and_only_process_0_writes(tmp_path):
  port = _free_port()
  budget = OptimisticLatency().predict(nas.largest(dataclasses.replace(SPACE, resolutions=(64,))))
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  procs = [subprocess.Popen([sys.executable, '-c', WORKER, f'127.0.0.1:{port}', str(pid),
                             str(tmp_path / f'out{pid}'), str(budget)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for pid in range(2)]
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=300)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  results = [json.loads(out.split('RESULT ', 1)[1].splitlines()[0]) for out in outs]
  assert results[0] == results[1]
  assert results[0][0][1] <= budget  # process 0's measurement, not process 1's 1e9
  assert (tmp_path / 'out0' / run.RESULTS).is_file()
  assert not (tmp_path / 'out1').exists()
