"""Keypoint evaluation with the official protocols (docs/OFFICIAL.md, "Evaluation").

`evaluate_keypoints(gt_json_path, results, dataset)`:
- 'crowdpose': xtcocotools COCOeval, iouType 'keypoints_crowd', CrowdPose sigmas, use_area=False
  (OKS area = 0.53 x box area), maxDets 20, easy / medium / hard by crowdIndex (0.2 / 0.8).
- 'coco': pycocotools COCOeval, iouType 'keypoints' (COCO sigmas, maxDets 20).
The numbers are exactly what the libraries return; their own printout is replaced by one table.
"""
from __future__ import annotations

from collections.abc import Sequence
import contextlib
import io
import json
import os

import numpy as np

from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError

METRIC_NAMES = {
    'crowdpose': ('AP', 'AP50', 'AP75', 'AR', 'AR50', 'AR75', 'AP_easy', 'AP_medium', 'AP_hard'),
    'coco': ('AP', 'AP50', 'AP75', 'AP_M', 'AP_L', 'AR', 'AR50', 'AR75', 'AR_M', 'AR_L'),
}


def _load_results(results) -> list[dict]:
  if isinstance(results, (str, os.PathLike)):
    path = os.fspath(results)
    if not os.path.isfile(path):
      raise FileNotFoundError(f'results file not found: {path}')
    with open(path) as f:
      try:
        results = json.load(f)
      except json.JSONDecodeError as e:
        raise UserError(f'{path} is not valid JSON: {e}') from e
    if not isinstance(results, list):
      raise UserError(f'{path} must hold a JSON list of COCO result dicts')
  return list(results)


def _check_results(results: Sequence[dict], gt, num_joints: int) -> None:
  if not results:
    raise UserError('no results to evaluate (empty list): the model found no people at all')
  known = set(gt.getImgIds())
  unknown = set()
  for i, r in enumerate(results):
    for key in ('image_id', 'keypoints', 'score'):
      if key not in r:
        raise UserError(f'result {i} lacks the field {key!r} (has {sorted(r)})')
    if len(r['keypoints']) != 3 * num_joints:
      raise UserError(f'result {i} (image_id {r["image_id"]}) has {len(r["keypoints"])} keypoint '
                      f'values; expected {3 * num_joints} (x, y, score for {num_joints} joints)')
    if r['image_id'] not in known:
      unknown.add(r['image_id'])
  if unknown:
    raise UserError(f'{len(unknown)} result image id(s) are not in the ground truth, e.g. '
                    f'{sorted(unknown, key=str)[:5]}')


def load_gt(gt_json_path, dataset: str):
  """The ground truth as a COCO object of the library the protocol uses."""
  path = os.fspath(gt_json_path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'ground-truth annotations not found: {path}')
  # Each protocol imports its own library, only when it is used.
  if dataset == 'crowdpose':
    from xtcocotools.coco import COCO
  elif dataset == 'coco':
    from pycocotools.coco import COCO
  else:
    raise UserError(f"dataset must be 'crowdpose' or 'coco', got {dataset!r}")
  with contextlib.redirect_stdout(io.StringIO()):
    return COCO(path)


def evaluate_keypoints(gt_json_path, results, dataset: str, *, verbose: bool = True) -> dict:
  """COCO-format results (list or json path) -> {metric name: value}; prints a table."""
  if dataset not in METRIC_NAMES:
    raise UserError(f"dataset must be 'crowdpose' or 'coco', got {dataset!r}")
  gt = load_gt(gt_json_path, dataset)
  results = _load_results(results)
  joint_set = joints_lib.get_joint_set(dataset)
  _check_results(results, gt, joint_set.num_joints)
  results = [dict(r, category_id=r.get('category_id', 1)) for r in results]
  log = io.StringIO()
  with contextlib.redirect_stdout(log):
    dt = gt.loadRes(results)
    if dataset == 'crowdpose':  # the protocol's own library, imported when used (as load_gt)
      from xtcocotools.cocoeval import COCOeval
      ev = COCOeval(gt, dt, 'keypoints_crowd', np.array(joint_set.sigmas), use_area=False)
    else:
      from pycocotools.cocoeval import COCOeval
      ev = COCOeval(gt, dt, 'keypoints')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  metrics = {k: float(v) for k, v in zip(METRIC_NAMES[dataset], ev.stats)}
  if verbose:
    print(format_table(metrics, f'{dataset} keypoints, {len(results)} detections'))
  return metrics


def format_table(metrics: dict, title: str = '') -> str:
  """A two-row markdown table of metric names and values."""
  names = list(metrics)
  head = '| ' + ' | '.join(names) + ' |'
  sep = '|' + '|'.join('---' for _ in names) + '|'
  vals = '| ' + ' | '.join(f'{metrics[n]:.4f}' for n in names) + ' |'
  return '\n'.join(([title] if title else []) + [head, sep, vals])


__all__ = ['METRIC_NAMES', 'evaluate_keypoints', 'format_table', 'load_gt']
