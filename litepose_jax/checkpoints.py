"""Self-describing model checkpoints (orbax) that every command can load.

Layout of a model checkpoint directory:
  DIR/model.json   {'arch': <official JSON schema>, 'num_joints': 14, 'joint_set': 'crowdpose',
                    'fusion': true, 'name': 'S', ...}
                   or, for a HigherHRNet, {'family': 'higherhrnet', 'arch': <official MODEL.EXTRA>,
                    'img_size': 512, 'num_joints': 14, 'name': 'shrink3', ...}
                   or, for an EfficientHRNet, {'family': 'efficienthrnet', 'arch': <the official
                    whole config: MODEL.{SCALE_FACTOR, WIDTH_MULT, DEPTH_MULT, EXTRA}, DATASET>,
                    'img_size': 416, 'num_joints': 14, 'name': 'efficienthrnet-h3', ...}
  DIR/variables/   orbax StandardCheckpointer tree {'params': ..., 'batch_stats': ...}

A super-net checkpoint (nas/supernet.py) has one more model.json field, 'supernet': the search
space's fields; its arch is the super-net's largest network, which is what `load_model` builds
(`nas.load_supernet` builds the super-net itself).

`find_checkpoint(path)` also accepts a training workdir (its newest checkpoint under
`checkpoints/<step>/`) so `--checkpoint` can point at either.
"""
from __future__ import annotations

from collections.abc import Mapping
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.models import efficient_hrnet_arch
from litepose_jax.models import hrnet_arch

MODEL_JSON = 'model.json'
VARIABLES_DIR = 'variables'


HRNET_FAMILY = 'higherhrnet'
EFFICIENT_HRNET_FAMILY = 'efficienthrnet'


def model_config(arch: models.ArchLike | models.HRNetSpec, num_joints: int = 14, *,
                 joint_set: str | None = None, fusion: bool = True, **extra: Any) -> dict:
  """The JSON-able description that `model_from_config` turns back into a module."""
  spec = models.resolve_model_arch(arch)
  if joint_set is None:
    joint_set = {14: 'crowdpose', 17: 'coco'}.get(num_joints, 'custom')
  if isinstance(spec, models.EfficientHRNetSpec):
    return {'name': spec.name, 'family': EFFICIENT_HRNET_FAMILY,
            'arch': spec.to_config(num_joints), 'img_size': spec.img_size,
            'num_joints': num_joints, 'joint_set': joint_set, 'fusion': fusion, **extra}
  if isinstance(spec, models.HRNetSpec):
    # MODEL.EXTRA has no input size: it travels beside it.
    return {'name': spec.name, 'family': HRNET_FAMILY, 'arch': spec.to_extra(),
            'img_size': spec.img_size, 'num_joints': num_joints, 'joint_set': joint_set,
            'fusion': fusion, **extra}
  return {'name': spec.name, 'arch': spec.to_json_dict(), 'num_joints': num_joints,
          'joint_set': joint_set, 'fusion': fusion, **extra}


def model_from_config(cfg: Mapping[str, Any], **overrides: Any):
  """Builds the LitePose, HigherHRNet or EfficientHRNet module a checkpoint's model.json
  describes."""
  for key in ('arch', 'num_joints'):
    if key not in cfg:
      raise UserError(f'{MODEL_JSON} lacks the field {key!r} (have {sorted(cfg)})')
  if cfg.get('family') == EFFICIENT_HRNET_FAMILY or (isinstance(cfg['arch'], Mapping)
                                                     and models.is_efficient_hrnet(cfg['arch'])):
    spec = efficient_hrnet_arch.efficient_hrnet_from_config(
        cfg['arch'], name=cfg.get('name', 'custom'), img_size=cfg.get('img_size'))
    return models.create_model(spec, cfg['num_joints'], **overrides)
  if cfg.get('family') == HRNET_FAMILY or (isinstance(cfg['arch'], Mapping)
                                           and models.is_hrnet(cfg['arch'])):
    spec = models.hrnet_from_extra(cfg['arch'],
                                   img_size=cfg.get('img_size', hrnet_arch.DEFAULT_IMG_SIZE),
                                   name=cfg.get('name', 'custom'),
                                   where=f'{MODEL_JSON}: arch')
    return models.create_model(spec, cfg['num_joints'], **overrides)
  spec = models.arch_from_dict(cfg['arch'], name=cfg.get('name', 'custom'))
  return models.create_model(spec, cfg['num_joints'], fusion=cfg.get('fusion', True), **overrides)


def save_model(directory: str | os.PathLike, variables: Mapping[str, Any], config: Mapping) -> str:
  """Writes variables + model.json to `directory` (created; must not hold a checkpoint yet)."""
  directory = os.path.abspath(os.fspath(directory))
  vdir = os.path.join(directory, VARIABLES_DIR)
  if os.path.exists(vdir):
    raise FileExistsError(f'{vdir} already exists; choose a new --out directory')
  os.makedirs(directory, exist_ok=True)
  tree = jax.tree.map(np.asarray, dict(variables))
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(vdir, tree)
    ckptr.wait_until_finished()
  # model.json last: its presence marks a complete checkpoint.
  tmp = os.path.join(directory, MODEL_JSON + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(dict(config), f, indent=2)
  os.replace(tmp, os.path.join(directory, MODEL_JSON))
  return directory


def find_checkpoint(path: str | os.PathLike) -> str:
  """Resolves a model checkpoint dir or a training workdir to a dir holding model.json."""
  path = os.path.abspath(os.fspath(path))
  if not os.path.exists(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  if os.path.isfile(os.path.join(path, MODEL_JSON)):
    return path
  ckpt_root = os.path.join(path, 'checkpoints')
  if os.path.isdir(ckpt_root):
    steps = sorted((int(d) for d in os.listdir(ckpt_root) if d.isdigit()), reverse=True)
    for step in steps:
      cand = os.path.join(ckpt_root, str(step))
      if os.path.isfile(os.path.join(cand, MODEL_JSON)):
        return cand
  raise FileNotFoundError(
      f'{path} is not a litepose checkpoint: expected {MODEL_JSON} and {VARIABLES_DIR}/ in it, or '
      'a training workdir with checkpoints/<step>/ (import official weights with '
      '`litepose import-torch`)')


def load_model(path: str | os.PathLike, **overrides: Any):
  """Loads (module, variables, config) from a checkpoint dir or workdir; numpy leaves."""
  ckpt = find_checkpoint(path)
  with open(os.path.join(ckpt, MODEL_JSON)) as f:
    try:
      cfg = json.load(f)
    except json.JSONDecodeError as e:
      raise UserError(f'{os.path.join(ckpt, MODEL_JSON)} is not valid JSON: {e}') from e
  module = model_from_config(cfg, **overrides)
  vdir = os.path.join(ckpt, VARIABLES_DIR)
  if not os.path.isdir(vdir):
    raise FileNotFoundError(f'{vdir} is missing: the checkpoint at {ckpt} is incomplete')
  size = module.arch.img_size
  abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                np.zeros((1, size, size, 3), np.float32)))
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), dict(abstract))
  with ocp.StandardCheckpointer() as ckptr:
    try:
      variables = ckptr.restore(vdir, abstract)
    except (ValueError, KeyError) as e:
      raise UserError(f'{vdir} does not match the architecture in {MODEL_JSON}: {e}') from e
  return module, jax.tree.map(np.asarray, variables), cfg
