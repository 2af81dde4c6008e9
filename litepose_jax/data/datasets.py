"""Readers for COCO-format keypoint data sets: CrowdPose, COCO keypoints and custom json files.

`open_dataset` resolves the official folder layouts (or explicit paths), loads the json with
pycocotools, validates every annotation and returns a `KeypointDataset`: image records for
evaluation, per-image keypoints [P, J, 3] and ignore regions for training, and the joint set.
Bad data (missing image, malformed keypoints, undecodable image) is reported with its file name and
image id, counted in `BadDataLog`, and skipped; with strict=True it raises instead.
"""
from __future__ import annotations

from collections.abc import Sequence
import contextlib
import dataclasses
import io
import logging
import os
import threading

import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError

log = logging.getLogger(__name__)

DATASETS = ('crowdpose', 'coco', 'custom')

_HOWTO = {
    'crowdpose': ('CrowdPose: get the annotations (json/crowdpose_{train,val,trainval,test}.json) and '
                  'images (images/*.jpg) from https://github.com/Jeff-sjtu/CrowdPose (Google Drive '
                  'links in its README) and unpack them so that DATA_DIR/json/ and DATA_DIR/images/ '
                  'exist.'),
    'coco': ('COCO: download "2017 Train/Val annotations" and the "2017 Train images" / "2017 Val '
             'images" zips from https://cocodataset.org/#download and unpack them into DATA_DIR '
             '(DATA_DIR/annotations/person_keypoints_val2017.json, DATA_DIR/val2017/*.jpg).'),
    'custom': ('custom data: set ann_file (a COCO-format keypoint json) and image_dir, or put '
               'DATA_DIR/annotations.json with the images beside it.'),
}


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  """One image: id, absolute file path, size in pixels, CrowdPose crowd index (None elsewhere)."""
  image_id: int
  file_path: str
  width: int
  height: int
  crowd_index: float | None = None


class BadDataLog:
  """Thread-safe tally of skipped images; strict mode raises on the first one instead."""

  MAX_WARNINGS = 20

  def __init__(self, strict: bool = False):
    self.strict = strict
    # One entry per distinct (reason, image); `occurrences` counts every skipped sample.
    self.items: list[tuple[str, str, int, str]] = []
    self.occurrences = 0
    self._seen: set[tuple[str, int]] = set()
    self._lock = threading.Lock()

  def add(self, reason: str, file_name: str, image_id: int, detail: str = '') -> None:
    """Records (and logs) one bad sample; raises UserError in strict mode."""
    msg = f'{reason}: {file_name} (image id {image_id})' + (f': {detail}' if detail else '')
    if self.strict:
      raise UserError(f'{msg} [strict data mode; set strict=False to skip and count bad samples]')
    with self._lock:
      self.occurrences += 1
      if (reason, int(image_id)) in self._seen:
        return  # the same image again (a later epoch): counted once, reported once
      self._seen.add((reason, int(image_id)))
      self.items.append((reason, file_name, int(image_id), detail))
      n = len(self.items)
    if n <= self.MAX_WARNINGS:
      log.warning('skipping %s', msg)
    elif n == self.MAX_WARNINGS + 1:
      log.warning('more bad samples; only counting from now on (see the summary)')

  @property
  def count(self) -> int:
    with self._lock:
      return len(self.items)

  def counts(self) -> dict[str, int]:
    """Number of distinct skipped images per reason."""
    with self._lock:
      out: dict[str, int] = {}
      for reason, *_ in self.items:
        out[reason] = out.get(reason, 0) + 1
      return out

  def summary(self) -> str:
    """One line: how many samples were skipped and why."""
    c = self.counts()
    if not c:
      return 'bad data: none'
    parts = ', '.join(f'{v} {k}' for k, v in sorted(c.items()))
    return (f'bad data: skipped {sum(c.values())} image(s) ({parts}); {self.occurrences} '
            'sample(s) replaced or dropped in total')


