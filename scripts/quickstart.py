"""Quickstart helpers for scripts/demo.sh: the easy synthetic data set and the one-line summary.

  python scripts/quickstart.py data --out workdirs/quickstart/data [--samples DIR]
  python scripts/quickstart.py summary --metrics M.json --workdir W --seconds S [--floor 0.05]

`data` writes the quickstart data set (square 128 px images, 1-3 large people facing the camera, light clutter:
the SynthConfig knobs below) unless its jsons already exist. `summary` prints the learning curve
from the training workdir's metrics.jsonl and ends with the line
`quickstart: AP X.XX on synthetic val (N min)`; it exits 1 when AP is below --floor (a model that
learned nothing) and warns when it is below --target.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import shutil
import sys

from litepose_jax.data import synthetic

# Easier than the SynthConfig defaults so that an XS model learns it in ~10 CPU-minutes:
# fewer, larger people, rarely cut by the frame, little clutter and blur, square images (one eval
# compile).
QUICKSTART_SYNTH = synthetic.SynthConfig(
    height_range=(0.45, 0.95), height_beta=(2.0, 1.5), empty_prob=0.02, crowd_prob=0.0,
    people_extra=0.4, partial_prob=0.1, partial_margin=0.2, clutter=(2, 8),
    noise_sigma=(0.0, 3.0), blur_prob=0.1, aspects=((1.0, 1.0),), facing=(1.0, 0.0, 0.0))
NUM_IMAGES = 6000  # ~15 s to generate: 1600 steps x 32 samples would be 28 passes over 1800
VAL_FRACTION = 200 / 6000
SIZE = 128
MAX_PEOPLE = 3


def _recipe() -> dict:
  """Everything the generated set depends on; a cached set made with another recipe is remade."""
  return {'synth': repr(QUICKSTART_SYNTH), 'num_images': NUM_IMAGES, 'size': SIZE,
          'val_fraction': VAL_FRACTION, 'max_people': MAX_PEOPLE, 'seed': 0}


def make_data(out: str, workers: int, samples: str | None, num_samples: int = 4) -> None:
  """Generates the quickstart data set into `out` unless it exists with the same recipe.

  samples: folder that gets copies of the first `num_samples` val images (for litepose predict).
  """
  root = pathlib.Path(out)
  stamp = root / 'quickstart_recipe.json'
  have = all((root / 'json' / f'crowdpose_{s}.json').is_file() for s in ('train', 'val'))
  if have and stamp.is_file() and json.loads(stamp.read_text()) == _recipe():
    print(f'quickstart data: cached in {root}')
  else:
    if root.exists():
      print(f'quickstart data: {root} was made with another recipe; generating it again')
      shutil.rmtree(root)
    _generate(root, workers)
    stamp.write_text(json.dumps(_recipe(), indent=1))
  if samples:
    dst = pathlib.Path(samples)
    if dst.exists():
      shutil.rmtree(dst)
    dst.mkdir(parents=True)
    val = json.loads((root / 'json' / 'crowdpose_val.json').read_text())
    for im in val['images'][:num_samples]:
      shutil.copyfile(root / 'images' / im['file_name'], dst / im['file_name'])


def _generate(root: pathlib.Path, workers: int) -> None:
  s = synthetic.generate(root, NUM_IMAGES, seed=0, size=SIZE, joints='crowdpose',
                         val_fraction=VAL_FRACTION, max_people=MAX_PEOPLE,
                         config=QUICKSTART_SYNTH, workers=workers)
  n = s['num_images']
  print(f"quickstart data: {n['train']} train + {n['val']} val images in {root} "
        f"({s['seconds']:.0f} s)")


def learning_curve(workdir: str) -> list[dict]:
  """[{step, loss, AP}] from WORKDIR/metrics.jsonl (AP only at evaluated steps)."""
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  if not path.is_file():
    raise FileNotFoundError(f'{path} is missing: did training run?')
  rows: dict[int, dict] = {}
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    rec = json.loads(line)
    step = int(rec['step'])
    row = rows.setdefault(step, {'step': step})
    if 'train/total' in rec:
      row['loss'] = float(rec['train/total'])
    if 'eval/AP' in rec:
      row['AP'] = float(rec['eval/AP'])
  return [rows[k] for k in sorted(rows)]


def summary(args: argparse.Namespace) -> int:
  """Prints the curve and the final line; 1 when AP < floor."""
  metrics = json.loads(pathlib.Path(args.metrics).read_text())
  ap = metrics.get('metrics', metrics).get('AP')
  if ap is None or not math.isfinite(float(ap)):
    print(f'quickstart: FAILED, no AP in {args.metrics}', file=sys.stderr)
    return 1
  ap = float(ap)
  curve = learning_curve(args.workdir)
  print('learning curve (step, train loss, val AP on the in-training eval subset):')
  for r in curve:
    if 'AP' in r or r['step'] % args.every == 0 or r is curve[-1]:
      loss = f"{r['loss']:.5f}" if 'loss' in r else '-'
      ap_s = f"{r['AP']:.3f}" if 'AP' in r else '-'
      print(f"  {r['step']:6d}  {loss:>9}  {ap_s:>6}")
  minutes = args.seconds / 60
  if ap < args.floor:
    print(f'quickstart: FAILED, AP {ap:.2f} < {args.floor} on synthetic val: the model learned '
          f'nothing (see {args.workdir})', file=sys.stderr)
    print(f'quickstart: AP {ap:.2f} on synthetic val ({minutes:.0f} min) FAILED')
    return 1
  if ap < args.target:
    print(f'quickstart: warning: AP {ap:.2f} is below the target {args.target}', file=sys.stderr)
  print(f'quickstart: AP {ap:.2f} on synthetic val ({minutes:.0f} min)')
  return 0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='cmd', required=True)
  d = sub.add_parser('data', help='generate the quickstart data set (cached)')
  d.add_argument('--out', required=True)
  d.add_argument('--workers', type=int, default=2)
  d.add_argument('--samples', default=None, help='copy the first 4 val images here')
  s = sub.add_parser('summary', help='learning curve and the final summary line')
  s.add_argument('--metrics', required=True, help='<prefix>_metrics.json of litepose eval')
  s.add_argument('--workdir', required=True, help='training workdir (metrics.jsonl)')
  s.add_argument('--seconds', type=float, required=True, help='demo wall time')
  s.add_argument('--floor', type=float, default=0.05, help='fail below this AP')
  s.add_argument('--target', type=float, default=0.5, help='warn below this AP')
  s.add_argument('--every', type=int, default=100, help='print the loss every N steps')
  args = p.parse_args(argv)
  if args.cmd == 'data':
    make_data(args.out, args.workers, args.samples)
    return 0
  return summary(args)


if __name__ == '__main__':
  from litepose_jax import host_memory  # re-executes before the heavy work: see its docstring
  host_memory.reexec_with_hugepage_malloc()
  sys.exit(main())
