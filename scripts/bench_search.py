#!/usr/bin/env python
"""One search candidate's cost: BN recalibration + evaluation of a sub-net, the official way and
ours, on the same super-net weights, splits and sub-nets, timed in the same run.

  python scripts/bench_search.py --checkpoint SUPERNET --config CFG [--size 96] [--candidates 4]

Official flow per candidate (SUPERNET_SPEC.md §5.3, calibrate_test.py), re-enacted in PyTorch on
the reference super-net (litepose_jax/reference/torch_supernet.py) holding the same weights:
`copy.deepcopy` of the super-net, a new calibration data loader (the training pipeline with its
augmentation, built and read afresh), a train-mode pass over it (running statistics kept and
moved by the momentum-0.1 EMA, forwards without no_grad as official), then the official test of
the search split: batch 1, flip test, the official resize (short side to the size), maps resized
to the input (PROJECT2IMAGE), the literal official parser (litepose_jax/reference
/official_parser.py, its NMS on OpenCV), the official evaluator.
Ours: search.fitness.Fitness (cached calibration batches and search inputs, programs compiled
once per resolution whatever the sub-net, cumulative BN averages, batched flip test, the fast
parser), timed both ways it runs a candidate: sliced (at the sub-net's own widths) and masked
(the full-width super-net).
The first candidate of ours is timed apart (compilation); the ratio is of the medians of the
others. Goal (issue 19): ours >= 10x cheaper per candidate, zero compilations after the first.
--generation also times the candidates as a search scores them, one generation spread over all
jax devices (search.parallel; wall time / candidates, after every device compiled), and checks
that the scores equal the one-by-one ones.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
import torch

from litepose_jax import config_files
from litepose_jax import joints as joints_lib
from litepose_jax import nas
from litepose_jax import torch_import
from litepose_jax.data import datasets
from litepose_jax.data import image_files
from litepose_jax.evaluation import evaluate_keypoints
from litepose_jax.inference import fusion
from litepose_jax.inference import predictor as predictor_lib
from litepose_jax.inference import transforms
from litepose_jax.nas import recalibrate as recalibrate_lib
from litepose_jax.reference import torch_supernet
from litepose_jax.search import fitness as fitness_lib
from litepose_jax.search import parallel
from litepose_jax.search import splits as splits_lib

HERE = pathlib.Path(__file__).resolve().parent


def _reference_parser():
  """bench_decode.py's literal official parser (NMS on OpenCV): one definition of it."""
  spec = importlib.util.spec_from_file_location('bench_decode', HERE / 'bench_decode.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.reference_parser()


def torch_supernet_from(net: nas.SuperLitePose, variables) -> object:
  """The reference PyTorch super-net holding `variables` (inverse of the official importer)."""
  space = net.space
  model = torch_supernet.TorchSuperLitePose(
      net.num_joints, depths=tuple(space.supernet_depths), stem=space.stem_base,
      deconv=tuple(space.deconv_bases), stages=tuple(space.stage_bases))
  state = {}
  for path, (key, layout) in torch_import.key_map(net).items():
    value = np.asarray(_leaf(variables, path))
    if layout is torch_import._deconv:  # pylint: disable=protected-access
      value = value.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
    elif value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)
    state[key] = torch.from_numpy(np.ascontiguousarray(value))
  missing, unexpected = model.load_state_dict(state, strict=False)
  # Never used by 7x7 sub-nets (torch_import.SUPERNET_SKIPPED): left at their init.
  missing = [k for k in missing
             if not k.endswith('num_batches_tracked') and 'Linear' not in k]
  if missing or unexpected:
    raise RuntimeError(f'weight transfer to PyTorch: missing {missing[:5]}, unexpected '
                       f'{unexpected[:5]}')
  return model


def _leaf(tree, path):
  for name in path:
    tree = tree[name]
  return tree


class _TorchBackend:
  """The Predictor backend protocol over the PyTorch super-net running one sub-net, batch 1."""
  max_batch = 1
  input_shape = None

  def __init__(self, model, arch, joint_set, size):
    self.model, self.arch, self.joint_set, self.size = model, arch, joint_set, size

  def __call__(self, images):
    with torch.no_grad():
      x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
      out4, out2 = self.model(x, self.arch)
    return out4.numpy().transpose(0, 2, 3, 1), out2.numpy().transpose(0, 2, 3, 1)


class _OfficialPredictor(predictor_lib.Predictor):
  """Predictor whose grouping is the literal official parser on maps resized to the input."""

  def __init__(self, *args, parse, **kwargs):
    super().__init__(*args, **kwargs)
    self._parse = parse

  def _decode(self, items, image_shape):
    heat, tags, center, scale, _ = items[0]
    (w, h), _, _ = transforms.multi_scale_size(image_shape[0], image_shape[1], self.size, 1.0,
                                               1.0)
    heat = fusion.resize_fast(heat, (h, w))
    tags = fusion.resize_fast(tags.reshape(*tags.shape[:2], -1), (h, w)).reshape(
        h, w, *tags.shape[2:])
    poses, scores = self._parse(heat, tags)
    poses = transforms.to_image_coords(poses, center, scale, (w, h))
    return poses.astype(np.float32), scores


def official_candidate(model, arch, calibration, search, parse, joint_set, size) -> float:
  """AP of `arch` by the official per-candidate flow (module docstring); calibration() builds a
  new loader of normalised batches [B, S, S, 3]."""
  candidate = copy.deepcopy(model)
  candidate.train()
  for batch in calibration():
    candidate(torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))), arch)
  candidate.eval()
  predictor = _OfficialPredictor(_TorchBackend(candidate, arch, joint_set, size), size=size,
                                 flip=True, parse=parse)
  results = []
  for image_id, rgb in search['images']:
    results += predictor(rgb).to_coco(image_id)
  if not results:
    return 0.0
  return evaluate_keypoints(search['gt'], results, search['dataset'], verbose=False)['AP']


