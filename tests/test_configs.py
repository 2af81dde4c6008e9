"""Config files, config arguments, --config.KEY=VALUE overrides, locking and sweep expansion."""
import json
import pathlib
import re

import pytest

from litepose_jax import cli
from litepose_jax import config_files
from litepose_jax.data import pipeline
from litepose_jax.errors import UserError
from litepose_jax.training import sweep

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'


@pytest.mark.parametrize('name,size', [('xs', 256), ('s', 448), ('m', 448), ('l', 512)])
def test_official_recipe(name, size):
  cfg = config_files.load_config(str(CONFIGS / f'litepose_{name}.py'))
  assert cfg.model.arch == name.upper()
  assert cfg.data.input_size == size and cfg.data.dataset == 'crowdpose'
  assert (cfg.data.split, cfg.eval.split) == ('trainval', 'test')
  assert cfg.optim.name == 'adam' and cfg.optim.lr == 4e-3 and cfg.optim.weight_decay == 0.0
  assert tuple(cfg.optim.milestones) == (350, 480) and cfg.num_epochs == 500
  assert cfg.loss.push_factor == cfg.loss.pull_factor == 1e-3
  assert tuple(cfg.loss.heatmap_factors) == (1.0, 1.0)
  assert cfg.eval.flip is True  # official TEST.FLIP_TEST True
  # best/ is chosen on held-out training images; `litepose eval --config` reports on test.
  assert cfg.eval.select_on == 'holdout' and cfg.eval.holdout_images == 500
  # Every config's docstring carries its run command and expected result.
  doc = (CONFIGS / f'litepose_{name}.py').read_text()
  assert 'litepose train --config configs/litepose_' in doc and 'Expected' in doc


@pytest.mark.parametrize('arg', [None, 'dataset=coco', 'synthetic', 'fake,runlocal'])
def test_the_four_recipes_differ_only_in_model_and_size(arg):
  # Each file spells out the whole recipe (big_vision style); this keeps the copies in step.
  def flat(name):
    cfg = config_files.load_config(str(CONFIGS / f'litepose_{name}.py') + (f':{arg}' if arg else ''))
    d = cfg.to_dict()
    del d['model']['arch'], d['data']['input_size']
    return d
  xs = flat('xs')
  for name in ('s', 'm', 'l'):
    assert flat(name) == xs, name


def test_config_arguments():
  cfg = config_files.load_config(str(CONFIGS / 'litepose_s.py') + ':dataset=coco,synthetic,runlocal')
  assert cfg.data.dataset == 'coco' and cfg.data.synthetic_images > 0
  assert cfg.total_steps == 4 and cfg.data.batch_size == 2
  with pytest.raises(UserError, match="unknown config argument 'datset'"):
    config_files.load_config(str(CONFIGS / 'litepose_s.py') + ':datset=coco')
  with pytest.raises(UserError, match='dataset must be one of'):
    config_files.load_config(str(CONFIGS / 'litepose_s.py') + ':dataset=mpii')
  with pytest.raises(FileNotFoundError, match='config file not found'):
    config_files.load_config('configs/nope.py')


def test_overrides_keep_types_and_reject_unknown_fields():
  cfg = config_files.load_config(str(CONFIGS / 'litepose_xs.py'))
  config_files.apply_overrides(cfg, ['optim.lr=1e-3', 'model.kernel_size=5', 'mixed_precision=true',
                                   'optim.milestones=(10,20)', 'data.data_dir=/x/y', 'optim.lr=2'])
  assert cfg.optim.lr == 2.0 and isinstance(cfg.optim.lr, float)
  assert cfg.model.kernel_size == 5 and cfg.mixed_precision is True
  assert tuple(cfg.optim.milestones) == (10, 20) and cfg.data.data_dir == '/x/y'
  with pytest.raises(UserError, match="unknown config field 'optim.lrr'"):
    config_files.apply_overrides(cfg, ['optim.lrr=1'])
  with pytest.raises(ValueError, match='not a valid int'):
    config_files.apply_overrides(cfg, ['model.kernel_size=big'])
  with pytest.raises(ValueError, match='is a group'):
    config_files.apply_overrides(cfg, ['optim=1'])


def test_cli_collects_config_flags():
  parser = cli.build_parser('train')
  args = parser.parse_args(['train', '--config', 'configs/litepose_s.py', '--workdir', 'w',
                            '--config.optim.lr=1e-3', '--config.seed', '3'])
  assert args.config == 'configs/litepose_s.py' and args.workdir == 'w'
  assert args.config_overrides == ['optim.lr=1e-3', 'seed=3']
  assert cli.main(['train', '--config', str(CONFIGS / 'litepose_s.py'), '--workdir', 'w',
                   '--config.optim.nope=1']) == 2


