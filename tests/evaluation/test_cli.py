"""`litepose eval --config`: a training config names the ground truth of its eval split."""
import argparse

import pytest

from litepose_jax.evaluation import cli as eval_cli


def _args(**kw):
  base = dict(ann=None, images=None, dataset=None, config=None)
  base.update(kw)
  return argparse.Namespace(**base)


def test_training_config_resolves_eval_split(tmp_path, sample_data):
  cfg = tmp_path / 'cfg.py'
  cfg.write_text(
      'import ml_collections\n'
      'def get_config(arg=None):\n'
      '  c = ml_collections.ConfigDict()\n'
      f'  c.data = dict(dataset="crowdpose", data_dir={str(sample_data / "crowdpose_sample")!r}, '
      'split="trainval")\n'
      '  c.eval = dict(split=arg or "test")\n'
      '  return c\n')
  ann, images, dataset = eval_cli._data_args(_args(config=f'{cfg}:test'))
  assert ann == str(sample_data / 'crowdpose_sample' / 'annotations.json')
  assert images == str(sample_data / 'crowdpose_sample') and dataset == 'crowdpose'


def test_flip_test_is_the_default():
  from litepose_jax import cli
  parser = cli.build_parser('eval')
  base = ['eval', '--checkpoint', 'c']
  assert parser.parse_args(base).flip is True  # official TEST.FLIP_TEST True
  assert parser.parse_args(base + ['--no-flip']).flip is False
  assert parser.parse_args(base + ['--flip']).flip is True  # the old spelling still works


def test_missing_sources_are_named(tmp_path):
  with pytest.raises(ValueError, match='missing --ann, --images'):
    eval_cli._data_args(_args(dataset='coco'))
  with pytest.raises(FileNotFoundError, match='config file not found'):
    eval_cli._data_args(_args(config=str(tmp_path / 'nope.py')))


@pytest.fixture(scope='module')
def xs_checkpoint(tmp_path_factory):
  """A random-weight LitePose-XS checkpoint (the eval command needs one to start)."""
  from litepose_jax import checkpoints
  from litepose_jax import models
  module = models.create_model('XS', 14)
  path = tmp_path_factory.mktemp('ckpt') / 'xs'
  checkpoints.save_model(path, models.init_variables(module, 64),
                         checkpoints.model_config(module.arch, 14))
  return path


def _eval_argv(xs_checkpoint, sample_data, tmp_path, *extra):
  data = sample_data / 'crowdpose_sample'
  return ['eval', '--checkpoint', str(xs_checkpoint), '--ann', str(data / 'annotations.json'),
          '--images', str(data), '--dataset', 'crowdpose', '--size', '64', '--out',
          str(tmp_path / 'ev'), *extra]


def test_a_bug_inside_eval_keeps_its_traceback(xs_checkpoint, sample_data, tmp_path, monkeypatch):
  from litepose_jax import cli
  from litepose_jax.errors import UserError
  from litepose_jax.inference import predictor as predictor_lib

  def broken_maps(self, images, flip_index):
    raise ValueError('operands could not be broadcast together with shapes (8,) (9,)')
  monkeypatch.setattr(predictor_lib.JaxBackend, 'maps', broken_maps)
  with pytest.raises(ValueError, match='broadcast') as info:
    cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path))
  assert not isinstance(info.value, UserError)
  monkeypatch.setattr(predictor_lib.JaxBackend, 'maps', lambda self, images, fi: None)
  with pytest.raises(TypeError):  # a TypeError from deep inside propagates too
    cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path))


def test_a_bad_flag_is_one_line_and_debug_raises(xs_checkpoint, sample_data, tmp_path, capsys,
                                                 monkeypatch):
  from litepose_jax import cli
  from litepose_jax.errors import UserError
  monkeypatch.delenv('LITEPOSE_DEBUG', raising=False)
  assert cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path, '--scales', '1,x')) == 2
  err = capsys.readouterr().err
  assert err.strip().count('\n') == 0 and '--scales must be comma-separated' in err
  assert cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path, '--scales', '-1')) == 2
  assert '--scales must be positive' in capsys.readouterr().err
  assert cli.main(['eval', '--checkpoint', str(tmp_path / 'nope'), '--dataset', 'coco']) == 2
  assert 'missing --ann, --images' in capsys.readouterr().err
  monkeypatch.setenv('LITEPOSE_DEBUG', '1')
  with pytest.raises(UserError, match='--scales'):
    cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path, '--scales', '1,x'))


