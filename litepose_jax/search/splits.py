"""The calibration and search splits of an architecture search, carved from the training set.

The official search reads json/crowdpose_{calibrate,search}.json, which the repository neither
ships nor says how to make (SUPERNET_SPEC.md §5.3). Here both are a seeded, disjoint choice among
the usable images (annotated, valid: what training reads) of the training split that the config's
data section names; a val / test split is refused, since the sub-net chosen on it would then be
reported on the images it was selected on. The choice is written to WORKDIR/splits.json (ids,
settings, source annotation file) with the ground truth of the search images in
WORKDIR/search_gt.json, so every candidate of a search, and a resumed search, is scored on the
same images; rerunning with other settings is an error rather than a silent change of the split
under a running search.
"""
from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import json
import os
import re
from typing import Any

import ml_collections
import numpy as np

from litepose_jax.data import datasets
from litepose_jax.errors import UserError
from litepose_jax.evaluation import split as split_lib

SPLITS_FILE = 'splits.json'
SEARCH_GT_FILE = 'search_gt.json'
# Settings that decide the ids: a rerun must agree on every one.
_SETTINGS = ('dataset', 'ann_file', 'image_dir', 'seed', 'num_calibration', 'num_search')
# Split names (or annotation file names) of held-out data: any word starting so, e.g. 'val',
# 'val2017', 'test-dev', 'minival'; 'trainval' is one word and passes.
_HELD_OUT = re.compile(r'^(val|test|minival)')


@dataclasses.dataclass
class SearchSplits:
  """Image ids of the calibration and search splits, their source, and the files they live in.

  search_gt: the annotation json restricted to search_ids; path: splits.json.
  """
  dataset: str
  ann_file: str
  image_dir: str
  calibration_ids: list[int]
  search_ids: list[int]
  search_gt: str
  path: str


def _held_out_name(name: str) -> bool:
  """Whether a split or annotation file name names a val / test split."""
  return any(_HELD_OUT.match(word) for word in re.split(r'[^a-z0-9]+', name.lower()) if word)


def _check_training_split(cfg: Any) -> None:
  """UserError where config.data does not describe a training split of image files."""
  if cfg.get('source', 'files') != 'files':
    raise UserError(f"config.data.source is {cfg.source!r}: the search splits are carved from "
                    "the training images ('files')")
  split = str(cfg.get('split', ''))
  if _held_out_name(split) and not cfg.get('ann_file', ''):
    raise UserError(f'config.data.split is {split!r}, a val / test split: the calibration and '
                    'search splits are carved from the training split (e.g. trainval / train), '
                    'so that the test images stay unseen by the search')
  ann_file = str(cfg.get('ann_file', '') or '')
  if ann_file and _held_out_name(os.path.splitext(os.path.basename(ann_file))[0]):
    raise UserError(f'config.data.ann_file {ann_file} looks like a val / test annotation file: '
                    'the calibration and search splits are carved from the training set')


