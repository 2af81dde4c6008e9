"""An accuracy predictor for the search: a small MLP from a sub-net's genes to its measured AP.

Once-for-all (Cai et al., 2020) pre-screens candidates with such a predictor: each gene one-hot
encoded (nas.encode: the resolution index, then each width gene's index), hidden ReLU layers, a
scalar output. Once-for-all has three hidden layers of 400 units for its 16,000 measured pairs;
a search here measures tens to hundreds, so two layers of 64, trained by full-batch AdamW on the
mean squared error of the standardised AP. Nothing here needs the super-net: only the space.

What matters to a search is the ranking, so the predictor is judged by Spearman's rank
correlation (implemented here with numpy ranks, ties averaged): `cross_validated_rank_correlation`
trains on k - 1 folds, predicts the held-out one, and correlates the pooled held-out predictions
with the measured APs. The folds are trained together in one compiled program (vmap over folds;
the held-out rows get zero weight), and the rows are padded to a power of two so that a search,
whose pairs grow by a generation at a time, compiles a handful of programs, not one per fit.

Deterministic per seed: the initial weights and the folds come from the seed only, and the fit
runs on the host's CPU device (when there is one), so every process of a multi-host search
predicts the very same scores.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import contextlib
import dataclasses
import functools
import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from litepose_jax.errors import UserError
from litepose_jax.nas import space as space_lib

# Fewer measured pairs than this carry too little signal to rank a space of thousands of nets.
MIN_PAIRS = 8
DEFAULT_STEPS = 400
DEFAULT_HIDDEN = 64
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_WEIGHT_DECAY = 1e-3


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
  """1-based ranks of `values` [n] (float64 [n]); tied values share the mean of their ranks."""
  x = np.asarray(values, np.float64).reshape(-1)
  order = np.argsort(x, kind='stable')
  sorted_x = x[order]
  out = np.empty(len(x), np.float64)
  start = 0
  while start < len(x):
    stop = start + 1
    while stop < len(x) and sorted_x[stop] == sorted_x[start]:
      stop += 1
    # Positions start..stop-1 hold one value: each gets the mean of ranks start+1..stop.
    out[order[start:stop]] = (start + 1 + stop) / 2
    start = stop
  return out


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
  """Spearman's rank correlation of two [n] sequences (ties averaged): the Pearson correlation
  of their ranks, in [-1, 1]; nan when either is constant (the correlation is undefined)."""
  ra, rb = ranks(a), ranks(b)
  if len(ra) != len(rb):
    raise ValueError(f'spearman: sequences of {len(ra)} and {len(rb)} values')
  if len(ra) < 2:
    return math.nan
  da, db = ra - ra.mean(), rb - rb.mean()
  den = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
  return math.nan if den == 0 else float(np.dot(da, db) / den)


def one_hot(archs: Sequence[dict], space: space_lib.SearchSpace) -> np.ndarray:
  """Features of `archs`: float32 [n, sum(space.num_choices())], each gene one-hot (UserError
  naming the field of an arch outside the space)."""
  sizes = space.num_choices()
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
  x = np.zeros((len(archs), int(sum(sizes))), np.float32)
  for i, arch in enumerate(archs):
    x[i, offsets + np.asarray(space_lib.encode(arch, space), np.int64)] = 1.0
  return x


def _padded(n: int) -> int:
  """Rows of the compiled program for n pairs: the next power of two, at least 32."""
  return max(32, 1 << max(0, n - 1).bit_length())


def _cpu_device() -> Any:
  """The host's first CPU device, or None when the CPU backend is disabled (JAX_PLATFORMS)."""
  try:
    return jax.local_devices(backend='cpu')[0]
  except RuntimeError:
    # No CPU backend in this process: the default device is then the only choice.
    return None


def _init(key: jax.Array, features: int, hidden: int) -> dict:
  """He-initialised weights of features -> hidden -> hidden -> 1 (zero biases)."""
  k1, k2, k3 = jax.random.split(key, 3)
  dense = lambda k, i, o: jax.random.normal(k, (i, o), jnp.float32) * jnp.sqrt(2.0 / i)
  return {'w1': dense(k1, features, hidden), 'b1': jnp.zeros(hidden),
          'w2': dense(k2, hidden, hidden), 'b2': jnp.zeros(hidden),
          'w3': dense(k3, hidden, 1) / jnp.sqrt(2.0), 'b3': jnp.zeros(1)}