def _timed(fn):
  t = time.perf_counter()
  value = fn()
  return time.perf_counter() - t, value


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--checkpoint', required=True, help='super-net checkpoint or workdir')
  parser.add_argument('--config', required=True,
                      help='training config whose config.data names the training split')
  parser.add_argument('--size', type=int, default=None, help='resolution (default: largest)')
  parser.add_argument('--candidates', type=int, default=4, help='random sub-nets timed')
  parser.add_argument('--calib-images', type=int, default=64)
  parser.add_argument('--search-images', type=int, default=32)
  parser.add_argument('--calib-batch', type=int, default=16)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', default=None, help='also write the figures here')
  parser.add_argument('--widths', default='sliced,masked', choices=('sliced,masked', 'sliced',
                                                                    'masked'),
                      help='how ours runs candidates (search.fitness sliced / masked)')
  parser.add_argument('--generation', action='store_true',
                      help='also time the candidates scored as one generation over all jax '
                           'devices (search.parallel); on a CPU give it devices with XLA_FLAGS='
                           '--xla_force_host_platform_device_count=N')
  config_files.accept_config_overrides(parser)
  args = parser.parse_args(argv)

  net, variables, model_cfg = nas.load_supernet(args.checkpoint)
  space = net.space
  size = args.size or max(space.resolutions)
  data_cfg = config_files.load_config(args.config, args.config_overrides or ()).data
  workdir = tempfile.mkdtemp(prefix='bench_search_')
  splits = splits_lib.carve_splits(data_cfg, workdir, num_calibration=args.calib_images,
                                   num_search=args.search_images, seed=args.seed)
  joint_set = joints_lib.get_joint_set(model_cfg.get('joint_set') or net.num_joints)
  archs = [dict(nas.sample(space, (args.seed, 7, i)), img_size=size)
           for i in range(args.candidates + 1)]

  runs = {}
  for widths in args.widths.split(','):
    fitness = fitness_lib.Fitness(net, variables, data_cfg, splits,
                                  calib_batch=args.calib_batch, seed=args.seed,
                                  sliced=widths == 'sliced')
    ours = [_timed(lambda f=fitness: f(archs[0]))]
    compiles_after_first = fitness.compiles
    ours += [_timed(lambda a=a, f=fitness: f(a)) for a in archs[1:]]
    later_compiles = fitness.compiles - compiles_after_first
    generation = None
    if args.generation:
      parallel.score_many(fitness, archs[:jax.device_count()])  # every device compiles first
      generation = _timed(lambda f=fitness: parallel.score_many(f, archs[1:]))
    runs[widths] = (ours, compiles_after_first, later_compiles, generation)

  model = torch_supernet_from(net, variables)
  parse = _reference_parser()
  by_id = {r.image_id: r for r in datasets.open_from_config(data_cfg).records}
  search = {'gt': splits.search_gt, 'dataset': splits.dataset,
            'images': [(i, image_files.read_rgb(by_id[i].file_path, f'image {i}',
                                                ignore_orientation=True))
                       for i in splits.search_ids]}

  def calibration():
    # Official: unseeded augmentation, a new loader per candidate.
    return recalibrate_lib.calibration_batches(
        data_cfg, size, len(splits.calibration_ids), args.calib_batch,
        seed=int(time.time_ns() % 2**31), image_ids=splits.calibration_ids)
  official = [_timed(lambda a=a: official_candidate(model, a, calibration, search, parse,
                                                    joint_set, size)) for a in archs[1:]]
  t_off = statistics.median(t for t, _ in official)
  print(f'{args.candidates} sub-nets at {size} px, {len(splits.calibration_ids)} calibration / '
        f'{len(splits.search_ids)} search images, batch {args.calib_batch}')
  print(f'  official flow (PyTorch)   {t_off:8.2f} s / candidate   1.00x')
  figures = {'size': size, 'official_s': t_off, 'ap_official': [o[1] for o in official]}
  for widths, (ours, first_compiles, later_compiles, generation) in runs.items():
    t_ours = statistics.median(t for t, _ in ours[1:])
    print(f'  ours, {widths:<6} (Fitness)  {t_ours:8.2f} s / candidate   {t_off / t_ours:5.1f}x '
          f'cheaper (first candidate, compiling: {ours[0][0]:.1f} s)')
    print(f'    compilations: {first_compiles} for the first candidate, {later_compiles} for '
          f'the other {args.candidates}')
    print('    AP official / ours: ' + ', '.join(f'{o[1]:.3f}/{u[1]:.3f}'
                                                  for o, u in zip(official, ours[1:])))
    figures[widths] = {'ours_s': t_ours, 'ratio': t_off / t_ours, 'first_s': ours[0][0],
                       'compiles_first': first_compiles, 'compiles_later': later_compiles,
                       'ap_ours': [u[1] for u in ours[1:]]}
    if generation is not None:
      t_gen = generation[0] / args.candidates
      same = generation[1] == [u[1] for u in ours[1:]]
      print(f'    as one generation over {jax.device_count()} devices: {t_gen:.2f} s / candidate   '
            f'{t_off / t_gen:5.1f}x cheaper (scores {"equal" if same else "DIFFER"})')
      figures[widths].update(generation_s=t_gen, generation_ratio=t_off / t_gen,
                             devices=jax.device_count(), generation_equal=same)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(figures, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
