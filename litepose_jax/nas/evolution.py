"""Evolutionary architecture search over the space (official arch_search/evolution.py).

The official algorithm (SUPERNET_SPEC.md §5.4): a population of `population_size` sub-nets drawn
until each meets the constraint; then, `iterations` times, keep the `parents` best, add `mutants`
children (each gene resampled with probability `mutate_prob`) and `crossovers` children (each
gene from one of two parents), every child redrawn until it meets the constraint. Fixed here:
- the best architecture is the best of everything evaluated, so the last generation counts (the
  official code ranks parents only at the start of an iteration and drops the last children);
- every gene crosses over, resolution and stem width included (official: always parent 1's);
- scores are memoised: an architecture is scored once, however often it is drawn;
- seeded: the draws depend on the seed only (never on the scores' memo), so a run is a pure
  function of (seed, scores), and a run resumed from its log (`log_path`) replays the logged
  scores without calling `score_fn` and ends with the uninterrupted run's result;
- a constraint that the smallest sub-net fails is an error, and every rejection loop is bounded.
Architectures are handled as genes (space.encode / decode); a mutated gene takes one of the
gene's distinct values uniformly (the official code redraws a multiplier).
"""
from __future__ import annotations

from collections.abc import Callable
import json
import os
from typing import Any

import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.nas import space as space_lib

Genes = tuple[int, ...]


