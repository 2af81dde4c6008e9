"""`litepose export`: flags, checkpoints, and the error boundary (user mistakes vs bugs)."""
import json

import pytest

from litepose_jax import cli as litepose_cli
from litepose_jax.errors import UserError
from litepose_jax.export import tflite
from litepose_jax.inference import sidecar


def _main(argv, capsys):
  rc = litepose_cli.main(argv)
  return rc, capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'model.json').write_text('{not json')
  rc, err = _main(['export', '--checkpoint', str(broken), '--out', str(tmp_path / 'm.tflite')],
                  capsys)
  assert rc == 2 and 'not valid JSON' in err
  (broken / 'model.json').write_text(json.dumps({'arch': 'XS'}))
  rc, err = _main(['export', '--checkpoint', str(broken), '--out', str(tmp_path / 'm.tflite')],
                  capsys)
  assert rc == 2 and 'num_joints' in err
  rc, err = _main(['export', '--checkpoint', str(tmp_path / 'nope'), '--out', 'x.tflite'], capsys)
  assert rc == 2 and 'not found' in err
  rc, err = _main(['export', '--arch', 'XS', '--init', 'random', '--size', '100', '--out',
                   str(tmp_path / 'm.tflite')], capsys)
  assert rc == 2 and 'multiple of 16' in err
  rc, err = _main(['export', '--arch', 'XS', '--out', str(tmp_path / 'm.tflite')], capsys)
  assert rc == 2 and '--init random' in err
  with pytest.raises(SystemExit):
    litepose_cli.main(['export', '--arch', 'XS', '--init', 'random', '--quantize', 'int4',
                       '--out', 'm.tflite'])
  assert not (tmp_path / 'm.tflite').exists()


def test_cli_export_random_arch(tmp_path, capsys):
  out = tmp_path / 'xs.tflite'
  rc = litepose_cli.main(['export', '--arch', 'XS', '--init', 'random', '--size', '64',
                          '--out', str(out)])
  printed = capsys.readouterr().out
  assert rc == 0, printed
  assert 'DEPTHWISE_CONV_2D' in printed and 'parity vs JAX' in printed
  assert 'benchmarking only' in printed and 'input resizable' in printed
  meta = sidecar.read(out)
  assert meta['model']['name'] == 'XS' and meta['random_init'] is True


def test_cli_export_from_checkpoint(xs_model, tmp_path, capsys):
  from litepose_jax import checkpoints
  module, variables = xs_model
  ckpt = checkpoints.save_model(tmp_path / 'ckpt', variables,
                                checkpoints.model_config(module.arch, 14))
  out = tmp_path / 'from_ckpt.tflite'
  rc = litepose_cli.main(['export', '--checkpoint', str(ckpt), '--size', '64', '--out', str(out),
                          '--threads', '1'])
  printed = capsys.readouterr().out
  assert rc == 0, printed
  assert 'decoded keypoints moved > 1 px' in printed
  meta = sidecar.read(out)
  assert meta['random_init'] is False and meta['source'] == str(ckpt)
  assert meta['parity']['keypoints_moved_gt_1px'] == 0.0


def test_a_bug_inside_export_keeps_its_traceback(tmp_path, monkeypatch):
  def broken_convert(*args, **kwargs):
    raise ValueError('Dimensions must be equal, but are 14 and 28')
  monkeypatch.setattr(tflite, 'convert', broken_convert)
  argv = ['export', '--arch', 'XS', '--init', 'random', '--size', '64', '--out',
          str(tmp_path / 'm.tflite')]
  with pytest.raises(ValueError, match='Dimensions must be equal') as info:
    litepose_cli.main(argv)
  assert not isinstance(info.value, UserError)
  assert not (tmp_path / 'm.tflite').exists()


def test_a_broken_checkpoint_store_is_not_reworded(tmp_path, monkeypatch):
  # Errors from the checkpoint library are not the user's flags: they keep type and traceback.
  from litepose_jax import checkpoints

  def orbax_failure(path):
    raise KeyError('params/stem/conv/kernel')
  monkeypatch.setattr(checkpoints, 'load_model', orbax_failure)
  with pytest.raises(KeyError, match='stem'):
    litepose_cli.main(['export', '--checkpoint', str(tmp_path), '--out',
                       str(tmp_path / 'm.tflite')])


def test_user_errors_are_one_line_or_raise_with_debug(tmp_path, capsys, monkeypatch):
  monkeypatch.delenv('LITEPOSE_DEBUG', raising=False)
  argv = ['export', '--arch', 'XS', '--init', 'random', '--size', '100', '--out',
          str(tmp_path / 'm.tflite')]
  rc, err = _main(argv, capsys)
  assert rc == 2 and err.strip().count('\n') == 0
  assert err.startswith('litepose export: error: --size must be a positive multiple of 16')
  monkeypatch.setenv('LITEPOSE_DEBUG', '1')
  with pytest.raises(UserError, match='--size'):
    litepose_cli.main(argv)
