"""The trainer on the real tf.data pipeline: synthetic CrowdPose-layout data, periodic evaluation,
best-by-AP export, TensorBoard files."""
import json
import os
import shutil

import pytest

from litepose_jax.data import datasets
from litepose_jax.data import pipeline
from litepose_jax.data import synthetic
from litepose_jax.errors import UserError
from litepose_jax.training import input_pipeline
from litepose_jax.training import trainer


@pytest.fixture(scope='module')
def synth_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp('synth')
  synthetic.generate(out, num_images=10, seed=0, size=128, progress=False)
  return out


def test_train_on_synthetic_files_with_eval(tiny_config, synth_dir, tmp_path, capsys):
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
  cfg.eval.select_on = 'split'  # the explicit switch: best/ chosen on eval.split, and said so
  cfg.eval.num_images = 2
  cfg.image_summary_every = 2
  result = trainer.train_and_evaluate(cfg, str(tmp_path))
  assert "best/ on split 'val' (eval.select_on='split')" in capsys.readouterr().out
  assert not (tmp_path / 'holdout.json').exists()
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
  cfg.eval.select_on = 'split'  # every image trains (record 0 must enter the stream)
  result = trainer.train_and_evaluate(cfg, str(tmp_path / 'w'))
  tally = result['data'].tally
  assert tally.zero_weighted == 1 and tally.dropped_people > 0
  lines = [ln for ln in capsys.readouterr().out.splitlines() if 'zero-weighted' in ln]
  assert len(lines) == 1 and 'skipped 1 image(s) (1 unreadable image)' in lines[0]
  assert f'{tally.dropped_people} people beyond data.max_people=1 dropped' in lines[0]


def _holdout_config(cfg, data_dir, **eval_fields):
  cfg.data.update(source='files', data_dir=str(data_dir), split='train', input_size=64,
                  batch_size=2, num_parallel_calls=1)
  cfg.total_steps = 2
  cfg.checkpoint_every = 2
  cfg.eval.update({'enabled': True, 'split': 'test', 'holdout_images': 2, **eval_fields})
  return cfg


def test_best_is_chosen_on_held_out_training_images(tiny_config, synth_dir, tmp_path, capsys):
  cfg = _holdout_config(tiny_config, synth_dir)
  assert cfg.eval.select_on == 'holdout'  # the recipes' default
  _, info = input_pipeline.make_data(cfg)
  everything = datasets.open_from_config(cfg.data)
  trained = {r.image_id for r in info.source.records}
  held = [r.image_id for r in info.holdout.records]
  assert len(held) == 2 and not trained & set(held)
  assert trained | set(held) == {r.image_id for r in everything.records}
  assert info.num_images == len(everything) - 2
  # Two epochs of the training stream itself: every trained image, never a held-out one.
  stream = pipeline.make_train_dataset(cfg.data, source=info.source).as_numpy_iterator()
  seen = {int(i) for _ in range(info.num_images) for i in next(stream)['image_id']}
  assert seen == trained
  # The choice is a function of (data, seed): the same in a second process or run.
  assert held == [r.image_id for r in input_pipeline.make_data(cfg)[1].holdout.records]
  cfg.data.seed = 1
  assert held != [r.image_id for r in input_pipeline.make_data(cfg)[1].holdout.records]
  cfg.data.seed = 0

  result = trainer.train_and_evaluate(cfg, str(tmp_path))
  out = capsys.readouterr().out
  assert "best/ on 2 held-out images of training split 'train'" in out and '(2 more held out)' in out
  written = json.load(open(tmp_path / 'holdout.json'))
  assert written['image_ids'] == held and written['split'] == 'train'
  # Scored against the held-out images' own ground truth, not against the test split.
  gt = json.load(open(tmp_path / 'eval_gt_holdout_2.json'))
  assert sorted(im['id'] for im in gt['images']) == held
  assert result['eval'] is not None and (tmp_path / 'best' / 'model.json').is_file()
  # Resuming with another held-out set would evaluate on images already trained on.
  cfg.eval.holdout_images = 3
  cfg.total_steps = 3
  with pytest.raises(UserError, match='holdout.json lists other held-out images'):
    trainer.train_and_evaluate(cfg, str(tmp_path))


def test_holdout_settings_are_checked(tiny_config, synth_dir):
  cfg = _holdout_config(tiny_config, synth_dir, select_on='best')
  with pytest.raises(UserError, match="eval.select_on must be 'holdout' or 'split', got 'best'"):
    input_pipeline.make_data(cfg)
  cfg = _holdout_config(tiny_config, synth_dir, select_on='holdout', holdout_images=1000)
  with pytest.raises(UserError, match=r'eval.holdout_images must be in 1\.\.'):
    input_pipeline.make_data(cfg)
  cfg.eval.enabled = False  # evaluation off or on: the same images train (a resume may switch)
  with pytest.raises(UserError, match=r'eval.holdout_images must be in 1\.\.'):
    input_pipeline.make_data(cfg)
  cfg.eval.select_on = 'split'  # nothing held out: every training image is trained on
  _, info = input_pipeline.make_data(cfg)
  assert info.holdout is None and info.num_images == len(datasets.open_from_config(cfg.data))


def test_resuming_a_run_that_held_out_nothing_with_a_holdout_is_refused(tiny_config, synth_dir,
                                                                        tmp_path):
  cfg = _holdout_config(tiny_config, synth_dir, enabled=False, select_on='split')
  trainer.train_and_evaluate(cfg, str(tmp_path))
  assert not (tmp_path / 'holdout.json').exists()
  cfg.eval.select_on = 'holdout'
  cfg.total_steps = 3
  with pytest.raises(UserError, match='held out no training images'):
    trainer.train_and_evaluate(cfg, str(tmp_path))
  # A fresh run holds them out and writes their ids even with evaluation off.
  trainer.train_and_evaluate(cfg, str(tmp_path / 'fresh'))
  assert len(json.load(open(tmp_path / 'fresh' / 'holdout.json'))['image_ids']) == 2
