"""`litepose extract`: a sub-net checkpoint cut out of a super-net checkpoint equals the masked
super-net, is refused where it is not a sub-net, and runs through `export` (TFLite parity) and
`predict`."""
import json
import shutil

import jax
import numpy as np
import pytest

from litepose_jax import checkpoints
from litepose_jax import cli
from litepose_jax.models import init_variables
from litepose_jax.nas import space as space_lib
from litepose_jax.nas import supernet as supernet_lib
from tests.nas.helpers import SHALLOW_SPACE
from tests.nas.helpers import randomise_bn
from tests.nas.helpers import write_data_config

SIZE = 64  # input side of every forward here: small, so the CPU tests stay quick
JOINTS = 14
# Shallow super-net (2 / 3 / 3 / 2 blocks) at the official widths; sub-nets have 2 blocks a stage.
SPACE = SHALLOW_SPACE
# A sub-net inside SPACE with elastic depth: other widths per gene, 1 / 3 / 2 / 2 blocks.
SUB = space_lib.decode((0, 1, 2, 1, 3, 2, 1, 0, 3), SPACE)
SUB['backbone_setting'][0].update(num_blocks=1, block_setting=[[6, 7]])
SUB['backbone_setting'][1].update(num_blocks=3, block_setting=[[6, 7]] * 3)


def _run(argv, capsys):
  """(exit status, stdout, stderr) of `litepose ARGV`."""
  rc = cli.main(argv)
  captured = capsys.readouterr()
  return rc, captured.out, captured.err


@pytest.fixture(scope='module')
def supernet(tmp_path_factory):
  """(checkpoint dir, variables) of a random super-net of SPACE with randomised BN."""
  net = supernet_lib.create_supernet(JOINTS, SPACE)
  variables = randomise_bn(init_variables(net, SIZE, seed=1), 2)
  path = tmp_path_factory.mktemp('supernet') / 'ckpt'
  checkpoints.save_model(path, variables, supernet_lib.supernet_model_config(SPACE, JOINTS))
  return path, variables


@pytest.fixture(scope='module')
def arch_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('arch') / 'search-T.json'
  path.write_text(json.dumps(SUB))
  return path


@pytest.fixture(scope='module')
def extracted(supernet, arch_file, tmp_path_factory):
  """(checkpoint dir, stdout) of `litepose extract` of SUB."""
  out = tmp_path_factory.mktemp('extracted') / 'search-T'
  rc = cli.main(['extract', '--checkpoint', str(supernet[0]), '--arch', str(arch_file),
                 '--out', str(out)])
  assert rc == 0
  return out


def test_extract_equals_the_masked_supernet(supernet, arch_file, extracted):
  ckpt, super_vars = supernet
  # 'lax' depthwise convs compile several times faster on CPU than the default.
  module, variables, cfg = checkpoints.load_model(extracted, depthwise_impl='lax')
  assert module.arch.to_json_dict() == SUB
  assert cfg['name'] == 'search-T' and cfg['num_joints'] == JOINTS
  assert cfg['joint_set'] == 'crowdpose' and cfg['fusion'] is True
  assert cfg['source'] == {'supernet': str(ckpt), 'arch_file': str(arch_file)}
  assert supernet_lib.SUPERNET_FIELD not in cfg  # a plain LitePose checkpoint
  x = np.random.default_rng(3).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  got = jax.jit(module.apply)(variables, x)
  net = supernet_lib.create_supernet(JOINTS, SPACE, depthwise_impl='lax')
  masks = supernet_lib.subnet_masks(net, SUB)
  want = jax.jit(lambda v, x, m: net.apply(v, x, m))(super_vars, x, masks)
  for g, w in zip(got, want):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


