"""scripts/quickstart.py: the demo's summary line, its failure floor and the learning curve."""
import importlib.util
import json
import pathlib
import re

import pytest

from litepose_jax import config_files

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def quickstart():
  spec = importlib.util.spec_from_file_location('quickstart', ROOT / 'scripts' / 'quickstart.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _workdir(tmp_path, ap_last):
  work = tmp_path / 'train'
  work.mkdir()
  lines = [{'step': 20, 'train/total': 0.5}, {'step': 100, 'train/total': 0.25},
           {'step': 100, 'eval/AP': 0.125}, {'step': 200, 'eval/AP': ap_last}]
  (work / 'metrics.jsonl').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
  return work


def test_learning_curve_merges_loss_and_ap(quickstart, tmp_path):
  curve = quickstart.learning_curve(str(_workdir(tmp_path, 0.5)))
  assert curve == [{'step': 20, 'loss': 0.5}, {'step': 100, 'loss': 0.25, 'AP': 0.125},
                   {'step': 200, 'AP': 0.5}]


@pytest.mark.parametrize('ap,rc,line', [
    (0.625, 0, 'quickstart: AP 0.62 on synthetic val (14 min)'),
    (0.25, 0, 'quickstart: AP 0.25 on synthetic val (14 min)'),
    (0.0, 1, 'quickstart: AP 0.00 on synthetic val (14 min) FAILED')])
def test_summary_line_and_floor(quickstart, tmp_path, capsys, ap, rc, line):
  metrics = tmp_path / 'm.json'
  metrics.write_text(json.dumps({'dataset': 'crowdpose', 'AP': ap}))
  work = _workdir(tmp_path, ap)
  assert quickstart.main(['summary', '--metrics', str(metrics), '--workdir', str(work),
                          '--seconds', str(14 * 60)]) == rc
  out, err = capsys.readouterr()
  assert out.strip().splitlines()[-1] == line
  assert ('learned nothing' in err) == (rc == 1)
  assert ('below the target' in err) == (0.05 <= ap < 0.5)


def test_quickstart_config_reads_the_script_data():
  cfg = config_files.load_config(str(ROOT / 'configs' / 'quickstart.py'))
  # demo.sh evaluates and predicts at the size the config trains at.
  demo = (ROOT / 'scripts' / 'demo.sh').read_text()
  size = int(re.search(r'^size=(\d+)$', demo, re.M).group(1))
  assert cfg.data.data_dir == 'workdirs/quickstart/data' and cfg.data.input_size == size
  assert 'configs/quickstart.py' in demo and '--flip' in demo
  assert cfg.data.synthetic_images == 0  # written by the script, with its own difficulty knobs
  assert cfg.optim.schedule == 'cosine' and cfg.total_steps > 0 and cfg.eval.split == 'val'
  # The argument users and docs know gives the same recipe.
  old = config_files.load_config(str(ROOT / 'configs' / 'litepose_xs.py') + ':quickstart')
  assert old.to_dict() == cfg.to_dict()


def test_data_is_cached_per_recipe_and_remade_when_it_changes(quickstart, tmp_path, monkeypatch,
                                                            capsys):
  monkeypatch.setattr(quickstart, 'NUM_IMAGES', 30)
  monkeypatch.setattr(quickstart, 'VAL_FRACTION', 0.1)
  out, samples = tmp_path / 'data', tmp_path / 'samples'
  quickstart.make_data(str(out), 1, str(samples), num_samples=2)
  val = json.loads((out / 'json' / 'crowdpose_val.json').read_text())
  assert len(list(samples.iterdir())) == 2
  capsys.readouterr()
  quickstart.make_data(str(out), 1, None)
  assert 'cached' in capsys.readouterr().out
  # Another recipe (here: more images) must not reuse the stale set.
  monkeypatch.setattr(quickstart, 'NUM_IMAGES', 40)
  quickstart.make_data(str(out), 1, None)
  assert 'another recipe' in capsys.readouterr().out
  train = json.loads((out / 'json' / 'crowdpose_train.json').read_text())
  val = json.loads((out / 'json' / 'crowdpose_val.json').read_text())
  assert len(train['images']) + len(val['images']) == 40
