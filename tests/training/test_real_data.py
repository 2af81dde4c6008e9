"""The trainer on the real tf.data pipeline: synthetic CrowdPose-layout data, periodic evaluation,
best-by-AP export, TensorBoard files."""
import json
import os
import shutil

import pytest

from litepose_jax.data import synthetic
from litepose_jax.training import trainer


@pytest.fixture(scope='module')
def synth_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp('synth')
  synthetic.generate(out, num_images=10, seed=0, size=128, progress=False)
  return out


def test_train_on_synthetic_files_with_eval(tiny_config, synth_dir, tmp_path):
  cfg = tiny_config
  cfg.data.source = 'files'
  cfg.data.data_dir = str(synth_dir)
  cfg.data.split = 'train'
  cfg.data.input_size = 64
  cfg.data.batch_size = 2
  cfg.data.num_parallel_calls = 2
  cfg.total_steps = 2
  cfg.checkpoint_every = 2
  cfg.eval.enabled = True
  cfg.eval.split = 'val'
  cfg.eval.num_images = 2
  cfg.image_summary_every = 2
  result = trainer.train_and_evaluate(cfg, str(tmp_path))
  assert result['step'] == 2
  assert result['eval'] is not None and 0.0 <= result['eval']['AP'] <= 1.0
  rows = [json.loads(ln) for ln in open(tmp_path / 'metrics.jsonl')]
  assert any('eval/AP' in r for r in rows) and rows[0]['train/total'] > 0
  # The tag-separation diagnostics ride along (NaN when the val images hold one person each).
  ev = next(r for r in rows if 'eval/AP' in r)
  assert {'eval/tag_spread', 'eval/tag_gap', 'eval/tag_merged', 'eval/tag_pairs'} <= set(ev)
  assert result['eval']['tag_spread'] >= 0.0
  assert json.load(open(tmp_path / 'best.json'))['step'] == 2
  assert (tmp_path / 'best' / 'model.json').is_file()
  assert json.load(open(tmp_path / 'config.json'))['data']['data_dir'] == str(synth_dir)
  events = os.listdir(tmp_path / 'tensorboard')
  assert events and os.path.getsize(tmp_path / 'tensorboard' / events[0]) > 1000  # incl. image


def test_skipped_and_zero_weighted_totals_are_printed_once(tiny_config, synth_dir, tmp_path,
                                                           capsys):
  data = tmp_path / 'data'
  shutil.copytree(synth_dir, data)
  train = json.load(open(data / 'json' / 'crowdpose_train.json'))
  first = min(train['images'], key=lambda im: im['id'])  # record 0: stream position 0 unshuffled
  (data / 'images' / first['file_name']).write_bytes(b'not a jpeg')
  cfg = tiny_config
  cfg.data.update(source='files', data_dir=str(data), split='train', input_size=64, batch_size=2,
                  num_parallel_calls=1, shuffle=False, max_people=1)
  cfg.total_steps = 2
  cfg.eval.enabled = False
  result = trainer.train_and_evaluate(cfg, str(tmp_path / 'w'))
  tally = result['data'].tally
  assert tally.zero_weighted == 1 and tally.dropped_people > 0
  lines = [ln for ln in capsys.readouterr().out.splitlines() if 'zero-weighted' in ln]
  assert len(lines) == 1 and 'skipped 1 image(s) (1 unreadable image)' in lines[0]
  assert f'{tally.dropped_people} people beyond data.max_people=1 dropped' in lines[0]