@pytest.mark.parametrize('sweep_file,field,values', [
    ('sweep_kernel_size.py', 'model.kernel_size', [3, 5, 7, 9]),
    ('sweep_width.py', 'model.width_mult', [0.5, 0.75, 1.0, 1.25]),
    ('sweep_fusion.py', 'model.fusion', [True, False])])
def test_sweep_expansion(sweep_file, field, values, tmp_path):
  runs = sweep.expand(str(CONFIGS / sweep_file) + ':model=XS,base=synthetic', str(tmp_path),
                      ['seed=7'])
  assert len(runs) == len(values)
  leaf = field.split('.')[-1]
  for run, v in zip(runs, values):
    assert run.name == f'{leaf}={v}' and run.workdir == str(tmp_path / run.name)
    cfg = config_files.load_config(run.config, run.overrides)
    assert cfg.model[leaf] == v and cfg.seed == 7 and cfg.data.synthetic_images > 0
    assert cfg.model.arch == 'XS'
    assert run.command().startswith('litepose train --config ') and f'--config.{field}={v}' in run.command()


def test_sweep_print_command(capsys, tmp_path):
  rc = cli.main(['sweep', str(CONFIGS / 'sweep_kernel_size.py'), '--workdir', str(tmp_path),
                 '--print', '--config.total_steps=10'])
  assert rc == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4 and all('--config.total_steps=10' in ln for ln in lines)
  assert 'kernel_size=3' in lines[0] and 'litepose_s.py:dataset=crowdpose' in lines[0]
  with pytest.raises(ValueError, match="unknown config field 'nope'"):
    sweep.expand(str(CONFIGS / 'sweep_width.py'), str(tmp_path), ['nope=1'])


ARGUMENTS = {
    'litepose_xs.py': ['', 'dataset=coco', 'synthetic', 'fake', 'runlocal', 'quickstart',
                       'quickstart,fake,runlocal', 'dataset=coco,synthetic,fake,runlocal'],
    'litepose_s.py': ['', 'dataset=coco', 'synthetic', 'fake', 'runlocal',
                      'dataset=coco,synthetic,fake,runlocal'],
    'litepose_m.py': ['', 'dataset=coco', 'synthetic', 'fake', 'runlocal'],
    'litepose_l.py': ['', 'dataset=coco', 'synthetic', 'fake', 'runlocal'],
    'quickstart.py': ['', 'fake', 'runlocal', 'fake,runlocal'],
    'supernet.py': ['', 'dataset=coco', 'policy=sandwich', 'synthetic', 'fake', 'runlocal',
                    'synthetic,policy=sandwich,runlocal', 'fake,runlocal'],
}


def test_every_config_file_is_covered():
  files = {p.name for p in CONFIGS.glob('*.py')} - {'common.py'}
  assert files == set(ARGUMENTS) | {'sweep_kernel_size.py', 'sweep_width.py', 'sweep_fusion.py',
                                    'sweep_shrink.py', 'nas.py'}


@pytest.mark.parametrize('name,arg', [(n, a) for n, args in ARGUMENTS.items() for a in args])
def test_each_config_loads_with_each_argument(name, arg):
  cfg = config_files.load_config(str(CONFIGS / name) + (f':{arg}' if arg else ''))
  assert cfg.is_locked
  # The data section has the pipeline's fields plus the trainer's data-source fields.
  assert set(cfg.data) == set(pipeline.default_data_config()) | {'source', 'synthetic_images',
                                                                   'fake'}
  assert (cfg.data.source == 'fake') == ('fake' in arg)
  assert cfg.eval.flip is True  # evaluation follows the official flip test, the quickstart too
  # Synthetic data have a fresh val split to select on; real data hold out training images.
  synthetic = 'synthetic' in arg or 'quickstart' in arg or name == 'quickstart.py'
  assert cfg.eval.select_on == ('split' if synthetic else 'holdout')
  if 'runlocal' in arg:
    assert cfg.total_steps == 4 and cfg.data.batch_size == 2
  if 'coco' in arg:
    assert (cfg.data.dataset, cfg.data.split) == ('coco', 'train')


def test_supernet_recipe_is_the_official_one_but_for_the_policy():
  cfg = config_files.load_config(str(CONFIGS / 'supernet.py'))
  assert cfg.supernet.policy == 'official' and cfg.supernet.enabled
  assert tuple(cfg.data.input_sizes) == (256, 320, 384, 448, 512) and cfg.data.input_size == 512
  assert (cfg.optim.name, cfg.optim.lr, cfg.optim.schedule) == ('adam', 4e-3, 'constant')
  assert cfg.supernet.space.depths == (6, 8, 10, 10) and not cfg.supernet.shipped_depths
  sandwich = config_files.load_config(str(CONFIGS / 'supernet.py') + ':policy=sandwich')
  assert sandwich.supernet.policy == 'sandwich' and sandwich.supernet.num_random == 2
  synthetic = config_files.load_config(str(CONFIGS / 'supernet.py') + ':synthetic')
  assert set(synthetic.data.input_sizes) == set(synthetic.supernet.space.resolutions)