def read_jsonl(path: str, fields: tuple[str, ...]) -> list[tuple[int, dict]]:
  """(line number, record) of each line of a search log ([] when absent); UserError naming a
  broken line or one without every one of `fields`."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        if not isinstance(rec, dict) or any(k not in rec for k in fields):
          raise KeyError(f'missing one of {fields}')
      except (ValueError, KeyError) as e:
        raise UserError(f'{path}:{n}: not a search log line ({e}); remove the file to start '
                        'afresh') from e
      records.append((n, rec))
  return records


class _Scores:
  """Memoised score_fn with an append-only jsonl log: {'genes', 'arch', 'score'} per line."""

  def __init__(self, score_fn: Callable[[dict], float], space: space_lib.SearchSpace,
               log_path: str | None,
               score_many: Callable[..., list[float]] | None = None):
    self.score_fn, self.space, self.log_path = score_fn, space, log_path
    self.score_many = score_many
    self.memo: dict[Genes, float] = {}
    self.order: list[Genes] = []
    self.logged: dict[Genes, float] = {}
    for n, rec in read_jsonl(log_path, ('genes', 'score')) if log_path else ():
      try:
        self.logged[tuple(int(g) for g in rec['genes'])] = float(rec['score'])
      except (ValueError, TypeError) as e:
        raise UserError(f'{log_path}:{n}: not a search log line ({e}); remove the file to '
                        'start the search afresh') from e

  def __call__(self, genes: Genes) -> float:
    return self.batch([genes])[0]

  def batch(self, candidates: list[Genes]) -> list[float]:
    """Scores of `candidates`; the new ones (not memoised, not logged) are scored together, in
    first-seen order, by score_many when given (e.g. in parallel over devices), else one by one;
    each score is logged as soon as it is known."""
    new = [g for g in dict.fromkeys(candidates) if g not in self.memo and g not in self.logged]
    archs = [space_lib.decode(g, self.space) for g in new]
    fresh: dict[Genes, float] = {}

    def done(i: int, score: float) -> None:
      if new[i] in fresh:
        return
      fresh[new[i]] = float(score)
      if self.log_path:
        with open(self.log_path, 'a') as f:
          f.write(json.dumps({'genes': list(new[i]), 'arch': archs[i], 'score': float(score)})
                  + '\n')

    if self.score_many is not None and new:
      values = list(self.score_many(archs, done))
      if len(values) != len(new):
        raise ValueError(f'score_many returned {len(values)} scores for {len(new)} architectures')
      for i, v in enumerate(values):
        done(i, v)
    else:
      for i, arch in enumerate(archs):
        done(i, self.score_fn(arch))
    for genes in candidates:
      if genes not in self.memo:
        self.memo[genes] = fresh[genes] if genes in fresh else self.logged[genes]
        self.order.append(genes)
    return [self.memo[g] for g in candidates]


def _draw(rng: np.random.Generator, make: Callable[[], Genes], ok: Callable[[Genes], bool],
          max_tries: int, what: str) -> Genes:
  """make() until ok(genes), at most max_tries times (UserError after)."""
  for _ in range(max_tries):
    genes = make()
    if ok(genes):
      return genes
  raise UserError(f'{what}: no candidate met the constraint in {max_tries} tries; the budget '
                  'admits too few sub-nets for the search (raise it, or max_tries)')


def evolutionary_search(score_fn: Callable[[dict], float], constraint_fn: Callable[[dict], bool],
                        *, seed: int, population_size: int = 40, iterations: int = 40,
                        parents: int = 10, mutants: int = 20, crossovers: int = 20,
                        mutate_prob: float = 0.1, space: space_lib.SearchSpace | None = None,
                        log_path: str | None = None, max_tries: int = 10000,
                        score_many: Callable[..., list[float]] | None = None
                        ) -> dict[str, Any]:
  """The best sub-net (official-schema dict) by score_fn among those constraint_fn accepts.

  score_fn(arch) -> float, higher is better (e.g. AP after BN recalibration); constraint_fn(arch)
  -> bool (e.g. MACs <= budget). Returns {'best': {'arch', 'score'}, 'evaluated': [{'arch',
  'score'}, ...] in the order first scored}. log_path: a jsonl file that records every score and
  lets a killed search resume (see the module docstring). score_many(archs, done) -> scores:
  scores a whole generation's new architectures at once (the initial population, then each
  iteration's children), e.g. spread over devices and hosts, calling done(i, score) as each
  result is known (so it is logged then); the result is the same as with score_fn.
  """
  space = space_lib.OFFICIAL if space is None else space
  for name, v in (('population_size', population_size), ('parents', parents)):
    if v < 1:
      raise UserError(f'{name} must be >= 1, got {v}')
  if iterations < 0 or mutants < 0 or crossovers < 0 or not 0 <= mutate_prob <= 1:
    raise UserError('iterations, mutants and crossovers must be >= 0 and mutate_prob in [0, 1], '
                    f'got {iterations}, {mutants}, {crossovers}, {mutate_prob}')
  smallest = space_lib.smallest(space)
  if not constraint_fn(smallest):
    raise UserError(f'no sub-net of the space meets the constraint: even the smallest one '
                    f'({smallest["img_size"]} px, stem {smallest["input_channel"]}, deconv '
                    f'{smallest["deconv_setting"]}, stages '
                    f'{[s["channel"] for s in smallest["backbone_setting"]]}) fails it')
  rng = np.random.default_rng(seed)
  scores = _Scores(score_fn, space, log_path, score_many)
  accepted: dict[Genes, bool] = {}
  choices = space.num_choices()

  def ok(genes: Genes) -> bool:
    if genes not in accepted:
      accepted[genes] = bool(constraint_fn(space_lib.decode(genes, space)))
    return accepted[genes]

  def mutate(parent: Genes) -> Genes:
    flips = rng.random(len(parent)) < mutate_prob
    new = rng.integers(0, choices)
    return tuple(int(n) if f else g for g, f, n in zip(parent, flips, new))

  def cross(a: Genes, b: Genes) -> Genes:
    take_b = rng.random(len(a)) < 0.5
    return tuple(y if t else x for x, y, t in zip(a, b, take_b))

  population = [_draw(rng, lambda: space_lib.encode(space_lib.sample(space, rng), space), ok,
                      max_tries, 'initial population') for _ in range(population_size)]
  scores.batch(population)
  for _ in range(iterations):
    # Stable sort: equal scores keep population order, so ties break the same way every run.
    ranked = sorted(population, key=lambda g: -scores.memo[g])
    top = ranked[:parents]
    children = []
    for _ in range(mutants):
      parent = top[int(rng.integers(len(top)))]
      children.append(_draw(rng, lambda p=parent: mutate(p), ok, max_tries, 'mutation'))
    for _ in range(crossovers):
      a, b = top[int(rng.integers(len(top)))], top[int(rng.integers(len(top)))]
      children.append(_draw(rng, lambda a=a, b=b: cross(a, b), ok, max_tries, 'crossover'))
    scores.batch(children)
    population = top + children
  evaluated = [{'arch': space_lib.decode(g, space), 'score': scores.memo[g]} for g in scores.order]
  best = max(range(len(evaluated)), key=lambda i: (evaluated[i]['score'], -i))
  return {'best': evaluated[best], 'evaluated': evaluated}