def _apply(params: dict, x: jax.Array) -> jax.Array:
  """Standardised AP [n] of features x [n, F]."""
  h = jax.nn.relu(x @ params['w1'] + params['b1'])
  h = jax.nn.relu(h @ params['w2'] + params['b2'])
  return (h @ params['w3'] + params['b3'])[:, 0]


@functools.partial(jax.jit, static_argnames=('steps', 'hidden', 'learning_rate', 'weight_decay'))
def _train(x: jax.Array, y: jax.Array, w: jax.Array, keys: jax.Array, *, steps: int,
           hidden: int, learning_rate: float, weight_decay: float) -> tuple[dict, jax.Array]:
  """Fits one MLP per row of y / w [m, n] (standardised targets, row weights) on x [n, F];
  returns the stacked parameters and their predictions [m, n] on every row of x."""
  opt = optax.adamw(learning_rate, weight_decay=weight_decay)

  def fit(y_row: jax.Array, w_row: jax.Array, key: jax.Array) -> tuple[dict, jax.Array]:
    params = _init(key, x.shape[1], hidden)

    def loss(p: dict) -> jax.Array:
      return jnp.sum(w_row * (_apply(p, x) - y_row) ** 2) / jnp.maximum(jnp.sum(w_row), 1.0)

    def step(_, carry):
      p, state = carry
      updates, state = opt.update(jax.grad(loss)(p), state, p)
      return optax.apply_updates(p, updates), state

    params, _ = jax.lax.fori_loop(0, steps, step, (params, opt.init(params)))
    return params, _apply(params, x)

  return jax.vmap(fit)(y, w, keys)


def _check_pairs(archs: Sequence[dict], aps: Sequence[float], need: int, what: str
                 ) -> np.ndarray:
  """The APs as float64 [n]; UserError unless they pair up with archs, are finite and number
  at least `need`."""
  y = np.asarray(aps, np.float64).reshape(-1)
  if len(archs) != len(y):
    raise UserError(f'{what}: {len(archs)} architectures but {len(y)} APs')
  if not np.all(np.isfinite(y)):
    raise UserError(f'{what}: the APs must be finite numbers')
  if len(y) < need:
    raise UserError(f'{what}: {len(y)} measured (arch, AP) pairs, at least {need} are needed')
  return y