def test_eval_names_its_input_protocol(xs_checkpoint, sample_data, tmp_path, capsys):
  import json

  from litepose_jax import cli
  assert cli.main(_eval_argv(xs_checkpoint, sample_data, tmp_path, '--no-flip')) == 0
  out = capsys.readouterr().out
  metrics = json.loads((tmp_path / 'ev' / 'eval_crowdpose_metrics.json').read_text())
  assert metrics['protocol'].startswith('official: short side to 64') and not metrics['flip']
  assert 'input: official' in out
  parser = cli.build_parser('eval')
  assert parser.parse_args(['eval', '--checkpoint', 'm.tflite', '--fixed-input']).fixed_input


@pytest.fixture(scope='module')
def supernet_setup(tmp_path_factory):
  """(super-net checkpoint, config file, sub-net arch json): a shallow random super-net and a
  synthetic CrowdPose-layout data set of 8 images (7 train, 1 val)."""
  import json

  from litepose_jax import checkpoints
  from litepose_jax import models
  from litepose_jax import nas
  from litepose_jax.data import synthetic
  from tests.nas import helpers
  root = tmp_path_factory.mktemp('supernet_eval')
  space = nas.SearchSpace(depths=(2, 2, 2, 2), supernet_depths=(2, 3, 3, 2))
  net = nas.create_supernet(14, space, depthwise_impl='lax', conv_impl='lax')
  checkpoints.save_model(root / 'super', models.init_variables(net, 64, 0),
                         nas.supernet_model_config(space, 14))
  synthetic.generate(root / 'data', num_images=8, seed=0, size=96, progress=False)
  cfg = helpers.write_data_config(root / 'cfg.py', root / 'data')
  arch = root / 'sub_a.json'
  arch.write_text(json.dumps(nas.sample(space, 3)))
  return root / 'super', cfg, arch


# ~25 s on 2 cores: the super-net's training-mode forward compiles with the CPU kernels ('auto').
def test_eval_supernet_arch_recalibrates_and_scores_the_subnet(supernet_setup, tmp_path, capsys):
  import json

  from litepose_jax import cli
  ckpt, cfg, arch = supernet_setup
  argv = ['eval', '--checkpoint', str(ckpt), '--config', str(cfg), '--supernet-arch', str(arch),
          '--size', '64', '--calib-images', '3', '--calib-batch', '2', '--no-flip', '--out',
          str(tmp_path)]
  assert cli.main(argv) == 0
  metrics = json.loads((tmp_path / 'eval_crowdpose_sub_a_metrics.json').read_text())
  assert 0.0 <= metrics['AP'] <= 1.0 and metrics['images'] == 1
  assert metrics['supernet_arch'] == str(arch)
  assert metrics['subnet'] == json.loads(arch.read_text())
  assert metrics['calibration'] == {'images': 3, 'batches': 2, 'requested_images': 3,
                                    'batch_size': 2, 'seed': 0, 'split': 'train', 'size': 64}
  assert 'metrics:' in capsys.readouterr().out


def test_eval_supernet_arch_errors(supernet_setup, xs_checkpoint, tmp_path, capsys, monkeypatch):
  from litepose_jax import cli
  ckpt, cfg, arch = supernet_setup
  monkeypatch.delenv('LITEPOSE_DEBUG', raising=False)
  base = ['eval', '--supernet-arch', str(arch), '--size', '64', '--out', str(tmp_path)]
  assert cli.main(base + ['--checkpoint', str(ckpt), '--ann', 'a.json', '--images', '.',
                          '--dataset', 'crowdpose']) == 2
  assert '--supernet-arch needs --config' in capsys.readouterr().err
  assert cli.main(base + ['--checkpoint', str(xs_checkpoint), '--config', str(cfg)]) == 2
  assert 'not a super-net checkpoint' in capsys.readouterr().err
  assert cli.main(base + ['--checkpoint', str(ckpt), '--config', str(cfg),
                          '--calib-images', '0']) == 2
  assert '--calib-images' in capsys.readouterr().err
