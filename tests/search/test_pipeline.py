"""`litepose nas`: the whole chain end to end in a tiny configuration, its resumption, the
uniform-width baseline and the budget settings."""
import json
import os
import pathlib

import ml_collections
import pytest

from litepose_jax import cli
from litepose_jax import config_files
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.search import costs as costs_lib
from litepose_jax.search import pipeline
from tests.search.helpers import SPACE
from tests.search.helpers import synthetic_data

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / 'configs' / 'nas.py')


def _argv(workdir, data_dir, *extra):
  """`litepose nas` on configs/nas.py:synthetic,runlocal shrunk to the tests' tiny space."""
  return ['nas', '--config', f'{CONFIG}:synthetic,runlocal', '--workdir', str(workdir),
          f'--config.supernet.data.data_dir={data_dir}',
          f'--config.supernet.supernet.space.depths={SPACE.depths}',
          f'--config.supernet.supernet.space.supernet_depths={SPACE.supernet_depths}',
          '--config.supernet.data.num_parallel_calls=1', '--config.progress=False',
          *[f'--config.{s}.model.{k}=lax' for s in ('supernet', 'finetune')
            for k in ('depthwise_impl', 'conv_impl')], *extra]


def _checkpoint_state(workdir: pathlib.Path) -> dict[str, float]:
  """{path of every model.json under workdir: its mtime}: what a rerun must not rewrite."""
  return {str(p): p.stat().st_mtime for p in workdir.rglob('model.json')}


def test_nas_runs_end_to_end_and_a_rerun_redoes_nothing(tmp_path, capsys):
  data = synthetic_data(tmp_path / 'data', num_images=20)
  work = tmp_path / 'nas'
  assert cli.main(_argv(work, data)) == 0
  out = capsys.readouterr().out
  for n in range(1, 7):
    assert f'stage {n}/6' in out
  report = json.loads((work / 'report.json').read_text())
  (budget,) = report['budgets']  # runlocal: one budget
  assert budget['name'] == 'macs0.1G' and budget['convention'] == 'paper'
  searched, uniform = budget['nets']
  assert (searched['role'], uniform['role']) == ('searched', 'uniform')
  # The baseline costs no more than the searched net, which meets the budget.
  assert uniform['macs_paper'] <= searched['macs_paper'] <= 0.1e9
  assert uniform['arch'] == nas.uniform(SPACE, uniform['mult'], uniform['img_size'])
  for net in (searched, uniform):
    for phase in ('before', 'after'):
      assert 0.0 <= net['eval'][phase]['AP'] <= 1.0
    # Both fine-tuned for the same 4 steps, from their transferred weights.
    ckpt = work / net['folder'] / 'finetune' / 'checkpoints' / '4' / 'model.json'
    assert json.loads(ckpt.read_text())['arch'] == net['arch']
    init = json.loads((work / net['folder'] / 'init' / 'model.json').read_text())
    assert init['calibration']['images'] == 4 and init['arch'] == net['arch']
  assert report['finetune']['steps'] == 4 and report['supernet']['steps'] == 4
  assert report['eval']['images'] == 4 and set(report['stages']) == set(pipeline.STAGES)
  md = (work / 'report.md').read_text()
  assert '## Budget macs0.1G' in md and f'| searched | {searched["img_size"]} |' in md
  assert f'| uniform {uniform["mult"]:g}x |' in md and '(search/pareto.png)' in md
  assert (work / 'search' / 'pareto.png').is_file()

  before = _checkpoint_state(work)
  assert cli.main(_argv(work, data)) == 0
  out = capsys.readouterr().out
  for stage in ('stage 1 skipped', 'stage 2 skipped', 'stage 3: macs0.1G skipped',
                'stage 3: macs0.1G_uniform skipped', 'stage 4: macs0.1G skipped',
                'stage 5: macs0.1G_uniform after fine-tuning skipped'):
    assert stage in out
  assert 'litepose train:' not in out  # no training step ran
  assert _checkpoint_state(work) == before

  # Other fine-tuning settings do not silently reuse the nets fine-tuned with these.
  assert cli.main(_argv(work, data, '--config.finetune.total_steps=5')) == 2
  err = capsys.readouterr().err
  assert 'stage 4 (fine-tune macs0.1G)' in err and 'total_steps' in err


def _costs(arch):
  return costs_lib.arch_costs(arch)


