"""`litepose eval`: run a checkpoint over an annotated split and score it.

Data come from --ann/--images/--dataset, or from --config (a big_vision-style python file with
get_config(arg), given as `path.py` or `path.py:arg`) providing config.data.dataset,
config.data.ann_file and config.data.image_dir; explicit flags override the config.
Writes <prefix>_results.json (COCO format) and <prefix>_metrics.json next to the checkpoint
(evaluation/split.py: the loop shared with training's periodic evaluation).
"""
from __future__ import annotations

import argparse
import os

from litepose_jax import config_files
from litepose_jax.data import datasets
from litepose_jax.errors import UserError
from litepose_jax.evaluation import format_table
from litepose_jax.evaluation import load_gt
from litepose_jax.evaluation import split as split_lib
from litepose_jax.inference.predict_cli import add_fixed_input_argument
from litepose_jax.inference.predict_cli import parse_scales


def add_arguments(parser) -> None:
  parser.add_argument('--checkpoint', required=True, help='checkpoint dir, workdir or .tflite')
  parser.add_argument('--config', default=None, help='config file, path.py or path.py:arg')
  parser.add_argument('--ann', default=None, help='ground-truth annotation json')
  parser.add_argument('--images', default=None, help='folder with the images of --ann')
  parser.add_argument('--dataset', choices=('crowdpose', 'coco'), default=None)
  parser.add_argument('--size', type=int, default=None, help='model input size (default: arch)')
  # The official protocol tests with flip (TEST.FLIP_TEST True, docs/OFFICIAL.md "Inference and
  # grouping"): on by default so that a bare `litepose eval` gives the number a paper quotes.
  parser.add_argument('--flip', action=argparse.BooleanOptionalAction, default=True,
                      help='flip test (default: on, the official protocol; --no-flip for speed)')
  parser.add_argument('--scales', default='1', help='comma-separated test scales, e.g. 1,0.5,2')
  parser.add_argument('--group-at', choices=('input', 'stride2'), default='input')
  parser.add_argument('--limit', type=int, default=None, help='evaluate the first N images only')
  add_fixed_input_argument(parser)
  parser.add_argument('--out', default=None, help='output directory (default: beside checkpoint)')


def _data_args(args):
  """(annotation json, image folder, dataset) from the flags, completed from --config."""
  ann, images, dataset = args.ann, args.images, args.dataset
  if args.config:
    # A training config: its data section and eval split name the ground truth.
    cfg = config_files.load_config(args.config)
    data = cfg.data
    split = cfg.get('eval', {}).get('split', '') or data.get('split', '')
    cfg_ann, cfg_images = datasets.resolve_paths(
        data.dataset, data.get('data_dir', ''), split, data.get('ann_file', ''),
        data.get('image_dir', ''))
    ann, images, dataset = ann or cfg_ann, images or cfg_images, dataset or data.dataset
  missing = [n for n, v in (('--ann', ann), ('--images', images), ('--dataset', dataset)) if not v]
  if missing:
    raise UserError(f'missing {", ".join(missing)} (or give --config)')
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
  # JAX and the decoder take seconds to import: not for `litepose eval --help`.
  from litepose_jax.inference.predictor import Predictor
  ann, image_dir, dataset = _data_args(args)
  scales = parse_scales(args.scales)
  gt = load_gt(ann, dataset)
  predictor = Predictor.from_path(args.checkpoint, size=args.size, flip=args.flip, scales=scales,
                                  group_at=args.group_at, fixed_input=args.fixed_input)
  if predictor.joint_set.name != dataset:
    raise UserError(f'the model predicts {predictor.joint_set.name} joints but --dataset is '
                    f'{dataset}')
  images = split_lib.split_images(gt, image_dir, args.limit)
  prefix = _out_prefix(args, dataset)
  metrics, _ = split_lib.evaluate_split(predictor, ann, images, dataset, out_prefix=prefix,
                                        restrict=args.limit is not None, desc=f'eval {dataset}')
  split_lib.write_json(prefix + '_metrics.json', {
      'dataset': dataset, 'checkpoint': os.path.abspath(args.checkpoint), 'flip': args.flip,
      'scales': scales, 'images': len(images), 'protocol': predictor.protocol, **metrics},
      indent=2)
  # The input protocol decides the AP as much as the weights do: name it beside the numbers.
  print(format_table(metrics, f'{dataset}: {len(images)} images, flip={args.flip}, '
                              f'scales={scales}, input: {predictor.protocol}'))
  print(f'metrics: {prefix}_metrics.json')
  return 0