def test_quickstart_does_not_combine_with_other_data():
  with pytest.raises(UserError, match='quickstart'):
    config_files.load_config(str(CONFIGS / 'litepose_xs.py') + ':quickstart,dataset=coco')


def test_typo_after_locking_names_the_key():
  cfg = config_files.load_config(str(CONFIGS / 'litepose_s.py'), ['data.batch_size=8'])
  assert cfg.data.batch_size == 8
  cfg.data.batch_size = 4  # existing fields stay settable (tests, scripts)
  with pytest.raises(AttributeError, match='batchsize'):
    cfg.data.batchsize = 8
  with pytest.raises(AttributeError, match='batchsize'):
    _ = cfg.data.batchsize
  with pytest.raises(UserError, match="unknown config field 'data.batchsize'"):
    config_files.apply_overrides(cfg, ['data.batchsize=8'])
  with pytest.raises(TypeError):
    cfg.data.batch_size = 'eight'


def test_fake_knobs_live_only_in_the_fake_sub_dict():
  cfg = config_files.load_config(str(CONFIGS / 'litepose_xs.py') + ':fake,runlocal')
  assert set(cfg.data.fake) == {'num_images', 'people', 'nan_at_step'}
  flat = re.findall(r'"([a-z_]+)":', cfg.to_json())
  assert [k for k in flat if 'fake' in k or 'nan' in k] == ['fake', 'nan_at_step']
  # Only the fake-data path reads them; the trainer never does.
  package = pathlib.Path(pipeline.__file__).resolve().parents[1]
  readers = sorted(str(p.relative_to(package)) for p in package.rglob('*.py')
                   if re.search(r'\.fake\b|fake_(num_images|people|nan)', p.read_text()))
  assert readers == ['training/input_pipeline.py'], readers


@pytest.mark.parametrize('arg', ['', 'dataset=coco', 'synthetic', 'fake', 'runlocal',
                                 'synthetic,runlocal', 'fake,runlocal', 'synthetic,fake'])
def test_nas_config_holds_each_stage(arg):
  # configs/nas.py is no training config: its super-net and fine-tuning sections are.
  cfg = config_files.load_config(str(CONFIGS / 'nas.py') + (f':{arg}' if arg else ''),
                                 ['supernet.data.data_dir=/data/x', 'progress=False'])
  assert set(cfg) == {'progress', 'supernet', 'search', 'finetune', 'eval'}
  assert cfg.supernet.supernet.enabled and not cfg.finetune.get('supernet')
  # One data location and one progress switch for every stage.
  assert cfg.finetune.data.data_dir == '/data/x' and not cfg.finetune.progress
  assert (cfg.supernet.data.source == 'fake') == (cfg.finetune.data.source == 'fake') == (
      'fake' in arg)
  assert cfg.search.convention == 'paper' and cfg.eval.flip
  if not arg or arg == 'dataset=coco':  # the official recipe of every stage
    assert tuple(cfg.search.macs) == (1.2, 5.0, 7.8, 13.7)
    assert (cfg.search.population_size, cfg.search.iterations) == (40, 40)
    assert (cfg.finetune.optim.lr, cfg.finetune.num_epochs) == (4e-3, 500)
    assert tuple(cfg.finetune.optim.milestones) == (350, 480)
    assert cfg.supernet.num_epochs == 2400 and cfg.eval.split in ('test', 'val')
  if 'synthetic' in arg:
    assert cfg.eval.split == 'val' and not cfg.finetune.eval.enabled
  if 'runlocal' in arg:
    assert cfg.supernet.total_steps == cfg.finetune.total_steps == 4
    assert len(cfg.search.macs) == 1 and cfg.search.population_size == 2
  doc = (CONFIGS / 'nas.py').read_text()
  assert 'litepose nas --config configs/nas.py' in doc and 'Expected' in doc


def _plan(sweep_file: str, arg: str, tmp_path) -> list[dict]:
  return sweep.plan(sweep.expand(str(CONFIGS / sweep_file) + f':{arg}', str(tmp_path)))