def expected_paths(dataset: str, data_dir: str, split: str) -> tuple[str, str]:
  """(annotation json, image folder) of the official layout of `dataset` under data_dir."""
  if dataset == 'crowdpose':
    # CrowdPose keeps the images of all splits in one folder.
    return (os.path.join(data_dir, 'json', f'crowdpose_{split}.json'),
            os.path.join(data_dir, 'images'))
  if dataset == 'coco':
    s = split if split.endswith('2017') else f'{split}2017'
    return (os.path.join(data_dir, 'annotations', f'person_keypoints_{s}.json'),
            os.path.join(data_dir, s))
  if dataset == 'custom':
    return os.path.join(data_dir, 'annotations.json'), data_dir
  raise UserError(f'unknown dataset {dataset!r}; choose one of {DATASETS}')


def resolve_paths(dataset: str, data_dir: str = '', split: str = '', ann_file: str = '',
                  image_dir: str = '') -> tuple[str, str]:
  """Annotation json and image folder from explicit paths or the official layout; clear errors."""
  if dataset not in DATASETS:
    raise UserError(f'unknown dataset {dataset!r}; choose one of {DATASETS}')
  if not ann_file:
    if not data_dir:
      raise UserError(f'no data location for {dataset}: set data_dir (or ann_file and image_dir). '
                       + _HOWTO[dataset])
    official_ann, official_img = expected_paths(dataset, data_dir, split)
    flat = os.path.join(data_dir, 'annotations.json')
    if not os.path.isfile(official_ann) and os.path.isfile(flat):
      # A small flat copy (json beside the images), e.g. the sample data sets.
      ann_file, image_dir = flat, image_dir or data_dir
    else:
      ann_file, image_dir = official_ann, image_dir or official_img
  image_dir = image_dir or os.path.dirname(ann_file)
  if not os.path.isfile(ann_file):
    raise FileNotFoundError(f'{dataset} annotation file not found: expected {ann_file}. '
                            + _HOWTO[dataset])
  if not os.path.isdir(image_dir):
    raise FileNotFoundError(f'{dataset} image folder not found: expected {image_dir}. '
                            + _HOWTO[dataset])
  return ann_file, image_dir


def _flip_index_from_names(names: Sequence[str]) -> list[int]:
  pos = {n: i for i, n in enumerate(names)}
  out = []
  for i, n in enumerate(names):
    for a, b in (('left', 'right'), ('right', 'left')):
      if a in n:
        other = n.replace(a, b)
        if other not in pos:
          raise UserError(f'joint {n!r} has no {b} counterpart {other!r} in {list(names)}: give '
                           'flip_index in the config')
        out.append(pos[other])
        break
    else:
      out.append(i)
  return out


def joint_set_for(dataset: str, category: dict | None, joint_names=None, flip_index=None,
                  skeleton=None):
  """The JointSet: built-in for crowdpose / coco, else from the config or the json category."""
  if dataset in ('crowdpose', 'coco'):
    js = joints_lib.get_joint_set(dataset)
    names = (category or {}).get('keypoints')
    if names and len(names) != js.num_joints:
      raise UserError(f'{dataset} expects {js.num_joints} keypoints per person but the json '
                       f'category lists {len(names)}: {names}')
    return js
  names = list(joint_names or (category or {}).get('keypoints') or [])
  if not names:
    raise UserError('custom data set: the json category has no "keypoints" names; give '
                     'joint_names in the config')
  flip = list(flip_index) if flip_index else _flip_index_from_names(names)
  if skeleton:
    edges = [tuple(e) for e in skeleton]
  else:
    # COCO json skeletons are 1-based.
    edges = [(a - 1, b - 1) for a, b in (category or {}).get('skeleton') or []]
  return joints_lib.custom_joint_set(names, flip, edges)


