"""Config files, config arguments, --config.KEY=VALUE overrides and sweep expansion."""
import pathlib

import pytest

from litepose_jax import cli
from litepose_jax.training import cli as train_cli
from litepose_jax.training import config_lib
from litepose_jax.training import sweep

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'


@pytest.mark.parametrize('name,size', [('xs', 256), ('s', 448), ('m', 448), ('l', 512)])
def test_official_recipe(name, size):
  cfg = config_lib.load_config(str(CONFIGS / f'litepose_{name}.py'))
  assert cfg.model.arch == name.upper()
  assert cfg.data.input_size == size and cfg.data.dataset == 'crowdpose'
  assert (cfg.data.split, cfg.eval.split) == ('trainval', 'test')
  assert cfg.optim.name == 'adam' and cfg.optim.lr == 4e-3 and cfg.optim.weight_decay == 0.0
  assert tuple(cfg.optim.milestones) == (350, 480) and cfg.num_epochs == 500
  assert cfg.loss.push_factor == cfg.loss.pull_factor == 1e-3
  assert tuple(cfg.loss.heatmap_factors) == (1.0, 1.0)
  # Every config's docstring carries its run command and expected result.
  doc = (CONFIGS / f'litepose_{name}.py').read_text()
  assert 'litepose train --config configs/litepose_' in doc and 'Expected' in doc


def test_config_arguments():
  cfg = config_lib.load_config(str(CONFIGS / 'litepose_s.py') + ':dataset=coco,synthetic,runlocal')
  assert cfg.data.dataset == 'coco' and cfg.data.synthetic_images > 0
  assert cfg.total_steps == 4 and cfg.data.batch_size == 2
  with pytest.raises(ValueError, match="unknown config argument 'datset'"):
    config_lib.load_config(str(CONFIGS / 'litepose_s.py') + ':datset=coco')
  with pytest.raises(ValueError, match='dataset must be one of'):
    config_lib.load_config(str(CONFIGS / 'litepose_s.py') + ':dataset=mpii')
  with pytest.raises(FileNotFoundError, match='config file not found'):
    config_lib.load_config('configs/nope.py')


def test_overrides_keep_types_and_reject_unknown_fields():
  cfg = config_lib.load_config(str(CONFIGS / 'litepose_xs.py'))
  config_lib.apply_overrides(cfg, ['optim.lr=1e-3', 'model.kernel_size=5', 'mixed_precision=true',
                                   'optim.milestones=(10,20)', 'data.data_dir=/x/y', 'optim.lr=2'])
  assert cfg.optim.lr == 2.0 and isinstance(cfg.optim.lr, float)
  assert cfg.model.kernel_size == 5 and cfg.mixed_precision is True
  assert tuple(cfg.optim.milestones) == (10, 20) and cfg.data.data_dir == '/x/y'
  with pytest.raises(ValueError, match="unknown config field 'optim.lrr'"):
    config_lib.apply_overrides(cfg, ['optim.lrr=1'])
  with pytest.raises(ValueError, match='not a valid int'):
    config_lib.apply_overrides(cfg, ['model.kernel_size=big'])
  with pytest.raises(ValueError, match='is a group'):
    config_lib.apply_overrides(cfg, ['optim=1'])


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
    ('sweep_width.py', 'model.width_mult', [0.5, 0.75, 1.0, 1.25])])
def test_sweep_expansion(sweep_file, field, values, tmp_path):
  runs = sweep.expand(str(CONFIGS / sweep_file) + ':model=XS,base=synthetic', str(tmp_path),
                      ['seed=7'])
  assert len(runs) == len(values)
  leaf = field.split('.')[-1]
  for run, v in zip(runs, values):
    assert run.name == f'{leaf}={v}' and run.workdir == str(tmp_path / run.name)
    cfg = train_cli.load(run.config, run.overrides)
    assert cfg.model[leaf] == v and cfg.seed == 7 and cfg.data.synthetic_images > 0
    assert cfg.model.arch == 'XS'
    assert run.command().startswith('litepose train --config ') and f'--config.{field}={v}' in run.command()


def test_sweep_print_command(capsys, tmp_path):
  rc = cli.main(['sweep', str(CONFIGS / 'sweep_kernel_size.py'), '--workdir', str(tmp_path),
                 '--print', '--config.total_steps=10'])
  assert rc == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4 and all('--config.total_steps=10' in l for l in lines)
  assert 'kernel_size=3' in lines[0] and 'litepose_s.py:dataset=crowdpose' in lines[0]
  with pytest.raises(ValueError, match="unknown config field 'nope'"):
    sweep.expand(str(CONFIGS / 'sweep_width.py'), str(tmp_path), ['nope=1'])