def test_uniform_baseline_is_the_largest_uniform_net_within_the_cost():
  target = nas.uniform(SPACE, 0.75, 64)
  arch, mult = pipeline.uniform_baseline(SPACE, target, costs=_costs, convention='true',
                                         by_macs=True)
  # 0.75x at 64 px itself is the largest uniform net costing no more than itself.
  assert (arch, mult) == (target, 0.75)
  # Without 0.75 among the multipliers: the costliest of the others that fits.
  limit = _costs(target)['macs_true']
  arch, mult = pipeline.uniform_baseline(SPACE, target, costs=_costs, convention='true',
                                         by_macs=True, mults=(0.5, 1.0))
  fitting = [_costs(nas.uniform(SPACE, m, r))['macs_true'] for m in (0.5, 1.0)
             for r in SPACE.resolutions]
  assert mult == 0.5 and _costs(arch)['macs_true'] == max(c for c in fitting if c <= limit)
  # Latency only: the modelled latency decides (here: a model that makes 96 px very slow, so
  # the full widths at 64 px fit a 64 px target).
  slow96 = type('M', (), {'predict': lambda self, a: 100.0 if a['img_size'] == 96 else 1.0})()
  arch, mult = pipeline.uniform_baseline(SPACE, nas.largest(SPACE) | {'img_size': 64},
                                         costs=_costs, convention='true', by_macs=False,
                                         latency_model=slow96)
  assert (arch, mult) == (nas.uniform(SPACE, 1.0, 64), 1.0)
  assert pipeline.uniform_baseline(SPACE, nas.smallest(SPACE), costs=_costs, convention='true',
                                   by_macs=True, mults=(0.5, 1.0)) is None


def test_budgets_choosing_the_same_nets_share_them(tmp_path):
  # Two budgets whose searches chose one net: one searched folder, one baseline folder.
  arch = nas.uniform(SPACE, 0.75, 96)
  rows = [{'name': name, 'arch': arch, 'convention': 'true'} for name in ('macs1G', 'macs2G')]
  config = ml_collections.ConfigDict({'search': {'uniform_mults': (0.25, 0.5)}})
  budgets = pipeline.budgets_of(ml_collections.ConfigDict({'macs': (1.0, 2.0), 'latency_ms': ()}))
  per_budget = pipeline._nets_of(config, str(tmp_path), {'budgets': rows}, budgets,
                                 nas.supernet_model_config(SPACE, 14))
  (b1, (s1, u1)), (b2, (s2, u2)) = per_budget
  assert (b1.name, b2.name) == ('macs1G', 'macs2G')
  assert s1.name == s2.name == 'macs1G' and u1.name == u2.name == 'macs1G_uniform'
  assert (s2.role, u2.role, u2.budget) == ('searched', 'uniform', 'macs2G')
  assert u1.folder == str(tmp_path / 'nets' / 'macs1G_uniform') and u1.mult == 0.5


def test_budgets_come_from_the_search_section():
  cfg = config_files.load_config(f'{CONFIG}:synthetic')
  assert [b.name for b in pipeline.budgets_of(cfg.search)] == ['macs0.1G', 'macs0.25G']
  search = ml_collections.ConfigDict({'macs': (1.2, 5.0), 'latency_ms': (30.0,)})
  assert [b.name for b in pipeline.budgets_of(search)] == ['macs1.2G_lat30ms', 'macs5G_lat30ms']
  with pytest.raises(UserError, match='config.search.macs and config.search.latency_ms'):
    pipeline.budgets_of(ml_collections.ConfigDict({'macs': (), 'latency_ms': ()}))
  with pytest.raises(UserError, match=r'config.search.macs / config.search.latency_ms: .*equal'):
    pipeline.budgets_of(ml_collections.ConfigDict({'macs': (1.0, 2.0, 3.0),
                                                   'latency_ms': (5.0, 6.0)}))


def test_finetune_config_is_the_nets_own(tmp_path):
  cfg = config_files.load_config(f'{CONFIG}:synthetic', ['supernet.data.data_dir=/data/x'])
  arch = tmp_path / 'n.json'
  one = pipeline.finetune_config(cfg.finetune, str(arch), 96, str(tmp_path / 'init'))
  assert one.model.arch == os.path.abspath(arch) and one.data.input_size == 96
  assert one.init_from == str(tmp_path / 'init') and one.is_locked
  # The data location is the super-net's (one override sets both).
  assert one.data.data_dir == '/data/x' and cfg.finetune.data.input_size == 64
