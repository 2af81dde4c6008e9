"""`litepose eval`: run a checkpoint over an annotated split and score it (spec 7).

Data come from --ann/--images/--dataset, or from --config (a big_vision-style python file with
get_config(arg), given as `path.py` or `path.py:arg`) providing config.data.dataset,
config.data.ann_file and config.data.image_dir; explicit flags override the config.
Writes <prefix>_results.json (COCO format) and <prefix>_metrics.json next to the checkpoint.
"""
from __future__ import annotations

import json
import os

from litepose_jax.data import images as image_files


def add_arguments(parser) -> None:
  parser.add_argument('--checkpoint', required=True, help='checkpoint dir, workdir or .tflite')
  parser.add_argument('--config', default=None, help='config file, path.py or path.py:arg')
  parser.add_argument('--ann', default=None, help='ground-truth annotation json')
  parser.add_argument('--images', default=None, help='folder with the images of --ann')
  parser.add_argument('--dataset', choices=('crowdpose', 'coco'), default=None)
  parser.add_argument('--size', type=int, default=None, help='model input size (default: arch)')
  parser.add_argument('--flip', action='store_true', help='flip test')
  parser.add_argument('--scales', default='1', help='comma-separated test scales, e.g. 1,0.5,2')
  parser.add_argument('--group-at', choices=('input', 'stride2'), default='input')
  parser.add_argument('--limit', type=int, default=None, help='evaluate the first N images only')
  parser.add_argument('--out', default=None, help='output directory (default: beside checkpoint)')


def _data_args(args):
  ann, images, dataset = args.ann, args.images, args.dataset
  if args.config:
    # A training config: its data section and eval split name the ground truth.
    from litepose_jax.data import datasets  # pylint: disable=g-import-not-at-top
    from litepose_jax.training import config_lib  # pylint: disable=g-import-not-at-top
    cfg = config_lib.load_config(args.config)
    data = cfg.data
    split = cfg.get('eval', {}).get('split', '') or data.get('split', '')
    cfg_ann, cfg_images = datasets.resolve_paths(
        data.dataset, data.get('data_dir', ''), split, data.get('ann_file', ''),
        data.get('image_dir', ''))
    ann, images, dataset = ann or cfg_ann, images or cfg_images, dataset or data.dataset
  missing = [n for n, v in (('--ann', ann), ('--images', images), ('--dataset', dataset)) if not v]
  if missing:
    raise ValueError(f'missing {", ".join(missing)} (or give --config)')
  dataset = {'crowd_pose': 'crowdpose'}.get(dataset, dataset)
  if not os.path.isdir(images):
    raise FileNotFoundError(f'--images folder not found: {images}')
  return ann, images, dataset


def _out_prefix(args, dataset: str) -> str:
  ckpt = os.path.abspath(args.checkpoint)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, f'eval_{dataset}')
  if os.path.isdir(ckpt):
    return os.path.join(ckpt, f'eval_{dataset}')
  return os.path.splitext(ckpt)[0] + f'_eval_{dataset}'


def run(args) -> int:
  from tqdm import tqdm

  from litepose_jax.evaluation import evaluate_keypoints, format_table, load_gt
  from litepose_jax.inference.predictor import Predictor
  ann, image_dir, dataset = _data_args(args)
  try:
    scales = [float(s) for s in args.scales.split(',')]
  except ValueError as e:
    raise ValueError(f'--scales must be comma-separated numbers, got {args.scales!r}') from e
  gt = load_gt(ann, dataset)
  predictor = Predictor.from_path(args.checkpoint, size=args.size, flip=args.flip, scales=scales,
                                  group_at=args.group_at)
  if predictor.joint_set.name != dataset:
    raise ValueError(f'the model predicts {predictor.joint_set.name} joints but --dataset is '
                     f'{dataset}')
  ids = sorted(gt.getImgIds())[:args.limit]
  results = []
  for image_id in tqdm(ids, desc=f'eval {dataset}', unit='img'):
    info = gt.loadImgs(image_id)[0]
    path = os.path.join(image_dir, info['file_name'])
    rgb = image_files.read_rgb(path, f'image (id {image_id} of {ann})', ignore_orientation=True)
    results += predictor(rgb).to_coco(image_id)
  prefix = _out_prefix(args, dataset)
  with open(prefix + '_results.json', 'w') as f:
    json.dump(results, f)
  print(f'wrote {len(results)} detections for {len(ids)} images: {prefix}_results.json')
  if args.limit is not None:
    # Score only the evaluated images.
    data = json.load(open(ann))
    keep = set(ids)
    data['images'] = [im for im in data['images'] if im['id'] in keep]
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] in keep]
    ann = prefix + '_gt_subset.json'
    with open(ann, 'w') as f:
      json.dump(data, f)
  if results:
    metrics = evaluate_keypoints(ann, results, dataset, verbose=False)
  else:
    # A model that finds nobody scores 0; the library would refuse an empty result list.
    from litepose_jax.evaluation import METRIC_NAMES
    print('no detections on any image: all metrics are 0')
    metrics = {name: 0.0 for name in METRIC_NAMES[dataset]}
  with open(prefix + '_metrics.json', 'w') as f:
    json.dump({'dataset': dataset, 'checkpoint': os.path.abspath(args.checkpoint),
               'flip': args.flip, 'scales': scales, 'images': len(ids), **metrics}, f, indent=2)
  print(format_table(metrics, f'{dataset}: {len(ids)} images, flip={args.flip}, scales={scales}'))
  print(f'metrics: {prefix}_metrics.json')
  return 0
