"""`litepose data show|synth|tfds`: draw augmented samples, generate the synthetic crowd data set,
prepare the CrowdPose TFDS data set."""
from __future__ import annotations

import argparse
import os

from litepose_jax import config_files
from litepose_jax.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `show` and `synth` subcommands."""
  sub = parser.add_subparsers(dest='data_command', metavar='SUBCOMMAND', required=True)
  show = sub.add_parser('show', help='draw a grid of augmented training samples (skeleton + '
                        'heatmaps) to check the augmentation by eye')
  show.add_argument('--config', default='', help="python config 'path.py[:arg]' with get_config() "
                    '(its .data field if present); flags below override it')
  show.add_argument('--data-dir', default=None, help='data set root (official layout) or a flat '
                    'folder with annotations.json beside the images')
  show.add_argument('--dataset', default=None, choices=('crowdpose', 'coco', 'custom'))
  show.add_argument('--split', default=None, help='e.g. trainval / train / val / test')
  show.add_argument('--ann-file', default=None, help='explicit annotation json')
  show.add_argument('--image-dir', default=None, help='explicit image folder')
  show.add_argument('--input-size', type=int, default=None, help='training input side (px)')
  show.add_argument('--seed', type=int, default=None)
  show.add_argument('--num', type=int, default=8, help='number of samples')
  show.add_argument('--cols', type=int, default=4, help='grid columns')
  show.add_argument('--out', required=True, help='output image (.png / .jpg)')
  tf_ds = sub.add_parser('tfds', help='prepare the CrowdPose TFDS data set from a manual download '
                         '(MANUAL_DIR/json/crowdpose_*.json + MANUAL_DIR/images/; no network)')
  tf_ds.add_argument('--manual-dir', required=True, help='folder with json/ and images/')
  tf_ds.add_argument('--data-dir', default=None,
                     help='TFDS data dir (default: ~/tensorflow_datasets)')
  synth = sub.add_parser('synth', help='generate the synthetic CrowdPose-format crowd data set')
  try:
    from litepose_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # the generator module is optional for `show`
    synth.set_defaults(_synth_error=str(e))
  else:
    synthetic.add_synth_arguments(synth)


def _show_config(args):
  """The data config of `data show`: the pipeline's defaults, the --config's data, the flags."""
  # Imported per subcommand (here and below): each loads only the heavy libraries it needs
  # (OpenCV, TensorFlow Datasets), so `litepose data --help` stays instant.
  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  cfg = pipeline.default_data_config()
  if args.config:
    loaded = config_files.load_config(args.config)
    # A training config's data section, or a file whose get_config() returns data fields only.
    cfg.update(loaded.data if 'data' in loaded else loaded)
  for flag, field in (('data_dir', 'data_dir'), ('dataset', 'dataset'), ('split', 'split'),
                      ('ann_file', 'ann_file'), ('image_dir', 'image_dir'),
                      ('input_size', 'input_size'), ('seed', 'seed')):
    value = getattr(args, flag)
    if value is not None:
      cfg[field] = value
  if args.input_size is not None:
    cfg.input_sizes = ()
  if args.split is None and not args.config and cfg.dataset == 'coco':
    cfg.split = 'train'
  cfg.lock()
  return cfg


def _run_tfds(args) -> int:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from litepose_jax.data import tfds_crowdpose  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(args.manual_dir):
    raise FileNotFoundError(f'manual dir not found: {args.manual_dir}. '
                            + tfds_crowdpose.CrowdPose.MANUAL_DOWNLOAD_INSTRUCTIONS)
  builder = tfds_crowdpose.CrowdPose(data_dir=args.data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
  splits = ', '.join(f'{k}: {v.num_examples}' for k, v in builder.info.splits.items())
  print(f'prepared {builder.info.full_name} in {builder.data_dir} ({splits})')
  return 0


def run(args: argparse.Namespace) -> int:
  """Runs `data show`, `data synth` or `data tfds`."""
  if args.data_command == 'tfds':
    return _run_tfds(args)
  if args.data_command == 'synth':
    if getattr(args, '_synth_error', None):
      raise ValueError(f'the synthetic generator is unavailable: {args._synth_error}')
    from litepose_jax.data import synthetic  # pylint: disable=g-import-not-at-top
    return synthetic.run_synth(args)
  import cv2  # pylint: disable=g-import-not-at-top

  from litepose_jax.data import show  # pylint: disable=g-import-not-at-top
  if args.num < 1 or args.cols < 1:
    raise UserError('--num and --cols must be >= 1')
  cfg = _show_config(args)
  grid, summary = show.make_grid(cfg, args.num, args.cols)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  if not cv2.imwrite(args.out, grid):
    raise UserError(f'cannot write --out {args.out} (use a .png or .jpg name)')
  print(f'wrote {args.out} ({args.num} samples, input {grid.shape[1] // min(args.cols, args.num)} '
        f'px); {summary}')
  return 0
