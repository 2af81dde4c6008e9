"""Periodic evaluation during training: the held-out training images (eval.select_on 'holdout',
ids in WORKDIR/holdout.json) or eval.split through the inference Predictor, scored by
evaluation.split (the loop `litepose eval` runs), plus how well the tags separate people.

`make_evaluator(config, info, workdir)` returns `evaluate(model, variables, step) -> metrics`.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tqdm

from litepose_jax import joints as joints_lib
from litepose_jax.data import datasets
from litepose_jax.errors import UserError
from litepose_jax.evaluation import split as split_lib
from litepose_jax.evaluation import tag_separation
from litepose_jax.inference import predictor as predictor_lib
from litepose_jax.training import input_pipeline

HOLDOUT_FILE = 'holdout.json'


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


def write_holdout(workdir: str, holdout, seed: int, resuming: bool = False) -> str:
  """WORKDIR/holdout.json: the held-out image ids; a resumed run must hold out the same ones
  (resuming: the workdir has checkpoints, so a missing file means it trained on every image)."""
  path = os.path.join(workdir, HOLDOUT_FILE)
  ids = [r.image_id for r in holdout.records]
  if resuming and not os.path.isfile(path):
    raise UserError(f'{workdir} has checkpoints of a run that held out no training images (no '
                    f"{HOLDOUT_FILE}), so it trained on the images this config holds out: resume "
                    "it with --config.eval.select_on=split, or use a new --workdir.")
  if os.path.isfile(path):
    with open(path) as f:
      before = json.load(f).get('image_ids')
    if before != ids:
      raise UserError(f'{path} lists other held-out images than this config holds out (data, '
                      'data.seed or eval.holdout_images changed): this workdir trained on some of '
                      'them. Use a new --workdir, or restore the former settings.')
  return split_lib.write_json(path, {
      'dataset': holdout.name, 'split': holdout.split, 'ann_file': os.path.abspath(holdout.ann_file),
      'seed': seed, 'num_images': len(ids), 'image_ids': ids})


def _selection_set(config, info, workdir: str) -> tuple[str, list[split_lib.SplitImage]]:
  """(ground-truth json, images) of periodic evaluation and best/, announced in the log."""
  cfg, ev = config.data, config.eval
  if input_pipeline.select_on(config) == 'holdout':
    if info.holdout is None:
      raise UserError("eval.select_on='holdout' needs data.source='files' (held-out training "
                      "images); set eval.select_on='split' to evaluate on eval.split")
    path = write_holdout(workdir, info.holdout, int(cfg.seed))
    ann_file, records = info.holdout.ann_file, info.holdout.records
    print(f'litepose train: periodic evaluation and best/ on {len(records)} held-out images of '
          f"training split {cfg.split!r}, never trained on (ids: {path})", flush=True)
  else:
    val = datasets.open_dataset(cfg.dataset, cfg.data_dir, ev.split, is_train=False)
    ann_file, _ = datasets.resolve_paths(cfg.dataset, cfg.data_dir, ev.split)
    records = val.records
    # Choosing best/ on the split a paper reports biases that AP upwards: said, not forbidden.
    print(f"litepose train: periodic evaluation and best/ on split {ev.split!r} "
          "(eval.select_on='split'); an AP reported on this split is then chosen on it too. "
          "eval.select_on='holdout' selects on held-out training images instead.", flush=True)
  images = [split_lib.SplitImage(r.image_id, r.file_path) for r in records]
  if ev.num_images:
    images = images[:int(ev.num_images)]
  if ev.num_images or input_pipeline.select_on(config) == 'holdout':
    # Written once: every evaluation scores against the same restricted ground truth.
    name = 'holdout' if input_pipeline.select_on(config) == 'holdout' else ev.split
    ann_file = split_lib.restrict_gt(ann_file, [im.image_id for im in images],
                                     os.path.join(workdir, f'eval_gt_{name}_{len(images)}.json'))
  return ann_file, images


def make_evaluator(config, info, workdir: str):
  """evaluate(model, variables, step) -> {'AP': ..., 'num_detections', tag separation} on the
  held-out training images or on config.eval.split (eval.select_on; the first eval.num_images
  images when set)."""
  cfg, ev = config.data, config.eval
  if cfg.dataset not in ('crowdpose', 'coco'):
    raise UserError(f"periodic evaluation supports data.dataset 'crowdpose' or 'coco', got "
                    f'{cfg.dataset!r}; set --config.eval.enabled=False')
  ann_file, images = _selection_set(config, info, workdir)
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
    tags = []

    def collect_tags(image, pred):
      if image.image_id in gt_people:
        tags.append(tag_separation.person_tags(
            pred.maps['tags'], _to_map(gt_people[image.image_id], pred.maps['image_to_map'])))

    metrics, results = split_lib.evaluate_split(
        predictor, ann_file, images, cfg.dataset, progress=bool(config.progress), leave=False,
        on_prediction=collect_tags, log=lambda msg: tqdm.tqdm.write(f'eval: {msg}'))
    separation = tag_separation.tag_separation(tags)
    warning = tag_separation.collapse_warning(separation)
    if warning:
      tqdm.tqdm.write(f'eval: {warning}')
    return {**metrics, 'num_detections': len(results), **separation}

  return evaluate
