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


def _gt_people(ann_file: str, num_joints: int) -> dict[int, np.ndarray]:
  """Image id -> keypoints [P, J, 3] (image pixels) of the annotated people with visible joints."""
  with open(ann_file) as f:
    anns = json.load(f).get('annotations', [])
  people: dict[int, list] = {}
  for a in anns:
    k = np.asarray(a.get('keypoints') or [], np.float32)
    if k.size == num_joints * 3 and (k[2::3] > 0).any():
      people.setdefault(int(a['image_id']), []).append(k.reshape(num_joints, 3))
  return {i: np.stack(p) for i, p in people.items()}


def _to_map(people: np.ndarray, image_to_map: np.ndarray) -> np.ndarray:
  """people [P, J, 3] in image pixels -> the same in map pixels (visibility kept)."""
  out = people.copy()
  out[..., :2] = people[..., :2] @ image_to_map[:, :2].T + image_to_map[:, 2]
  return out


def make_evaluator(config, info, workdir: str):
  """evaluate(forward, variables, step) -> {'AP': ...} on config.eval.split of config.data."""
  from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from litepose_jax.evaluation import evaluate_keypoints  # pylint: disable=g-import-not-at-top
  from litepose_jax.evaluation import tag_separation  # pylint: disable=g-import-not-at-top
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
  gt_people = _gt_people(ann_file, joint_set.num_joints)
  size = int(cfg.input_size)
  state = {'backend': None}

  def evaluate(model, variables, step):
    del step  # the same evaluation at every step
    if state['backend'] is None:
      state['backend'] = predictor_lib.JaxBackend(model, variables, joint_set, size)
    backend = state['backend']
    backend.variables = variables
    predictor = predictor_lib.Predictor(backend, size=size, flip=bool(ev.flip), keep_maps=True)
    results, tags = [], []
    for rec in tqdm.tqdm(records, desc='eval', leave=False, disable=not config.progress):
      rgb = image_files.read_rgb(rec.file_path, f'val image (id {rec.image_id})',
                                 ignore_orientation=True)
      pred = predictor(rgb)
      results.extend(pred.to_coco(rec.image_id))
      if rec.image_id in gt_people:
        tags.append(tag_separation.person_tags(
            pred.maps['tags'], _to_map(gt_people[rec.image_id], pred.maps['image_to_map'])))
    separation = tag_separation.tag_separation(tags)
    warning = tag_separation.collapse_warning(separation)
    if warning:
      tqdm.tqdm.write(f'eval: {warning}')
    if not results:
      return {'AP': 0.0, 'num_detections': 0, **separation}
    metrics = evaluate_keypoints(ann_file, results, cfg.dataset, verbose=False)
    metrics['num_detections'] = len(results)
    metrics.update(separation)
    return metrics

  return evaluate