def test_kernel_size_plan_costs_grow_with_the_kernel(tmp_path):
  rows = _plan('sweep_kernel_size.py', 'model=XS,base=synthetic', tmp_path)
  assert [r['name'] for r in rows] == [f'kernel_size={k}' for k in (3, 5, 7, 9)]
  assert all(r['input_size'] == 128 and r['joints'] == 14 for r in rows)
  for key in ('params', 'gmacs_true', 'gmacs_paper'):
    values = [r[key] for r in rows]
    assert values == sorted(values) and len(set(values)) == 4, (key, values)
  # Depthwise MACs grow with k^2 and nothing else changes: 5x5 - 3x3 costs 16/24 of 7x7 - 5x5.
  t = [r['gmacs_true'] for r in rows]
  assert (t[1] - t[0]) / (t[2] - t[1]) == pytest.approx(16 / 24, rel=1e-6)


def test_fusion_plan_costs_and_published_size(tmp_path):
  rows = _plan('sweep_fusion.py', 'model=S', tmp_path)
  fused, plain = rows
  assert (fused['name'], plain['name']) == ('fusion=True', 'fusion=False')
  assert fused['gmacs_true'] > plain['gmacs_true'] and fused['params'] > plain['params']
  assert fused['gmacs_paper'] > plain['gmacs_paper']
  # The fusion point is LitePose-S as published (docs/OFFICIAL.md: 2,731,240 params, 4.981 G).
  assert fused['params'] == 2_731_240 and fused['gmacs_paper'] == pytest.approx(4.981, abs=1e-3)
  assert 'fusion=False' in sweep.format_table(rows) and 'GMACs paper' in sweep.format_table(rows)


def test_sweep_plan_and_report_commands(capsys, tmp_path):
  spec = str(CONFIGS / 'sweep_fusion.py') + ':model=XS,base=synthetic'
  assert cli.main(['sweep', spec, '--workdir', str(tmp_path), '--plan', '--no-progress']) == 0
  out = capsys.readouterr().out
  assert out.count('| fusion=') == 2 and not (tmp_path / sweep.PLAN_FILE).exists()
  # A finished run leaves best.json; a missing one reports '-'.
  (tmp_path / 'fusion=True').mkdir()
  (tmp_path / 'fusion=True' / 'best.json').write_text('{"AP": 0.25, "step": 40}')
  assert cli.main(['sweep', spec, '--workdir', str(tmp_path), '--report', '--no-progress']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].endswith('| AP | AP step |')
  assert lines[2].endswith('| 0.250 | 40 |') and lines[3].endswith('| - | - |')
  saved = json.loads((tmp_path / sweep.REPORT_FILE).read_text())
  assert [r['ap'] for r in saved] == [0.25, None]
  assert cli.main(['sweep', spec, '--workdir', str(tmp_path), '--latency']) == 2
  assert '--latency goes with --report' in capsys.readouterr().err


def test_shrink_sweep_expansion(tmp_path):
  runs = sweep.expand(str(CONFIGS / 'sweep_shrink.py') + ':synthetic,runlocal', str(tmp_path))
  assert [r.name for r in runs] == ['arch=higherhrnet-w16', 'arch=shrink1', 'arch=shrink2',
                                    'arch=shrink3', 'arch=M']
  cfgs = [r.load_config() for r in runs]
  assert [c.model.arch for c in cfgs] == ['higherhrnet-w16', 'shrink1', 'shrink2', 'shrink3', 'M']
  # One recipe for every point: the configs differ in model.arch only.
  flat = [c.to_dict() for c in cfgs]
  for d in flat:
    del d['model']['arch']
  assert all(d == flat[0] for d in flat)
  assert cfgs[0].data.input_size == 128 and cfgs[0].total_steps == 4
  full = sweep.expand(str(CONFIGS / 'sweep_shrink.py'), str(tmp_path))[0].load_config()
  assert full.data.input_size == 512 and full.data.dataset == 'crowdpose'
  quick = sweep.expand(str(CONFIGS / 'sweep_shrink.py') + ':quickstart', str(tmp_path))
  assert [r.load_config().model.arch for r in quick][-2:] == ['shrink3', 'M']
  assert quick[0].load_config().data.input_size == 64  # configs/quickstart.py's recipe


def test_shrink_plan_costs_fall_along_the_study(tmp_path):
  rows = _plan('sweep_shrink.py', 'synthetic', tmp_path)
  paper = [r['gmacs_paper'] for r in rows[:4]]
  # Slides: 12.50 -> 10.12 -> 10.02 -> 9.15 G at 512 px; the order holds at any size.
  assert paper == sorted(paper, reverse=True) and len(set(paper)) == 4
  assert rows[4]['arch'] == 'M' and rows[4]['gmacs_true'] < rows[3]['gmacs_true']
  assert rows[3]['params'] == 7_375_166  # Shrink3 = the shipped w16_512 yaml (SUPERNET_SPEC §7.1)
