"""`litepose extract`: cut a standalone sub-net out of a super-net checkpoint (official
weight_transfer.py, SUPERNET_SPEC.md section 4).

  litepose extract --checkpoint WORKDIR_OR_CKPT [--step N | --best] --arch search-S.json
                   [--out extracted/search-S] [--joints 14] [--config TRAIN_CONFIG]

With --config (a super-net checkpoint and a training config), the sub-net's BatchNorm statistics
are first recalibrated on the config's training split (nas/recalibrate.py): the super-net's own
statistics are a mix over every sub-net it trained, right for none of them.

The result is an ordinary model checkpoint (model.json + variables) that `litepose eval`,
`predict`, `export` and `train` (as a starting point for fine-tuning) load like any other. Unlike
the official transfer it holds the whole network, fusion head included. Any LitePose checkpoint
can be cut down, not only a super-net's; without a search space in its model.json only the shapes
are checked.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from litepose_jax import checkpoints
from litepose_jax import config_files
from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.models import counting
from litepose_jax.nas import extract
from litepose_jax.nas import recalibrate
from litepose_jax.nas import space as space_lib
from litepose_jax.nas import supernet

# Where an extracted net goes without --out, relative to the current directory.
DEFAULT_OUT_ROOT = 'extracted'
# model.json fields of a custom joint set (export reads them); the sub-net predicts the super-net's
# joints, so they travel with it.
_JOINT_FIELDS = ('joint_names', 'flip_index', 'skeleton', 'sigmas')


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--checkpoint', required=True,
                      help='super-net checkpoint dir or training workdir (its newest step)')
  which = parser.add_mutually_exclusive_group()
  which.add_argument('--step', type=int, default=None,
                     help='with a training workdir: WORKDIR/checkpoints/STEP')
  which.add_argument('--best', action='store_true',
                     help='with a training workdir: WORKDIR/best (highest evaluation AP)')
  parser.add_argument('--arch', required=True,
                      help='the sub-net: an architecture JSON in the official schema (e.g. '
                           'search-S.json) or a preset (XS, S, M, L)')
  parser.add_argument('--out', default=None,
                      help=f'output checkpoint directory, must be new; None: '
                           f'{DEFAULT_OUT_ROOT}/<arch name> under the current directory')
  parser.add_argument('--joints', type=int, default=None,
                      help='expected number of joints: refuse a checkpoint with another count; '
                           'None: whatever the checkpoint has')


  parser.add_argument('--config', default=None,
                      help='training config (path.py[:arg]) whose training split recalibrates the '
                           'sub-net\'s BatchNorm statistics before extraction (recommended); '
                           'fields can be overridden with --config.KEY=VALUE')
  recalibrate.add_calibration_arguments(parser, '--config')
  config_files.accept_config_overrides(parser)


def resolve_source(checkpoint: str, step: int | None = None, best: bool = False) -> str:
  """The model checkpoint dir that --checkpoint / --step / --best name (absolute path)."""
  root = os.path.abspath(checkpoint)
  if not os.path.exists(root):
    raise FileNotFoundError(f'--checkpoint not found: {root}')
  if best:
    path = os.path.join(root, 'best')
    if not os.path.isfile(os.path.join(path, checkpoints.MODEL_JSON)):
      raise FileNotFoundError(f'--best: {path} holds no checkpoint (is {root} a training workdir '
                              'that has evaluated?)')
    return path
  if step is not None:
    steps_dir = os.path.join(root, 'checkpoints')
    path = os.path.join(steps_dir, str(step))
    if not os.path.isfile(os.path.join(path, checkpoints.MODEL_JSON)):
      have = sorted(int(d) for d in os.listdir(steps_dir) if d.isdigit()) if os.path.isdir(
          steps_dir) else []
      raise FileNotFoundError(f'--step {step}: {path} holds no checkpoint (steps in {root}: '
                              f'{have or "none, not a training workdir"})')
    return path
  return checkpoints.find_checkpoint(root)


def resolve_subnet(arch: str) -> tuple[models.ArchSpec, str]:
  """(ArchSpec named after the file stem or preset, what `source.arch_file` records)."""
  spec = models.resolve_arch(arch)
  if arch.upper() in models.PRESET_NAMES:
    return spec, arch.upper()
  path = os.path.abspath(arch)
  name = os.path.splitext(os.path.basename(path))[0]
  return dataclasses.replace(spec, name=name), path


def _check_out(out: str) -> None:
  """FileExistsError before any work when `out` already holds (part of) a checkpoint."""
  for entry in (checkpoints.VARIABLES_DIR, checkpoints.MODEL_JSON):
    if os.path.exists(os.path.join(out, entry)):
      raise FileExistsError(f'{os.path.join(out, entry)} already exists; choose a new --out '
                            'directory')


def extract_checkpoint(checkpoint: str, arch: str, out: str | None = None, *,
                       step: int | None = None, best: bool = False,
                       num_joints: int | None = None, calibration: dict | None = None,
                       log=print) -> tuple[str, dict]:
  """Writes the sub-net `arch` of a super-net checkpoint as a model checkpoint; returns
  (out dir, its model.json). See the module docstring for the arguments; calibration: None, or
  recalibrate.recalibrated_subnet's keyword arguments (data_cfg, num_images, batch_size, seed)."""
  source = resolve_source(checkpoint, step, best)
  spec, arch_file = resolve_subnet(arch)
  out = os.path.abspath(out or os.path.join(DEFAULT_OUT_ROOT, spec.name))
  _check_out(out)
  _, variables, cfg = checkpoints.load_model(source)
  joints = cfg['num_joints']
  if num_joints is not None and num_joints != joints:
    raise UserError(f'--joints {num_joints}: the checkpoint {source} predicts {joints} joints '
                    '(a sub-net keeps its super-net\'s output layers)')
  if supernet.SUPERNET_FIELD in cfg:
    space = space_lib.space_from_json(cfg[supernet.SUPERNET_FIELD],
                                      f'{source}/{checkpoints.MODEL_JSON}: supernet')
    space_lib.validate(spec, space, elastic_depth=True, name=spec.name)
  else:
    log(f'note: {source} is not a super-net checkpoint (no {supernet.SUPERNET_FIELD!r} field in '
        f'{checkpoints.MODEL_JSON}); cutting its {cfg.get("name", "model")} down to {spec.name}')
  fusion = cfg.get('fusion', True)
  extra: dict[str, Any] = {k: cfg[k] for k in _JOINT_FIELDS if k in cfg}
  if calibration is not None:
    net = supernet.supernet_from_config(cfg)
    sub_variables, extra['calibration'] = recalibrate.recalibrated_subnet(
        net, variables, spec, **calibration)
  else:
    sub_variables = extract.extract_subnet(variables, spec, joints, fusion=fusion)
  sub_cfg = checkpoints.model_config(spec, joints, fusion=fusion, joint_set=cfg.get('joint_set'),
                                     source={'supernet': source, 'arch_file': arch_file}, **extra)
  checkpoints.save_model(out, sub_variables, sub_cfg)
  return out, sub_cfg


def run(args: argparse.Namespace) -> int:
  calibration = None
  if args.config:
    calibration = {'data_cfg': config_files.load_config(
                       args.config, getattr(args, 'config_overrides', None) or ()).data,
                   'num_images': args.calib_images, 'batch_size': args.calib_batch,
                   'seed': args.calib_seed}
  out, cfg = extract_checkpoint(args.checkpoint, args.arch, args.out, step=args.step,
                                best=args.best, num_joints=args.joints, calibration=calibration)
  module = models.create_model(cfg['arch'], cfg['num_joints'], fusion=cfg['fusion'],
                               depthwise_impl='lax')
  size = module.arch.img_size
  c = counting.count(module, size)
  calibrated = (f', BatchNorm recalibrated on {cfg["calibration"]["images"]} images'
                if 'calibration' in cfg else ', BatchNorm statistics as in the super-net')
  print(f'wrote {out} ({cfg["name"]} from {cfg["source"]["supernet"]}: {c.params:,} parameters, '
        f'{c.macs("true") / 1e9:.3f} G MACs (true) at {size}x{size}{calibrated})')
  return 0
