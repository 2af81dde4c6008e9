"""Evaluation of the training model on the val split (the inference Predictor + evaluator)."""
from __future__ import annotations

import json
import os

import numpy as np
import tqdm

from litepose_jax import joints as joints_lib
from litepose_jax.data import images as image_files


def _subset_gt(ann_file: str, image_ids: list[int], out_path: str) -> str:
  """A ground-truth json restricted to image_ids (so a partial val run is scored fairly)."""
  with open(ann_file) as f:
    gt = json.load(f)
  keep = set(image_ids)
  gt['images'] = [im for im in gt['images'] if im['id'] in keep]
  gt['annotations'] = [a for a in gt.get('annotations', []) if a['image_id'] in keep]
  tmp = out_path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(gt, f)
  os.replace(tmp, out_path)
  return out_path


def make_evaluator(config, info, workdir: str):
  """evaluate(forward, variables, step) -> {'AP': ...} on config.eval.split of config.data."""
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from litepose_jax.evaluation import evaluate_keypoints  # pylint: disable=g-import-not-at-top
  from litepose_jax.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top

  cfg, ev = config.data, config.eval
  if cfg.dataset not in ('crowdpose', 'coco'):
    raise ValueError(f"periodic evaluation supports data.dataset 'crowdpose' or 'coco', got "
                     f'{cfg.dataset!r}; set --config.eval.enabled=False')
  val = datasets.open_dataset(cfg.dataset, cfg.data_dir, ev.split, is_train=False)
  ann_file, _ = datasets.resolve_paths(cfg.dataset, cfg.data_dir, ev.split)
  records = list(val.records)
  if ev.num_images:
    records = records[:int(ev.num_images)]
    ann_file = _subset_gt(ann_file, [r.image_id for r in records],
                          os.path.join(workdir, f'eval_gt_{ev.split}_{len(records)}.json'))
  joint_set = joints_lib.get_joint_set(cfg.dataset)
  size = int(cfg.input_size)
  state = {'backend': None}

  def evaluate(model, variables, step):
    del step  # the same evaluation at every step
    if state['backend'] is None:
      state['backend'] = predictor_lib.JaxBackend(model, variables, joint_set, size)
    backend = state['backend']
    backend.variables = variables
    predictor = predictor_lib.Predictor(backend, size=size, flip=bool(ev.flip))
    results = []
    for rec in tqdm.tqdm(records, desc='eval', leave=False, disable=not config.progress):
      rgb = image_files.read_rgb(rec.file_path, f'val image (id {rec.image_id})',
                                 ignore_orientation=True)
      results.extend(predictor(rgb).to_coco(rec.image_id))
    if not results:
      return {'AP': 0.0, 'num_detections': 0}
    metrics = evaluate_keypoints(ann_file, results, cfg.dataset, verbose=False)
    metrics['num_detections'] = len(results)
    return metrics

  return evaluate
