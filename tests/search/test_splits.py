"""Search splits: seeded, disjoint ids from the training split, written with their ground truth,
reused on a rerun, refused for val / test data or changed settings."""
import json

import pytest

from litepose_jax.data import datasets
from litepose_jax.data import pipeline
from litepose_jax.errors import UserError
from litepose_jax.search import splits as splits_lib
from tests.search.helpers import synthetic_data


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return synthetic_data(tmp_path_factory.mktemp('synth'), num_images=24)


def _cfg(root, split='train'):
  cfg = pipeline.default_data_config()
  cfg.data_dir, cfg.split = str(root), split
  return cfg


def test_splits_are_disjoint_seeded_training_images(data_dir, tmp_path):
  cfg = _cfg(data_dir)
  usable = {r.image_id for r in datasets.open_from_config(cfg).records}
  s = splits_lib.carve_splits(cfg, str(tmp_path / 'a'), num_calibration=8, num_search=6, seed=1)
  assert len(s.calibration_ids) == 8 and len(s.search_ids) == 6
  assert not set(s.calibration_ids) & set(s.search_ids)
  assert set(s.calibration_ids) | set(s.search_ids) <= usable
  assert s.calibration_ids == sorted(s.calibration_ids) and s.search_ids == sorted(s.search_ids)
  assert s.dataset == 'crowdpose' and s.ann_file.endswith('crowdpose_train.json')
  # Deterministic: another directory, same settings, same ids; another seed, other ids.
  again = splits_lib.carve_splits(cfg, str(tmp_path / 'b'), num_calibration=8, num_search=6,
                                  seed=1)
  assert (again.calibration_ids, again.search_ids) == (s.calibration_ids, s.search_ids)
  other = splits_lib.carve_splits(cfg, str(tmp_path / 'c'), num_calibration=8, num_search=6,
                                  seed=2)
  assert (other.calibration_ids, other.search_ids) != (s.calibration_ids, s.search_ids)
  # The files: ids and settings, and the ground truth of the search images only.
  record = json.loads((tmp_path / 'a' / 'splits.json').read_text())
  assert record['search_ids'] == s.search_ids and record['calibration_ids'] == s.calibration_ids
  assert record['seed'] == 1 and record['ann_file'] == s.ann_file
  assert record['usable_images'] == len(usable)
  gt = json.loads(open(s.search_gt).read())
  source = json.loads(open(s.ann_file).read())
  assert sorted(im['id'] for im in gt['images']) == s.search_ids
  want = [a for a in source['annotations'] if a['image_id'] in set(s.search_ids)]
  assert gt['annotations'] == want and want
  assert splits_lib.load_splits(str(tmp_path / 'a')) == s


def test_rerun_reuses_and_other_settings_are_refused(data_dir, tmp_path):
  cfg = _cfg(data_dir)
  first = splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=5, num_search=4)
  gt = tmp_path / 'search_gt.json'
  gt.unlink()  # a lost ground-truth file is rewritten, the split is unchanged
  assert splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=5, num_search=4) == first
  assert gt.is_file()
  with pytest.raises(UserError, match=r'seed: 0 -> 3'):
    splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=5, num_search=4, seed=3)
  with pytest.raises(UserError, match=r'num_search: 4 -> 5'):
    splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=5, num_search=5)
  # The same settings now giving other ids: the data changed under the search.
  path = tmp_path / 'splits.json'
  record = json.loads(path.read_text())
  record['search_ids'] = record['search_ids'][::-1]
  path.write_text(json.dumps(record))
  with pytest.raises(UserError, match='changed since the search began'):
    splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=5, num_search=4)


def test_val_test_and_small_splits_are_refused(data_dir, tmp_path):
  for split in ('val', 'test', 'val2017'):
    with pytest.raises(UserError, match='val / test split'):
      splits_lib.carve_splits(_cfg(data_dir, split), str(tmp_path), num_calibration=2,
                              num_search=2)
  cfg = _cfg(data_dir)
  cfg.ann_file = str(data_dir / 'json' / 'crowdpose_val.json')
  with pytest.raises(UserError, match='val / test annotation file'):
    splits_lib.carve_splits(cfg, str(tmp_path), num_calibration=2, num_search=2)
  n = len(datasets.open_from_config(_cfg(data_dir)).records)
  with pytest.raises(UserError, match=rf'{n} usable training images.*8 \+ num_search {n}'):
    splits_lib.carve_splits(_cfg(data_dir), str(tmp_path), num_calibration=8, num_search=n)
  with pytest.raises(UserError, match='num_search'):
    splits_lib.carve_splits(_cfg(data_dir), str(tmp_path), num_calibration=8, num_search=0)
  fake = _cfg(data_dir)
  fake.source = 'fake'
  with pytest.raises(UserError, match='data.source'):
    splits_lib.carve_splits(fake, str(tmp_path), num_calibration=2, num_search=2)
  assert not (tmp_path / 'splits.json').exists()
  # 'trainval' is a training split (one word), not a val split.
  assert not splits_lib._held_out_name('trainval')  # pylint: disable=protected-access
  assert splits_lib._held_out_name('person_keypoints_val2017')  # pylint: disable=protected-access