def _choose(num_records: int, num_calibration: int, num_search: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(calibration indices, search indices) into the records, sorted and disjoint."""
  # 7919: apart from the seeds of the training stream, the hold-out and the calibration subset.
  order = np.random.default_rng([int(seed), 7919]).permutation(num_records)
  calib = np.sort(order[:num_calibration])
  search = np.sort(order[num_calibration:num_calibration + num_search])
  return calib, search


def _restrict_gt(ann_file: str, image_ids: Sequence[int], path: str) -> None:
  """WORKDIR/search_gt.json: the ground truth of image_ids only (evaluation.split.restrict_gt,
  whose atomic write is safe for several hosts)."""
  split_lib.restrict_gt(ann_file, image_ids, path)


def carve_splits(data_cfg: Any, workdir: str, *, num_calibration: int = 2000,
                 num_search: int = 1000, seed: int = 0) -> SearchSplits:
  """Seeded, disjoint calibration / search image ids from the training split of `data_cfg`.

  data_cfg: a training config's config.data (data.pipeline.default_data_config fields). Writes
  workdir/splits.json and workdir/search_gt.json; a rerun with the same settings returns the
  same splits, other settings (or data that changed) raise UserError.
  """
  cfg = (data_cfg if isinstance(data_cfg, ml_collections.ConfigDict)
         else ml_collections.ConfigDict(dict(data_cfg)))
  for name, value in (('num_calibration', num_calibration), ('num_search', num_search)):
    if int(value) <= 0:
      raise UserError(f'{name} (search split size) must be positive, got {value}')
  if int(seed) < 0:
    raise UserError(f'seed of the search splits must be non-negative, got {seed}')
  _check_training_split(cfg)
  source = datasets.open_from_config(cfg, is_train=True)
  if source.name not in ('crowdpose', 'coco'):
    raise UserError(f"config.data.dataset is {source.name!r}: the search scores sub-nets with "
                    "the official evaluator of 'crowdpose' or 'coco'")
  n = len(source)
  if num_calibration + num_search > n:
    raise UserError(f'{source.ann_file} has {n} usable training images, fewer than '
                    f'num_calibration {num_calibration} + num_search {num_search} = '
                    f'{num_calibration + num_search}: lower them (--num-calibration / '
                    '--num-search)')
  calib, search = _choose(n, num_calibration, num_search, seed)
  ids = [r.image_id for r in source.records]
  record = {
      'dataset': source.name, 'split': str(cfg.get('split', '')),
      'ann_file': os.path.abspath(source.ann_file), 'image_dir': os.path.abspath(source.image_dir),
      'seed': int(seed), 'num_calibration': int(num_calibration), 'num_search': int(num_search),
      'usable_images': n, 'calibration_ids': [int(ids[i]) for i in calib],
      'search_ids': [int(ids[i]) for i in search]}
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, SPLITS_FILE)
  gt_path = os.path.join(workdir, SEARCH_GT_FILE)
  fresh = not os.path.isfile(path)
  if not fresh:
    _check_same(path, record)
  if fresh or not os.path.isfile(gt_path):
    # The ground truth first: a splits.json on disk always has its search_gt.json beside it.
    _restrict_gt(source.ann_file, record['search_ids'], gt_path)
  if fresh:
    split_lib.write_json(path, record, indent=1)
  return SearchSplits(record['dataset'], record['ann_file'], record['image_dir'],
                      record['calibration_ids'], record['search_ids'], os.path.abspath(gt_path),
                      os.path.abspath(path))


def _check_same(path: str, record: dict) -> None:
  """UserError where the splits.json at `path` was carved with other settings or other data."""
  try:
    with open(path) as f:
      before = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f'{path} is not a readable splits file ({e}); remove it to carve the '
                    'splits afresh') from e
  changed = [f'{k}: {before.get(k)!r} -> {record[k]!r}' for k in _SETTINGS
             if before.get(k) != record[k]]
  if changed:
    raise UserError(f'{path} holds splits carved with other settings ({"; ".join(changed)}): a '
                    'search in this directory scores on those images. Restore the settings or '
                    'use another output directory.')
  for key in ('calibration_ids', 'search_ids'):
    if before.get(key) != record[key]:
      raise UserError(f'{path}: the same settings now give other {key} (the training split '
                      f'{record["ann_file"]} changed since the search began): use another output '
                      'directory, or restore the data')


def load_splits(workdir: str) -> SearchSplits:
  """The SearchSplits a former carve_splits wrote to workdir (UserError when there are none)."""
  path = os.path.join(workdir, SPLITS_FILE)
  gt_path = os.path.join(workdir, SEARCH_GT_FILE)
  if not (os.path.isfile(path) and os.path.isfile(gt_path)):
    raise UserError(f'{workdir} has no {SPLITS_FILE} and {SEARCH_GT_FILE}: carve the splits '
                    'first (carve_splits)')
  with open(path) as f:
    rec = json.load(f)
  return SearchSplits(rec['dataset'], rec['ann_file'], rec['image_dir'], rec['calibration_ids'],
                      rec['search_ids'], os.path.abspath(gt_path), os.path.abspath(path))
