"""search.latency: real LiteRT measurements of tiny sub-nets, the fitted model, its cache."""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest

from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.search import latency
from tests.search.helpers import SPACE

SMALL = dict(num_fit=7, num_val=3, runs=5, warmup=1, progress=False)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """(model, cache_dir) of a real build on the tiny space: 10 sub-nets exported and timed."""
  cache = tmp_path_factory.mktemp('latency_cache')
  return latency.build_latency_model(SPACE, threads=2, cache_dir=str(cache), **SMALL), cache


def _rows(cache) -> list[dict]:
  [jsonl] = [p for p in os.listdir(cache) if p.endswith('.jsonl')]
  with open(cache / jsonl) as f:
    return [json.loads(line) for line in f if line.strip()]


def _fake_paired(calls):
  """A measure_paired stand-in: a 'latency' linear in the features (reference at 1 ms),
  recording its calls."""
  def fake(arch, reference, num_joints=14, **kwargs):
    calls.append(arch)
    ms = 0.1 + float(latency.features(arch, num_joints) @ [1e-7, 1e-7, 2e-7, 2e-7, 3e-7, 1e-6, 0.0])
    return {'ms': ms, 'ref_ms': 1.0, 'ratio': ms}
  return fake


def test_measure_ms_positive_on_a_tiny_sub_net():
  ms = latency.measure_ms(nas.smallest(SPACE), threads=1, runs=3, warmup=1)
  assert isinstance(ms, float) and 0 < ms < math.inf


def test_build_writes_its_cache_and_validates(built):
  model, cache = built
  assert sorted(p.rsplit('.', 1)[1] for p in os.listdir(cache)) == ['json', 'jsonl']
  rows = _rows(cache)
  assert len(rows) == 10 and all(r['runs'] == 5 for r in rows)
  assert all(r[k] > 0 for r in rows for k in ('ms', 'ref_ms', 'ratio', 'seconds'))
  assert {json.dumps(r['reference'], sort_keys=True) for r in rows} == {
      json.dumps(latency.reference_arch(SPACE), sort_keys=True)}
  # The fit covers the range: the smallest (64 px) and the largest (96 px) sub-nets were timed,
  # and the largest is ~7x the smallest's work, so it is slower even on a busy machine.
  by_arch = {json.dumps(r['arch'], sort_keys=True): r['ratio'] for r in rows}
  small = by_arch[json.dumps(nas.smallest(SPACE), sort_keys=True)]
  large = by_arch[json.dumps(nas.largest(SPACE), sort_keys=True)]
  assert large > small
  v = model.validation
  assert v['n'] == 3 and len(v['points']) == 3
  assert all(math.isfinite(v[k]) and v[k] >= 0 for k in ('mean_rel_err', 'max_rel_err'))
  assert v['mean_rel_err'] <= v['max_rel_err']
  fit_archs = {json.dumps(a, sort_keys=True) for a in latency._points(SPACE, 7, 0)}
  for p in v['points']:
    assert json.dumps(p['arch'], sort_keys=True) not in fit_archs  # never used in the fit
    assert p['measured_ms'] > 0 and p['predicted_ms'] == pytest.approx(model.predict(p['arch']))
  for seed in range(5):
    assert model.predict(nas.sample(SPACE, seed)) > 0
  assert all(c >= 0 for c in model.coef) and len(model.coef) == len(latency.FEATURES)
  assert model.threads == 2 and model.machine == latency.machine_key(2)
  # Measurements are on the reference's scale: its quiet (fastest) latency over the build.
  assert model.reference['ms'] == min(r['ref_ms'] for r in rows)
  assert model.fit['measure_total_s'] == pytest.approx(sum(r['seconds'] for r in rows))


def test_second_build_measures_nothing(built, monkeypatch):
  model, cache = built

  def boom(*args, **kwargs):
    raise AssertionError('measured again')
  monkeypatch.setattr(latency, 'measure_ms', boom)
  monkeypatch.setattr(latency, 'measure_paired', boom)
  again = latency.build_latency_model(SPACE, threads=2, cache_dir=str(cache), **SMALL)
  assert again.coef == model.coef and again.validation == model.validation
  assert again.fit['measure_s'] == 0.0
  # Other fit / validation sizes refit from the same measurements (a subset: nothing to time).
  fewer = latency.build_latency_model(SPACE, threads=2, cache_dir=str(cache),
                                      **dict(SMALL, num_fit=8, num_val=2))
  assert fewer.validation['n'] == 2


def test_measure_on_the_model_scale(built):
  model, _ = built
  # The reference against itself: a ratio of ~1 whatever the machine's load, times its quiet ms.
  ms = latency.measure_ms(model.reference['arch'], threads=2, runs=3, warmup=1, model=model)
  assert 0.25 * model.reference['ms'] < ms < 4 * model.reference['ms']
  with pytest.raises(UserError, match='differ from the latency model'):
    latency.measure_ms(model.reference['arch'], threads=1, model=model)