def _fit_rows(x: np.ndarray, y: np.ndarray, weights: np.ndarray, *, seed: int, steps: int,
              hidden: int, learning_rate: float, weight_decay: float
              ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
  """Fits one MLP per row of weights [m, n] (1: train on that pair, 0: not) to the APs y [n];
  returns (stacked params, per-fit AP mean [m], std [m], AP predictions [m, n])."""
  m, n = weights.shape
  mean = (weights @ y) / weights.sum(1)
  std = np.sqrt((weights * (y[None] - mean[:, None]) ** 2).sum(1) / weights.sum(1))
  std = np.where(std > 0, std, 1.0)  # constant APs: nothing to scale
  rows = _padded(n)
  xp = np.zeros((rows, x.shape[1]), np.float32)
  xp[:n] = x
  yp = np.zeros((m, rows), np.float32)
  yp[:, :n] = (y[None] - mean[:, None]) / std[:, None]
  wp = np.zeros((m, rows), np.float32)
  wp[:, :n] = weights
  device = _cpu_device()
  with jax.default_device(device) if device is not None else contextlib.nullcontext():
    keys = jax.random.split(jax.random.PRNGKey(seed), m)
    params, pred = _train(jnp.asarray(xp), jnp.asarray(yp), jnp.asarray(wp), keys, steps=steps,
                          hidden=hidden, learning_rate=float(learning_rate),
                          weight_decay=float(weight_decay))
  params = jax.tree_util.tree_map(np.asarray, params)
  pred = np.asarray(pred, np.float64)[:, :n] * std[:, None] + mean[:, None]
  return params, mean, std, pred


@dataclasses.dataclass(frozen=True)
class AccuracyModel:
  """A fitted predictor: `predict(archs)` -> AP, `spearman(archs, aps)` -> its rank correlation."""
  space: space_lib.SearchSpace
  params: dict
  mean: float
  std: float
  pairs: int

  def predict(self, archs: Sequence[dict]) -> np.ndarray:
    """Predicted AP of each of `archs` (float64 [n], on the measured APs' scale)."""
    if not len(archs):
      return np.zeros(0, np.float64)
    x = one_hot(archs, self.space)
    # Numpy, not jit: one-off predictions on a few dozen nets need no compilation.
    h = np.maximum(x @ self.params['w1'] + self.params['b1'], 0)
    h = np.maximum(h @ self.params['w2'] + self.params['b2'], 0)
    z = (h @ self.params['w3'] + self.params['b3'])[:, 0]
    return z.astype(np.float64) * self.std + self.mean

  def spearman(self, archs: Sequence[dict], aps: Sequence[float]) -> float:
    """Spearman's rank correlation of the predictions for `archs` with the APs `aps` [n]."""
    return spearman(self.predict(archs), _check_pairs(archs, aps, 2, 'AccuracyModel.spearman'))


def fit_accuracy_model(archs: Sequence[dict], aps: Sequence[float],
                       space: space_lib.SearchSpace, *, seed: int = 0,
                       steps: int = DEFAULT_STEPS, hidden: int = DEFAULT_HIDDEN,
                       learning_rate: float = DEFAULT_LEARNING_RATE,
                       weight_decay: float = DEFAULT_WEIGHT_DECAY) -> AccuracyModel:
  """The MLP fitted to measured (arch, AP) pairs (APs as fractions, e.g. 0.42); UserError with
  fewer than MIN_PAIRS pairs. Deterministic per seed."""
  y = _check_pairs(archs, aps, MIN_PAIRS, 'fit_accuracy_model')
  _check_hyper(steps, hidden)
  params, mean, std, _ = _fit_rows(one_hot(archs, space), y, np.ones((1, len(y))), seed=seed,
                                   steps=steps, hidden=hidden, learning_rate=learning_rate,
                                   weight_decay=weight_decay)
  return AccuracyModel(space=space, params={k: v[0] for k, v in params.items()},
                       mean=float(mean[0]), std=float(std[0]), pairs=len(y))


def _check_hyper(steps: int, hidden: int) -> None:
  if steps < 1 or hidden < 1:
    raise UserError(f'accuracy model: steps and hidden must be >= 1, got {steps} and {hidden}')


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
  """The fold (0..folds-1) of each of n pairs [n]: a seeded shuffle dealt round-robin, so fold
  sizes differ by at most one."""
  fold = np.empty(n, np.int64)
  fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
  return fold


def cv_min_pairs(folds: int) -> int:
  """The fewest pairs that k-fold cross-validation accepts: every fold's training part (all but
  the largest fold, ceil(n / folds) pairs) keeps MIN_PAIRS, and every fold holds two."""
  return max(2 * folds, MIN_PAIRS + math.ceil(MIN_PAIRS / (folds - 1)))


def cross_validated_rank_correlation(archs: Sequence[dict], aps: Sequence[float],
                                     space: space_lib.SearchSpace, folds: int = 5, seed: int = 0,
                                     *, steps: int = DEFAULT_STEPS, hidden: int = DEFAULT_HIDDEN,
                                     learning_rate: float = DEFAULT_LEARNING_RATE,
                                     weight_decay: float = DEFAULT_WEIGHT_DECAY) -> float:
  """Spearman's rank correlation of held-out predictions with the measured APs [n]: each pair is
  predicted by the MLP fitted on the other folds (k-fold, seeded). UserError when a fold's
  training part would have fewer than MIN_PAIRS pairs."""
  if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
    raise UserError(f'cross_validated_rank_correlation: folds must be an integer >= 2, got '
                    f'{folds!r}')
  y = _check_pairs(archs, aps, cv_min_pairs(folds),
                   f'cross_validated_rank_correlation ({folds} folds)')
  n = len(y)
  _check_hyper(steps, hidden)
  fold = fold_of(n, folds, seed)
  weights = (fold[None] != np.arange(folds)[:, None]).astype(np.float64)
  _, _, _, pred = _fit_rows(one_hot(archs, space), y, weights, seed=seed, steps=steps,
                            hidden=hidden, learning_rate=learning_rate,
                            weight_decay=weight_decay)
  held_out = pred[fold, np.arange(n)]
  return spearman(held_out, y)


def measured_pairs(search_dir: str, checkpoint: str | None = None
                   ) -> tuple[list[dict], np.ndarray, space_lib.SearchSpace, dict]:
  """(archs, measured APs [n], the super-net's space, its model.json) of a search's
  evaluations.jsonl (predicted lines left out); the super-net is `checkpoint` or the one the
  search's fitness.json names."""
  # Local imports: the predictor itself needs neither checkpoints nor the search's files.
  from litepose_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from litepose_jax.nas import evolution  # pylint: disable=g-import-not-at-top
  from litepose_jax.nas import supernet  # pylint: disable=g-import-not-at-top
  if checkpoint is None:
    fitness = os.path.join(search_dir, 'fitness.json')
    if not os.path.isfile(fitness):
      raise UserError(f'{fitness} not found: give --checkpoint (the searched super-net)')
    with open(fitness) as f:
      checkpoint = json.load(f).get('checkpoint')
    if not checkpoint or not os.path.exists(checkpoint):
      raise UserError(f'{fitness} names checkpoint {checkpoint!r}, which is not there (moved?): '
                      'give --checkpoint')
  model_json = os.path.join(checkpoints.find_checkpoint(checkpoint), checkpoints.MODEL_JSON)
  with open(model_json) as f:
    cfg = json.load(f)
  if supernet.SUPERNET_FIELD not in cfg:
    raise UserError(f'{model_json}: not a super-net checkpoint (no {supernet.SUPERNET_FIELD!r})')
  space = space_lib.space_from_json(cfg[supernet.SUPERNET_FIELD], f'{model_json}: supernet')
  log = os.path.join(search_dir, 'evaluations.jsonl')
  if not os.path.isfile(log):
    raise UserError(f'{log} not found: not a `litepose search` output directory')
  records = [r for _, r in evolution.read_jsonl(log, ('genes', 'score')) if not r.get('predicted')]
  archs = [space_lib.decode([int(g) for g in r['genes']], space) for r in records]
  return archs, np.array([float(r['score']) for r in records]), space, cfg


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m litepose_jax.search.accuracy_model SEARCH_DIR`: the predictor's cross-validated
  rank correlation on a finished (or running) search's measured nets, per seed, beside the rank
  correlation of true MACs alone with AP (the trivial predictor it has to beat)."""
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument('search_dir', help='a `litepose search` --out directory')
  parser.add_argument('--checkpoint', default=None,
                      help='the searched super-net (default: the one in SEARCH_DIR/fitness.json)')
  parser.add_argument('--folds', type=int, default=5, help='cross-validation folds')
  parser.add_argument('--seeds', type=int, default=3, help='seeds 0..N-1 (folds and weights)')
  args = parser.parse_args(argv)
  from litepose_jax.search import costs  # pylint: disable=g-import-not-at-top
  archs, aps, space, cfg = measured_pairs(args.search_dir, args.checkpoint)
  rhos = [cross_validated_rank_correlation(archs, aps, space, folds=args.folds, seed=s)
          for s in range(max(1, args.seeds))]
  macs = [costs.arch_costs(a, int(cfg['num_joints']), fusion=bool(cfg.get('fusion', True)))
          ['macs_true'] for a in archs]
  print(f'{len(aps)} measured nets; {args.folds}-fold cross-validated rank correlation '
        f'(Spearman) of the accuracy predictor: ' + ', '.join(f'{r:.3f}' for r in rhos)
        + f' (seeds 0-{len(rhos) - 1}, mean {np.mean(rhos):.3f}); true MACs alone: '
        f'{spearman(macs, aps):.3f}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
