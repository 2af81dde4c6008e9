"""`litepose eval`: run a checkpoint over an annotated split and score it.

Data come from --ann/--images/--dataset, or from --config (a big_vision-style python file with
get_config(arg), given as `path.py` or `path.py:arg`) providing config.data.dataset,
config.data.ann_file and config.data.image_dir; explicit flags override the config.
Writes <prefix>_results.json (COCO format) and <prefix>_metrics.json next to the checkpoint
(evaluation/split.py: the loop shared with training's periodic evaluation).

With --supernet-arch ARCH.json the checkpoint is a super-net: the sub-net ARCH.json gets its
BatchNorm statistics recalibrated on images of the --config's training split
(nas/recalibrate.py), is extracted (nas.extract_subnet) and evaluated as a standalone net, which
computes exactly what the sub-net inside the super-net computes.
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
from litepose_jax.nas import recalibrate as recalibrate_lib


def add_arguments(parser) -> None:
  parser.add_argument('--checkpoint', required=True, help='checkpoint dir, workdir or .tflite')
  parser.add_argument('--config', default=None, help='config file, path.py or path.py:arg '
                      '(--config.KEY=VALUE overrides its fields)')
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
  parser.add_argument(
      '--supernet-arch', default=None, metavar='ARCH.json',
      help='--checkpoint is a super-net: evaluate its sub-net ARCH.json (official JSON schema) '
           'after BatchNorm recalibration on --config\'s training split (required then); the '
           'extracted net is evaluated, which is exactly the sub-net inside the super-net with '
           'recalibrated statistics. Default --size: the arch\'s img_size')
  recalibrate_lib.add_calibration_arguments(parser, '--supernet-arch')
  config_files.accept_config_overrides(parser)


def _data_args(args):
  """(annotation json, image folder, dataset) from the flags, completed from --config."""
  ann, images, dataset = args.ann, args.images, args.dataset
  if args.config:
    # A training config: its data section and eval split name the ground truth.
    cfg = config_files.load_config(args.config, getattr(args, 'config_overrides', None) or ())
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
  name = f'eval_{dataset}'
  if getattr(args, 'supernet_arch', None):
    # One super-net, many sub-nets: each sub-net's files are named after its architecture.
    name += '_' + os.path.splitext(os.path.basename(args.supernet_arch))[0]
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, name)
  if os.path.isdir(ckpt):
    return os.path.join(ckpt, name)
  return os.path.splitext(ckpt)[0] + '_' + name


def _subnet_predictor(args, **kwargs):
  """(Predictor of the recalibrated, extracted sub-net --supernet-arch, metrics entries)."""
  # JAX, orbax, TensorFlow: slow imports, only for this path.
  from litepose_jax import joints as joints_lib
  from litepose_jax import models
  from litepose_jax import nas
  from litepose_jax.inference.predictor import JaxBackend
  from litepose_jax.inference.predictor import Predictor
  spec = models.resolve_arch(args.supernet_arch)
  net, variables, model_cfg = nas.load_supernet(args.checkpoint)
  size = int(args.size or spec.img_size)
  overrides = getattr(args, 'config_overrides', None) or ()
  data_cfg = config_files.load_config(args.config, overrides).data
  sub_variables, calibration = recalibrate_lib.recalibrated_subnet(
      net, variables, spec, data_cfg, size=size, num_images=args.calib_images,
      batch_size=args.calib_batch, seed=args.calib_seed)
  module = models.create_model(spec, net.num_joints, fusion=net.fusion)
  try:
    joint_set = joints_lib.get_joint_set(model_cfg.get('joint_set') or net.num_joints)
  except ValueError:
    joint_set = joints_lib.get_joint_set(net.num_joints)
  predictor = Predictor(JaxBackend(module, sub_variables, joint_set, size), size=size, **kwargs)
  info = {'supernet_arch': os.path.abspath(args.supernet_arch), 'subnet': spec.to_json_dict(),
          'calibration': calibration}
  return predictor, info


def run(args) -> int:
  # JAX and the decoder take seconds to import: not for `litepose eval --help`.
  from litepose_jax.inference.predictor import Predictor
  if args.supernet_arch and not args.config:
    raise UserError('--supernet-arch needs --config: the sub-net\'s BatchNorm statistics are '
                    'recalibrated on its training split (config.data)')
  ann, image_dir, dataset = _data_args(args)
  scales = parse_scales(args.scales)
  gt = load_gt(ann, dataset)
  extra = {}
  if args.supernet_arch:
    predictor, extra = _subnet_predictor(args, flip=args.flip, scales=scales,
                                         group_at=args.group_at)
  else:
    predictor = Predictor.from_path(args.checkpoint, size=args.size, flip=args.flip,
                                    scales=scales, group_at=args.group_at,
                                    fixed_input=args.fixed_input)
  if predictor.joint_set.name != dataset:
    raise UserError(f'the model predicts {predictor.joint_set.name} joints but --dataset is '
                    f'{dataset}')
  images = split_lib.split_images(gt, image_dir, args.limit)
  prefix = _out_prefix(args, dataset)
  metrics, _ = split_lib.evaluate_split(predictor, ann, images, dataset, out_prefix=prefix,
                                        restrict=args.limit is not None, desc=f'eval {dataset}')
  split_lib.write_json(prefix + '_metrics.json', {
      'dataset': dataset, 'checkpoint': os.path.abspath(args.checkpoint), 'flip': args.flip,
      'scales': scales, 'images': len(images), 'protocol': predictor.protocol, **extra,
      **metrics},
      indent=2)
  # The input protocol decides the AP as much as the weights do: name it beside the numbers.
  print(format_table(metrics, f'{dataset}: {len(images)} images, flip={args.flip}, '
                              f'scales={scales}, input: {predictor.protocol}'))
  print(f'metrics: {prefix}_metrics.json')
  return 0