def test_printed_line_and_default_out(supernet, arch_file, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  rc, out, _ = _run(['extract', '--checkpoint', str(supernet[0]), '--arch', str(arch_file)],
                    capsys)
  assert rc == 0
  written = tmp_path / 'extracted' / 'search-T'
  assert (written / 'model.json').is_file()
  assert out.count('\n') == 1 and out.startswith(f'wrote {written} (search-T')
  # Parameters and MACs of SUB itself (at its 256 px img_size), not the super-net's.
  from litepose_jax.models import counting
  from litepose_jax.models import create_model
  c = counting.count(create_model(SUB, JOINTS), 256)
  assert f'{c.params:,} parameters' in out and f'{c.macs() / 1e9:.3f} G MACs' in out
  assert 'at 256x256' in out


def test_workdir_step_and_best(supernet, arch_file, tmp_path, capsys):
  work = tmp_path / 'work'
  shutil.copytree(supernet[0], work / 'checkpoints' / '5')
  rc, _, err = _run(['extract', '--checkpoint', str(work), '--best', '--arch', str(arch_file),
                     '--out', str(tmp_path / 'a')], capsys)
  assert rc == 2 and 'best' in err and 'holds no checkpoint' in err
  rc, _, err = _run(['extract', '--checkpoint', str(work), '--step', '7', '--arch', str(arch_file),
                     '--out', str(tmp_path / 'a')], capsys)
  assert rc == 2 and '--step 7' in err and '[5]' in err
  shutil.copytree(supernet[0], work / 'best')
  for flags in (['--step', '5'], ['--best'], []):
    out = tmp_path / f'out{len(flags)}'
    rc, _, err = _run(['extract', '--checkpoint', str(work), *flags, '--arch', str(arch_file),
                       '--out', str(out)], capsys)
    assert rc == 0, err
    source = json.loads((out / 'model.json').read_text())['source']['supernet']
    assert source == str(work / ('best' if '--best' in flags else 'checkpoints/5'))
  with pytest.raises(SystemExit):  # argparse: --step and --best exclude each other
    cli.main(['extract', '--checkpoint', str(work), '--step', '5', '--best', '--arch', 'S'])


def test_errors_name_the_culprit(supernet, arch_file, extracted, tmp_path, capsys):
  ckpt = str(supernet[0])
  bad = json.loads(json.dumps(SUB))
  bad['backbone_setting'][2]['channel'] = 40
  (tmp_path / 'wide.json').write_text(json.dumps(bad))
  rc, _, err = _run(['extract', '--checkpoint', ckpt, '--arch', str(tmp_path / 'wide.json'),
                     '--out', str(tmp_path / 'x')], capsys)
  assert rc == 2 and 'wide: backbone_setting[2].channel: 40' in err
  # A preset has 6 / 8 / 10 / 10 blocks: deeper than this super-net's first stage.
  rc, _, err = _run(['extract', '--checkpoint', ckpt, '--arch', 'XS', '--out',
                     str(tmp_path / 'x')], capsys)
  assert rc == 2 and 'XS: backbone_setting[0].num_blocks: 6 is outside 1..2' in err
  rc, _, err = _run(['extract', '--checkpoint', ckpt, '--arch', str(arch_file), '--out',
                     str(extracted)], capsys)
  assert rc == 2 and 'already exists' in err
  rc, _, err = _run(['extract', '--checkpoint', str(tmp_path / 'nope'), '--arch', str(arch_file),
                     '--out', str(tmp_path / 'x')], capsys)
  assert rc == 2 and 'not found' in err and 'nope' in err
  rc, _, err = _run(['extract', '--checkpoint', ckpt, '--arch', str(tmp_path / 'none.json'),
                     '--out', str(tmp_path / 'x')], capsys)
  assert rc == 2 and 'architecture file not found' in err
  rc, _, err = _run(['extract', '--checkpoint', ckpt, '--arch', str(arch_file), '--joints', '17',
                     '--out', str(tmp_path / 'x')], capsys)
  assert rc == 2 and '--joints 17' in err and '14 joints' in err
  assert not (tmp_path / 'x').exists()  # nothing written by a refused extraction


def test_any_litepose_checkpoint_can_be_cut_down(supernet, arch_file, tmp_path, capsys):
  # The same variables saved as a plain LitePose (no search space): a note, shapes still checked.
  _, variables = supernet
  plain = checkpoints.save_model(
      tmp_path / 'plain', variables,
      checkpoints.model_config(space_lib.max_arch(SPACE), JOINTS, joint_set='custom',
                               joint_names=[f'j{i}' for i in range(JOINTS)],
                               flip_index=list(range(JOINTS))))
  rc, out, _ = _run(['extract', '--checkpoint', plain, '--arch', str(arch_file), '--out',
                     str(tmp_path / 'sub')], capsys)
  assert rc == 0 and out.startswith('note: ') and 'not a super-net checkpoint' in out
  cfg = json.loads((tmp_path / 'sub' / 'model.json').read_text())
  assert cfg['joint_set'] == 'custom' and cfg['joint_names'][3] == 'j3'
  assert cfg['flip_index'] == list(range(JOINTS))
  # Without a space, a wider stage is refused by the shape check of extract_subnet.
  wide = json.loads(json.dumps(SUB))
  wide['backbone_setting'][3]['channel'] = 168
  (tmp_path / 'wide.json').write_text(json.dumps(wide))
  rc, _, err = _run(['extract', '--checkpoint', plain, '--arch', str(tmp_path / 'wide.json'),
                     '--out', str(tmp_path / 'sub2')], capsys)
  assert rc == 2 and 'larger than the super-net' in err


def test_extract_then_export_tflite_parity(extracted, tmp_path, capsys):
  from litepose_jax.inference import litert
  from litepose_jax.inference import sidecar
  out = tmp_path / 'sub.tflite'
  rc, printed, err = _run(['export', '--checkpoint', str(extracted), '--size', str(SIZE),
                           '--out', str(out), '--threads', '1'], capsys)
  assert rc == 0, err
  assert 'parity vs JAX' in printed
  meta = sidecar.read(out)
  assert meta['model']['name'] == 'search-T' and meta['random_init'] is False
  module, variables, _ = checkpoints.load_model(extracted, depthwise_impl='lax')
  x = np.random.default_rng(7).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
  got4, got2 = litert.TFLiteModel(str(out), 1)(x)
  want4, want2 = module.apply(variables, x)
  assert got4.shape == (1, SIZE // 4, SIZE // 4, 2 * JOINTS) and np.abs(want4).max() > 0.05
  np.testing.assert_allclose(got4, np.asarray(want4), atol=1e-4 * float(np.abs(want4).max()))
  np.testing.assert_allclose(got2, np.asarray(want2), atol=1e-4 * float(np.abs(want2).max()))


def test_extract_then_predict(extracted, sample_data, tmp_path, capsys):
  image = sample_data / 'crowdpose_sample' / '103319.jpg'
  out = tmp_path / 'pred'
  rc, printed, err = _run(['predict', '--checkpoint', str(extracted), '--source', str(image),
                           '--out', str(out), '--size', str(SIZE)], capsys)
  assert rc == 0, err
  assert (out / '103319_poses.jpg').is_file()
  results = json.loads((out / 'results.json').read_text())
  assert isinstance(results, list)
  for r in results:
    assert len(r['keypoints']) == 3 * JOINTS and r['image_id'] == 0
  assert 'network' in printed


def test_extract_with_config_recalibrates_batchnorm(supernet, arch_file, tmp_path, capsys):
  from litepose_jax.data import synthetic
  synthetic.generate(tmp_path / 'data', num_images=6, seed=0, size=96, progress=False)
  cfg = write_data_config(tmp_path / 'cfg.py')
  out = tmp_path / 'recal'
  # The data folder comes from a --config.KEY=VALUE override, as on the train command line.
  rc, stdout, _ = _run(['extract', '--checkpoint', str(supernet[0]), '--arch', str(arch_file),
                        '--out', str(out), '--config', str(cfg), '--calib-images', '4',
                        '--calib-batch', '2', f'--config.data.data_dir={tmp_path / "data"}'],
                       capsys)
  assert rc == 0 and 'BatchNorm recalibrated on 4 images' in stdout
  _, variables, model_cfg = checkpoints.load_model(out, depthwise_impl='lax')
  assert model_cfg['calibration']['images'] == 4 and model_cfg['calibration']['batches'] == 2
  # New statistics, the same weights as the plain extraction.
  from litepose_jax.nas import extract
  cut = extract.extract_subnet(supernet[1], SUB, JOINTS)
  stats = variables['batch_stats']['stage1_block0']['project_bn']['var']
  assert not np.allclose(stats, cut['batch_stats']['stage1_block0']['project_bn']['var'])
  np.testing.assert_array_equal(variables['params']['stem_pw']['conv']['kernel'],
                                cut['params']['stem_pw']['conv']['kernel'])