def _malformed(kps, num_joints: int) -> str:
  if not isinstance(kps, (list, tuple)):
    return f'keypoints is a {type(kps).__name__}, not a list'
  if len(kps) != 3 * num_joints:
    return f'{len(kps)} keypoint values, expected {3 * num_joints} (3 x {num_joints} joints)'
  try:
    arr = np.asarray(kps, dtype=np.float64)
  except (TypeError, ValueError):
    return 'non-numeric keypoint values'
  if not np.all(np.isfinite(arr)):
    return 'non-finite keypoint values'
  if np.any(arr[2::3] < 0) or np.any(arr[2::3] > 2):
    return 'visibility flags outside 0..2'
  return ''


class KeypointDataset:
  """A loaded keypoint data set (see module docstring); index i refers to `records[i]`."""

  def __init__(self, name: str, split: str, ann_file: str, image_dir: str, coco, joint_set,
               records: list[ImageRecord], keypoints: list[np.ndarray], ignore: list[list[dict]],
               bad: BadDataLog):
    self.name = name
    self.split = split
    self.ann_file = ann_file
    self.image_dir = image_dir
    self.coco = coco
    self.joint_set = joint_set
    self.records = records
    self.keypoints = keypoints
    self.ignore = ignore
    self.bad = bad

  def __len__(self) -> int:
    return len(self.records)

  def subset(self, indices: Sequence[int]) -> KeypointDataset:
    """The records at `indices` (in that order), sharing the json, joint set and bad-data log."""
    idx = [int(i) for i in indices]
    return KeypointDataset(self.name, self.split, self.ann_file, self.image_dir, self.coco,
                           self.joint_set, [self.records[i] for i in idx],
                           [self.keypoints[i] for i in idx], [self.ignore[i] for i in idx],
                           self.bad)

  @property
  def has_ignore_regions(self) -> bool:
    return any(self.ignore)

  def ignore_mask(self, i: int) -> np.ndarray | None:
    """[H, W] uint8, 1 = pixel inside a crowd region / unlabelled person, or None if none."""
    anns = self.ignore[i]
    if not anns:
      return None
    from pycocotools import mask as mask_utils  # pylint: disable=g-import-not-at-top
    rec = self.records[i]
    m = np.zeros((rec.height, rec.width), np.uint8)
    for seg in anns:
      rles = mask_utils.frPyObjects(seg, rec.height, rec.width)
      if isinstance(rles, dict):
        rles = [rles]
      for rle in rles:
        m |= mask_utils.decode(rle).astype(np.uint8)
    return m

  def flat_keypoints(self) -> tuple[np.ndarray, np.ndarray]:
    """All people concatenated [sum P, J, 3] float32 and per-image offsets [N + 1] int64."""
    j = self.joint_set.num_joints
    counts = np.array([len(k) for k in self.keypoints], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = (np.concatenate(self.keypoints, axis=0) if counts.sum() else np.zeros((0, j, 3)))
    return flat.astype(np.float32), offsets


def _read_coco(ann_file: str):
  """pycocotools' COCO index of `ann_file`, without its progress prints."""
  # Imported here: pycocotools.coco imports matplotlib, needed only once a json is read.
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  with contextlib.redirect_stdout(io.StringIO()):
    try:
      return COCO(ann_file)
    except (ValueError, KeyError, TypeError) as e:
      raise UserError(f'cannot read {ann_file} as a COCO-format json: {e!r}') from e


def _record(coco, image_id: int, image_dir: str) -> ImageRecord:
  info = coco.imgs[image_id]
  return ImageRecord(int(image_id), os.path.join(image_dir, info.get('file_name', '')),
                     int(info.get('width', 0)), int(info.get('height', 0)), info.get('crowdIndex'))


def _people(anns: list[dict], num_joints: int, dataset: str
            ) -> tuple[list[np.ndarray], list, str]:
  """(people [J, 3] with a visible joint, ignore-region segmentations, problem) of one image."""
  people, regions = [], []
  for a in anns:
    crowd = bool(a.get('iscrowd', 0))
    kps = a.get('keypoints')
    nkp = a.get('num_keypoints')
    if kps is not None:
      problem = _malformed(kps, num_joints)
      if problem:
        return [], [], f'annotation {a.get("id")}: {problem}'
    if nkp is None:
      nkp = int(np.sum(np.asarray(kps)[2::3] > 0)) if kps is not None else 0
    if (not crowd or nkp > 0) and kps is not None:
      k = np.asarray(kps, np.float32).reshape(num_joints, 3)
      if (k[:, 2] > 0).any():
        # Rows without visible joints give no targets; dropping them is loss-neutral and keeps
        # them from using up the max_people slots.
        people.append(k)
    if dataset != 'crowdpose' and (crowd or nkp == 0) and a.get('segmentation'):
      regions.append(a['segmentation'])
  return people, regions, ''


def _training_images(coco, dataset: str, image_dir: str, num_joints: int, bad: BadDataLog,
                     check_files: bool) -> tuple[list[ImageRecord], list[np.ndarray], list[list]]:
  """Records, keypoints [P, J, 3] and ignore regions of the annotated, valid images."""
  records, keypoints, ignore = [], [], []
  for image_id in sorted(coco.getImgIds()):
    rec = _record(coco, image_id, image_dir)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
    if not anns:
      continue  # as the official trainer: images without annotations are not trained on
    if check_files and not os.path.isfile(rec.file_path):
      bad.add('missing image file', rec.file_path, image_id)
      continue
    if rec.width <= 0 or rec.height <= 0:
      bad.add('missing or invalid width/height', rec.file_path, image_id)
      continue
    people, regions, problem = _people(anns, num_joints, dataset)
    if problem:
      bad.add('malformed keypoints', rec.file_path, image_id, problem)
      continue
    records.append(rec)
    keypoints.append(np.stack(people) if people else np.zeros((0, num_joints, 3), np.float32))
    ignore.append(regions)
  return records, keypoints, ignore


def open_dataset(dataset: str = 'crowdpose', data_dir: str = '', split: str = 'trainval', *,
                 ann_file: str = '', image_dir: str = '', is_train: bool = True,
                 strict: bool = False, check_files: bool = True, joint_names=None,
                 flip_index=None, skeleton=None, bad: BadDataLog | None = None
                 ) -> KeypointDataset:
  """Loads a CrowdPose / COCO / custom keypoint json (+ image folder) into a KeypointDataset.

  is_train drops images without annotations (as the official trainer) and images with bad data;
  otherwise every image is kept (evaluation sees the full split).
  """
  ann_file, image_dir = resolve_paths(dataset, data_dir, split, ann_file, image_dir)
  coco = _read_coco(ann_file)
  cats = coco.loadCats(coco.getCatIds())
  person = next((c for c in cats if c.get('name') == 'person'), cats[0] if cats else None)
  joint_set = joint_set_for(dataset, person, joint_names, flip_index, skeleton)
  num_joints = joint_set.num_joints
  bad = bad or BadDataLog(strict)
  if is_train:
    records, keypoints, ignore = _training_images(coco, dataset, image_dir, num_joints, bad,
                                                  check_files)
  else:
    records = [_record(coco, i, image_dir) for i in sorted(coco.getImgIds())]
    keypoints = [np.zeros((0, num_joints, 3), np.float32)] * len(records)
    ignore = [[] for _ in records]
  if not records:
    raise UserError(f'{ann_file}: no usable images ({bad.summary()})')
  return KeypointDataset(dataset, split, ann_file, image_dir, coco, joint_set, records, keypoints,
                         ignore, bad)


def open_from_config(cfg, *, is_train: bool = True, bad: BadDataLog | None = None
                     ) -> KeypointDataset:
  """open_dataset with the fields of a data config (see pipeline.default_data_config)."""
  return open_dataset(
      cfg.dataset, cfg.data_dir, cfg.split, ann_file=cfg.ann_file, image_dir=cfg.image_dir,
      is_train=is_train, strict=cfg.strict, joint_names=cfg.joint_names or None,
      flip_index=cfg.flip_index or None, skeleton=cfg.skeleton or None, bad=bad)
