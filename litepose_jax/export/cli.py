"""`litepose export`: a checkpoint (or a random-init architecture) -> .tflite + sidecar json.

  litepose export --checkpoint CKPT --out model.tflite [--size 448] [--quantize int8
                  --calibration DIR]
  litepose export --arch S --init random --out s.tflite     # benchmarking only

The exported graph takes `image` float32 [1, S, S, 3] (RGB, (pixel/255 - mean)/std, ImageNet
statistics) and returns heatmaps4 / tags4 [1, S/4, S/4, J] and heatmaps2 [1, S/2, S/2, J].
With S a multiple of 64 the input is resizable (inference/litert.py): under XNNPACK the graph
runs at any [1, H, W, 3] with H, W multiples of 64, which `litepose eval` / `predict` use to feed
each image at the official test size; the sidecar says so (input.resizable). The export checks
that by running the graph at another size: a graph with fixed-shape ops (a HigherHRNet's
upsampling reshapes) is written as fixed-size, and eval / predict fit each image into it.
Parity against the JAX model is measured on the calibration inputs; an fp32 / fp16 model whose
error exceeds its bound is not written unless --force.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
import os
from typing import Any

from litepose_jax import joints as joints_lib
from litepose_jax.errors import UserError
from litepose_jax.export import tflite
from litepose_jax.export import tflite_ops
from litepose_jax.inference import litert
from litepose_jax.inference import sidecar

PARITY_IMAGES = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
  src = parser.add_mutually_exclusive_group(required=True)
  src.add_argument('--checkpoint', help='model checkpoint dir or training workdir')
  src.add_argument('--arch', help='preset (XS/S/M/L, higherhrnet-w16/-w32/-w48, shrink1..3, '
                   'efficienthrnet-h1..-h4), arch json or HigherHRNet / EfficientHRNet yaml, '
                   'with --init random')
  parser.add_argument('--init', choices=('random',),
                      help='with --arch: random weights and BN statistics (benchmarking only)')
  parser.add_argument('--joints', default='crowdpose', choices=sorted(joints_lib.JOINT_SETS),
                      help='joint set of a --init random model')
  parser.add_argument('--out', required=True, help='output .tflite path (sidecar: OUT.json)')
  parser.add_argument('--size', type=int, default=None,
                      help='square input size, a multiple of 16 (of 32 for a HigherHRNet or an '
                           'EfficientHRNet: its lowest branch\'s stride; default: the arch '
                           'img_size)')
  parser.add_argument('--quantize', default='none', choices=tflite.QUANTIZE_MODES,
                      help='none: fp32; fp16: fp16 weights; dynamic: int8 weights, float '
                           'activations quantised on the fly in the convs (1/3 the size, a bit '
                           'faster than fp32); int8: full-integer graph (fastest on CPU, needs '
                           '--calibration images)')
  parser.add_argument('--calibration', default=None,
                      help='folder of jpg/png images for int8 calibration and the parity check '
                           '(default: random-normal inputs, poor int8 scales)')
  parser.add_argument('--num-calibration', type=int, default=32,
                      help='number of calibration images for int8')
  parser.add_argument('--force', action='store_true',
                      help='write a float model even if its parity error exceeds the bound')
  parser.add_argument('--threads', type=int, default=2, help='LiteRT threads for the parity run')
  parser.add_argument('--seed', type=int, default=0, help='seed of --init random')


def load_source(args: argparse.Namespace):
  """(module, variables, model_cfg, joint_set, source, random_init) from --checkpoint / --arch."""
  # Checkpoint loading (orbax) is slow to import: only when a model is loaded.
  from litepose_jax import checkpoints
  from litepose_jax import models
  from litepose_jax.export import fold
  if args.checkpoint:
    if args.init:
      raise UserError('--init random is only for --arch (a checkpoint has trained weights)')
    module, variables, cfg = checkpoints.load_model(args.checkpoint)
    name = cfg.get('joint_set', 'custom')
    if name in joints_lib.JOINT_SETS:
      joint_set = joints_lib.get_joint_set(name)
    elif 'joint_names' in cfg and 'flip_index' in cfg:
      joint_set = joints_lib.custom_joint_set(cfg['joint_names'], cfg['flip_index'],
                                              cfg.get('skeleton', ()), cfg.get('sigmas'), name)
    else:
      joint_set = joints_lib.get_joint_set(module.num_joints)
    return module, variables, cfg, joint_set, os.path.abspath(args.checkpoint), False
  if args.init != 'random':
    raise UserError('--arch needs --init random (to export trained weights use --checkpoint)')
  joint_set = joints_lib.get_joint_set(args.joints)
  module = models.create_model(args.arch, joint_set.num_joints, depthwise_impl='lax')
  size = args.size or module.arch.img_size
  variables = fold.random_variables(module, _check_size(size, module), args.seed)
  cfg = checkpoints.model_config(module.arch, joint_set.num_joints, joint_set=joint_set.name)
  return module, variables, cfg, joint_set, f'random init of {module.arch.name} (seed {args.seed})', True


def _check_size(size: int, module=None) -> int:
  """`size` if it is a positive multiple of the model's input stride (16; an HRNet family's 32)."""
  multiple = max(16, getattr(getattr(module, 'arch', None), 'input_multiple', 16))
  if size <= 0 or size % multiple:
    raise UserError(f'--size must be a positive multiple of {multiple} (the model\'s largest '
                    f'stride), got {size}')
  return size


def resize_problem(path: str, size: int, threads: int = 2) -> str:
  """'' when the .tflite at `path` (sidecar marked resizable) runs at [1, size + 64, size, 3]
  with outputs at input / stride, else why not (the interpreter's error)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  x = np.zeros((1, size + sidecar.RESIZE_MULTIPLE, size, 3), np.float32)
  try:
    litert.TFLiteModel(path, threads).raw(x)
  except RuntimeError as e:  # XNNPACK / LiteRT report a failed re-plan as RuntimeError
    return str(e).strip().splitlines()[0][:200]
  return ''


def export_model(module, variables, out: str, *, size: int, quantize: str = 'none',
                 calibration: str | None = None, num_calibration: int = 32, force: bool = False,
                 model_cfg: dict | None = None, joint_set: joints_lib.JointSet | None = None,
                 source: str = '', random_init: bool = False, threads: int = 2,
                 log: Callable[[str], Any] = print) -> dict:
  """Exports `module`/`variables` to `out` (+ sidecar); returns the sidecar dict."""
  _check_size(size, module)
  if quantize not in tflite.QUANTIZE_MODES:
    raise UserError(f'--quantize must be one of {tflite.QUANTIZE_MODES}, got {quantize!r}')
  if num_calibration < 1:
    raise UserError(f'--num-calibration must be >= 1, got {num_calibration}')
  joint_set = joint_set or joints_lib.get_joint_set(module.num_joints)
  if joint_set.num_joints != module.num_joints:
    raise UserError(f'joint set {joint_set.name} has {joint_set.num_joints} joints, the model '
                    f'{module.num_joints}')
  count = num_calibration if quantize == 'int8' else PARITY_IMAGES
  images = tflite.calibration_images(calibration, size, count, warn=quantize == 'int8')
  log(f'converting {model_cfg.get("name", "model") if model_cfg else "model"} at {size}x{size}, '
      f'quantize={quantize} ...')
  data = tflite.convert(tflite.export_fn(module, variables), size, quantize, images)
  hist = tflite_ops.op_histogram(data)
  log(f'ops: {tflite_ops.format_histogram(hist)}')
  tflite_ops.check_ops(hist, tflite_ops.allowed_ops(module))
  gpu_ok, gpu_msg = tflite_ops.gpu_compatible(data)
  log(f'GPU delegate (static analysis): {gpu_msg}')

  out = os.path.abspath(out)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + '.partial.tflite'
  meta = sidecar.build(size=size, joint_set=joint_set, model_cfg=model_cfg or {},
                       quantization=quantize, source=source, random_init=random_init)
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
    sidecar.write(tmp, meta)
    stats = tflite.parity(litert.TFLiteModel(tmp, threads), module, variables,
                          images[:PARITY_IMAGES], decode=not random_init)
    _log_parity(stats, log)
    bound_msg = _parity_problem(stats, quantize)
    if bound_msg and quantize in ('none', 'fp16') and not force:
      raise UserError(f'{bound_msg}; refusing to write {out} (use --force to write it anyway)')
    if bound_msg:
      log(f'WARNING: {bound_msg}')
    if sidecar.resizable(meta):
      # Fixed-shape ops (RESHAPE to constant shapes) pass parity at the exported size but fail
      # at others; eval / predict must then fit images into the exported input instead.
      why = resize_problem(tmp, size, threads)
      if why:
        meta['input']['resizable'] = {'value': False,
                                      'why': f'the graph does not run at other sizes: {why}'}
    meta['parity'] = stats
    meta['ops'] = dict(hist)
    meta['gpu_compatible'] = gpu_ok
    os.replace(tmp, out)
    sidecar.write(out, meta)
  finally:
    for p in (tmp, sidecar.sidecar_path(tmp)):
      if os.path.exists(p):
        os.remove(p)
  log(f'wrote {out} ({len(data) / 1e6:.2f} MB) and {sidecar.sidecar_path(out)}')
  if sidecar.resizable(meta):
    log(f'input resizable to [1, H, W, 3], H and W multiples of {sidecar.RESIZE_MULTIPLE} '
        '(eval / predict use the official test size of each image)')
  else:
    log(f'input fixed at {size}x{size} ({meta["input"]["resizable"]["why"]}): eval / predict '
        'fit each image into it')
  if random_init:
    log('note: random-init weights: this model is for benchmarking only')
  return meta


def _parity_problem(stats: dict, quantize: str) -> str:
  if quantize == 'none':
    if stats['max_abs'] > tflite.FLOAT_REFUSE:
      return (f'fp32 TFLite differs from JAX by {stats["max_abs"]:.3g} max abs '
              f'(bound {tflite.FLOAT_REFUSE:g})')
    return ''
  bound = tflite.RELATIVE_BOUNDS[quantize]
  if stats['max_rel'] > bound:
    return (f'{quantize} TFLite differs from JAX by {stats["max_rel"]:.3g} of the output range '
            f'(documented bound {bound:g})')
  return ''


def _log_parity(stats: dict, log) -> None:
  log(f'parity vs JAX on {stats["num_images"]} image(s):')
  for n in sidecar.OUTPUT_NAMES:
    s = stats[n]
    log(f'  {n:10s} max abs {s["max_abs"]:.3g}  mean abs {s["mean_abs"]:.3g}  '
        f'(max |JAX| {s["max_abs_ref"]:.3g})')
  log(f'  strongest heatmap peaks moved > 1 px: {100 * stats["peaks_moved_gt_1px"]:.1f}%')
  if 'keypoints_moved_gt_1px' in stats:
    log(f'  decoded keypoints moved > 1 px: {100 * stats["keypoints_moved_gt_1px"]:.1f}% of '
        f'{stats["keypoints_decoded"]}')


def run(args: argparse.Namespace) -> int:
  if args.arch and args.init is None:
    raise UserError('--arch needs --init random (to export trained weights use --checkpoint)')
  if args.size is not None:
    _check_size(args.size)  # the model's own multiple is checked once it is loaded
  if args.calibration and not os.path.isdir(args.calibration):
    raise FileNotFoundError(f'--calibration folder not found: {args.calibration}')
  module, variables, cfg, joint_set, source, random_init = load_source(args)
  export_model(module, variables, args.out, size=args.size or module.arch.img_size,
               quantize=args.quantize, calibration=args.calibration,
               num_calibration=args.num_calibration, force=args.force, model_cfg=cfg,
               joint_set=joint_set, source=source, random_init=random_init,
               threads=args.threads)
  return 0