def test_round_trip_through_dict(built):
  model, _ = built
  back = latency.LatencyModel.from_dict(json.loads(json.dumps(model.to_dict())))
  arch = nas.sample(SPACE, 11)
  assert back.predict(arch) == model.predict(arch) and back.validation == model.validation
  with pytest.raises(UserError, match='version'):
    latency.LatencyModel.from_dict(dict(model.to_dict(), version=0))
  with pytest.raises(UserError, match='missing'):
    latency.LatencyModel.from_dict({'coef': [1.0]})


def test_killed_build_resumes_with_the_missing_points(built, tmp_path, monkeypatch):
  _, cache = built
  [jsonl] = [p for p in os.listdir(cache) if p.endswith('.jsonl')]
  shutil.copy(cache / jsonl, tmp_path / jsonl)
  with open(tmp_path / jsonl) as f:
    lines = f.readlines()
  # Six complete lines kept, then half of the seventh: a kill during a write.
  with open(tmp_path / jsonl, 'w') as f:
    f.writelines(lines[:6])
    f.write(lines[6][:20])
  calls = []
  monkeypatch.setattr(latency, 'measure_paired', _fake_paired(calls))
  with pytest.warns(UserWarning, match='incomplete last line'):
    model = latency.build_latency_model(SPACE, threads=2, cache_dir=str(tmp_path), **SMALL)
  kept = [json.dumps(json.loads(line)['arch'], sort_keys=True) for line in lines[:6]]
  measured = [json.dumps(a, sort_keys=True) for a in calls]
  assert len(calls) == 4 and not set(measured) & set(kept)
  assert len(_rows(tmp_path)) == 10  # the torn line replaced, not kept
  assert model.validation['n'] == 3


def test_fit_recovers_a_linear_latency(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(latency, 'measure_paired', _fake_paired(calls))
  model = latency.build_latency_model(SPACE, threads=1, cache_dir=str(tmp_path), **SMALL)
  assert len(calls) == 10
  # The fake latency is exactly linear in the features: the fit reproduces it.
  assert model.validation['max_rel_err'] < 1e-6
  assert model.coef == pytest.approx([1e-7, 1e-7, 2e-7, 2e-7, 3e-7, 1e-6, 0.1], rel=1e-4)


def test_corrupt_measurement_line_is_a_user_error(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(latency, 'measure_paired', _fake_paired(calls))
  latency.build_latency_model(SPACE, threads=1, cache_dir=str(tmp_path), **SMALL)
  for p in os.listdir(tmp_path):
    if p.endswith('.json'):
      os.remove(tmp_path / p)
    else:
      jsonl = tmp_path / p
  with open(jsonl) as f:
    lines = f.readlines()
  lines[2] = '{"arch": "nonsense"}\n'
  with open(jsonl, 'w') as f:
    f.writelines(lines)
  with pytest.raises(UserError, match=r'\.jsonl:3: not a latency measurement'):
    latency.build_latency_model(SPACE, threads=1, cache_dir=str(tmp_path), **SMALL)


@pytest.mark.parametrize('kwargs,match', [
    ({'threads': 0}, 'threads'),
    ({'num_fit': 4}, 'num_fit'),
    ({'num_val': 0}, 'num_val'),
    ({'runs': 0}, 'runs'),
    ({'warmup': -1}, 'warmup'),
    ({'seed': -1}, 'seed'),
    ({'cache_dir': ''}, 'cache_dir'),
    ({'num_fit': 10 ** 6, 'num_val': 1}, 'exceeds'),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, match):
  args = {**SMALL, 'cache_dir': str(tmp_path), **kwargs}
  with pytest.raises(UserError, match=match):
    latency.build_latency_model(SPACE, **args)
  assert not [p for p in os.listdir(tmp_path) if p.startswith('latency-')]


def test_other_bad_arguments():
  with pytest.raises(UserError, match='space'):
    latency.build_latency_model('official', cache_dir='x')
  with pytest.raises(UserError, match='threads'):
    latency.measure_ms(nas.smallest(SPACE), threads=0)
  with pytest.raises(UserError, match='threads'):
    latency.machine_key(0)
  with pytest.raises(UserError, match='arch must be'):
    latency.features('XS')


def test_machine_key_and_features():
  key = latency.machine_key(3)
  assert key.endswith('| 3 threads') and 'ai-edge-litert' in key and 'cores' in key
  small, large = (latency.features(a) for a in (nas.smallest(SPACE), nas.largest(SPACE)))
  assert small.shape == (len(latency.FEATURES),) and small[-1] == large[-1] == 1.0
  assert np.all(large[:-1] > small[:-1])
