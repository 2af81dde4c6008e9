"""Predict an annotated split and score it: the loop of `litepose eval` and of training's
periodic evaluation.

  images = split_images(gt, image_dir, limit)          # or SplitImage(id, path) from records
  metrics, results = evaluate_split(predictor, ann_file, images, 'crowdpose', out_prefix=...)

Only the evaluated images are scored: a run over part of the split restricts the ground truth to
those images first (otherwise every person on the skipped images counts as missed). A model that
finds nobody scores 0 on every metric, with a message, instead of the evaluator's refusal of an
empty result list. Every file is written atomically (a complete file or none).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import json
import os
from typing import Any

import tqdm

from litepose_jax.data import image_files
from litepose_jax.evaluation import METRIC_NAMES
from litepose_jax.evaluation import evaluate_keypoints


@dataclasses.dataclass(frozen=True)
class SplitImage:
  """One image of an annotated split: its id in the annotation json and its file."""
  image_id: int
  path: str


def split_images(gt, image_dir: str, limit: int | None = None) -> list[SplitImage]:
  """The images of a COCO ground-truth object (sorted by id, the first `limit`) under image_dir."""
  ids = sorted(gt.getImgIds())[:limit]
  return [SplitImage(i, os.path.join(image_dir, gt.loadImgs(i)[0]['file_name'])) for i in ids]


def write_json(path: str, data: Any, indent: int | None = None) -> str:
  """Writes `data` to `path` through a temporary file: readers never see half a file (the
  temporary name is per process, so several hosts may write the same file at once)."""
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=indent)
  os.replace(tmp, path)
  return path


def restrict_gt(ann_file: str, image_ids: Sequence[int], out_path: str) -> str:
  """A copy of the annotation json holding only image_ids (images and their annotations)."""
  with open(ann_file) as f:
    gt = json.load(f)
  keep = set(image_ids)
  gt['images'] = [im for im in gt['images'] if im['id'] in keep]
  gt['annotations'] = [a for a in gt.get('annotations', []) if a['image_id'] in keep]
  return write_json(out_path, gt)


def predict_split(predictor, images: Sequence[SplitImage], *, desc: str = 'eval',
                  progress: bool = True, leave: bool = True,
                  on_prediction: Callable[[SplitImage, Any], None] | None = None) -> list[dict]:
  """COCO result dicts of predictor (RGB image -> Prediction) on every image, in order.

  on_prediction(image, prediction) sees each Prediction (e.g. its kept maps) as it is made.
  """
  results = []
  for image in tqdm.tqdm(images, desc=desc, unit='img', leave=leave, disable=not progress):
    rgb = image_files.read_rgb(image.path, f'image (id {image.image_id})', ignore_orientation=True)
    pred = predictor(rgb)
    results += pred.to_coco(image.image_id)
    if on_prediction is not None:
      on_prediction(image, pred)
  return results


def score(ann_file: str, results: list[dict], dataset: str, num_images: int,
          log: Callable[[str], Any] = print) -> dict[str, float]:
  """{metric: value} of results against ann_file; every metric 0 when there are no results."""
  if not results:
    log(f'no detections on any of the {num_images} image(s): every metric is 0')
    return {name: 0.0 for name in METRIC_NAMES[dataset]}
  return evaluate_keypoints(ann_file, results, dataset, verbose=False)


def evaluate_split(predictor, ann_file: str, images: Sequence[SplitImage], dataset: str, *,
                   out_prefix: str | None = None, restrict: bool = False, desc: str = 'eval',
                   progress: bool = True, leave: bool = True,
                   on_prediction: Callable[[SplitImage, Any], None] | None = None,
                   log: Callable[[str], Any] = print) -> tuple[dict[str, float], list[dict]]:
  """Predicts `images` and scores them against ann_file -> (metrics, COCO results).

  restrict: score against the ground truth of `images` only (a partial split); the restricted
  json is <out_prefix>_gt_subset.json (out_prefix is then required). With out_prefix the results
  are also written to <out_prefix>_results.json.
  """
  if restrict and not out_prefix:
    raise ValueError('restrict=True needs out_prefix (where the restricted ground truth goes)')
  results = predict_split(predictor, images, desc=desc, progress=progress, leave=leave,
                          on_prediction=on_prediction)
  if out_prefix:
    write_json(out_prefix + '_results.json', results)
    log(f'wrote {len(results)} detections for {len(images)} images: {out_prefix}_results.json')
  if restrict:
    ann_file = restrict_gt(ann_file, [im.image_id for im in images], out_prefix + '_gt_subset.json')
  return score(ann_file, results, dataset, len(images), log), results
