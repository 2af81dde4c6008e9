"""The evolutionary search on synthetic objectives: finds a known optimum under a budget, respects
the constraint, is deterministic per seed, memoised, resumable from its log, and fails clearly
on budgets nothing meets."""
import json

import pytest

from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.nas.evolution import evolutionary_search

SPACE = nas.OFFICIAL
SMALL = {'population_size': 12, 'iterations': 8, 'parents': 4, 'mutants': 8, 'crossovers': 8,
         'mutate_prob': 0.3}


def _size(arch):
  """A separable objective: resolution plus every width (bigger is better)."""
  return (arch['img_size'] + arch['input_channel'] + sum(arch['deconv_setting'])
          + sum(s['channel'] for s in arch['backbone_setting']))


def _budget(arch):
  """Stem at most 16 and stage 3 at most 80: the optimum is the largest net with those two."""
  return arch['input_channel'] <= 16 and arch['backbone_setting'][3]['channel'] <= 80


class Counter:
  def __init__(self, fn):
    self.fn, self.calls = fn, []

  def __call__(self, arch):
    self.calls.append(json.dumps(arch, sort_keys=True))
    return self.fn(arch)


def test_finds_the_optimum_under_the_budget():
  result = evolutionary_search(_size, _budget, seed=0)  # the official 40 x 40 setting
  want = nas.largest(SPACE)
  want['input_channel'] = 16
  want['backbone_setting'][3]['channel'] = 80
  assert result['best']['arch'] == want and result['best']['score'] == _size(want)
  assert all(_budget(e['arch']) for e in result['evaluated'])


def test_deterministic_per_seed_and_memoised():
  runs = []
  for seed in (3, 3, 4):
    score = Counter(_size)
    runs.append((evolutionary_search(score, _budget, seed=seed, **SMALL), score))
  (a, sa), (b, _), (c, _) = runs
  assert a == b and a['evaluated'] != c['evaluated']
  # Every architecture scored once: as many calls as distinct architectures evaluated.
  assert len(sa.calls) == len(set(sa.calls)) == len(a['evaluated'])
  assert len(a['evaluated']) < SMALL['population_size'] + SMALL['iterations'] * 16


def test_a_killed_search_resumes_from_its_log(tmp_path):
  log = tmp_path / 'search.jsonl'
  whole = evolutionary_search(_size, _budget, seed=1, log_path=str(log), **SMALL)
  lines = log.read_text().splitlines()
  assert len(lines) == len(whole['evaluated'])
  log.write_text('\n'.join(lines[:10]) + '\n')  # killed after 10 evaluations
  score = Counter(_size)
  resumed = evolutionary_search(score, _budget, seed=1, log_path=str(log), **SMALL)
  assert resumed == whole
  assert len(score.calls) == len(lines) - 10  # the logged ones are not scored again
  assert len(log.read_text().splitlines()) == len(lines)
  log.write_text('not json\n')
  with pytest.raises(UserError, match='search.jsonl:1'):
    evolutionary_search(_size, _budget, seed=1, log_path=str(log), **SMALL)


def test_unsatisfiable_and_too_tight_budgets_fail_with_one_line():
  with pytest.raises(UserError, match='even the smallest one'):
    evolutionary_search(_size, lambda arch: False, seed=0)
  only_smallest = nas.smallest(SPACE)
  with pytest.raises(UserError, match='initial population: no candidate met the constraint'):
    evolutionary_search(_size, lambda arch: arch == only_smallest, seed=0, max_tries=50)
  with pytest.raises(UserError, match='parents'):
    evolutionary_search(_size, _budget, seed=0, parents=0)



def _refuse(arch):
  raise AssertionError('score_fn must not be called when score_many is given')


def test_score_many_scores_each_generation_at_once_with_the_same_result(tmp_path):
  calls = []

  def many(archs, done):
    calls.append(len(archs))
    out = [_size(a) for a in archs]
    done(0, out[0])  # reported early, then again in the returned list: logged once
    return out

  kw = dict(seed=3, **SMALL)
  one = nas.evolutionary_search(_size, _budget, **kw)
  log = tmp_path / 'log.jsonl'
  batched = nas.evolutionary_search(_refuse, _budget, score_many=many, log_path=str(log), **kw)
  assert batched == one
  assert len(calls) == 1 + SMALL['iterations'] and calls[0] == SMALL['population_size']
  assert sum(calls) == len(one['evaluated'])
  lines = log.read_text().splitlines()
  assert len(lines) == len(one['evaluated'])
