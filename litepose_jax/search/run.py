"""`litepose search`'s engine: the best sub-net of a trained super-net for each budget.

A budget is an upper bound on MACs (GMACs, true or paper convention, models/counting.py), on
latency (ms, the fitted LiteRT latency model of latency.py), or on both. For each budget the
official evolution (`nas.evolutionary_search`) runs with the budget as its constraint and the AP
of a candidate on the search split after BatchNorm recalibration (fitness.py) as its score; the
candidates of a generation are scored together, spread over every device and host (parallel.py).

Shared by every budget and resumable: every score is appended to out/evaluations.jsonl as it is
known, and every evolution replays that log instead of scoring again, so the second budget reuses
the first's candidates and a killed search resumes where it stopped and ends with the result of
an uninterrupted one (the evolution's draws depend on its seed only, a budget's seed on --seed and
the budget's name, so `--macs 1.2,5` picks what two runs `--macs 1.2` and `--macs 5` pick).
The scores are only valid for one super-net, data and calibration: out/fitness.json records them
and a rerun with others is refused.

A budget is a hard bound on the exact count: the official search compared ptflops' count rounded
to 2 decimals (SUPERNET_SPEC.md §5.2), so its 1.2 G admitted up to 1.2049 G. With a latency
bound the latency model ranks, and the finalists (the best candidates, in score order) are then
measured exactly until one meets the bound on the real measurement (measurements are kept in
out/latency_measured.jsonl). When any budget has a latency, every chosen net is measured too.

Reference points: the uniform-width nets (every width times one multiplier, the official
fixed_sample) at each of `uniform_mults`, at the lowest and the highest resolution of the space
(official: 256 and 512 px, which include the paper's prune-S/M/L at 512 and the official search
driver's own reference fixed_sample(256, 0.5)), scored and costed like the candidates.

Pre-screening (`prescreen` K > 1, off by default; accuracy_model.py): once at least
max(population_size, accuracy_model.MIN_PAIRS) nets have been measured (uniform reference nets
included, so with the official 40 the first budget's initial population is always measured in
full), each generation's new candidates are ranked by an MLP fitted to every pair measured so far
in the run, and only the best 1/K of them (at least `parents`) are measured; the others get the
MLP's prediction, logged with `"predicted": true`. Predicted scores steer the evolution but a
chosen net is always a measured one (the best measured candidate of its budget). The predictor's
training pairs are those the run has measured so far, in the order the run met them, and it is
seeded, so a resumed search (which recomputes the predictions rather than reading them back)
ends as the uninterrupted one; budgets are no longer independent, though: a later budget's
predictor learns from the earlier budgets' measurements. results.json ('accuracy_model') and
table.md report the predictor's 5-fold cross-validated Spearman rank correlation on the run's
measured pairs.

Writes (process 0 only): splits.json, evaluations.jsonl, fitness.json, <budget>.json (the chosen
net in the official schema: `models.create_model`, `litepose train`, the official code),
results.json, table.md, pareto.png (plot.py; measured nets only).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import functools
import json
import math
import os
import shutil
import tempfile
from typing import Any
import zlib

import jax
import numpy as np
import tqdm

from litepose_jax import checkpoints
from litepose_jax import nas
from litepose_jax.errors import UserError
from litepose_jax.evaluation import split as split_lib
from litepose_jax.nas import evolution
from litepose_jax.search import accuracy_model
from litepose_jax.search import costs as costs_lib
from litepose_jax.search import fitness as fitness_lib
from litepose_jax.search import latency as latency_lib
from litepose_jax.search import parallel
from litepose_jax.search import plot
from litepose_jax.search import splits as splits_lib

CONVENTIONS = ('true', 'paper')
# The finalists measured for a latency budget: the candidates below the best 20 of a search
# differ by noise; past them the latency model is off and a warning says so.
MAX_FINALISTS = 20
EVALUATIONS = 'evaluations.jsonl'
MEASURED = 'latency_measured.jsonl'
RESULTS = 'results.json'
FITNESS = 'fitness.json'
TABLE = 'table.md'
PICTURE = 'pareto.png'
# Folds of the predictor's cross-validated rank correlation in results.json / table.md.
PREDICTOR_FOLDS = 5
Genes = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Budget:
  """An upper bound: MACs (GMACs, in the search's convention) and / or latency (ms)."""
  macs: float | None
  latency_ms: float | None
  name: str


def budget_name(macs: float | None, latency_ms: float | None) -> str:
  """'macs1.2G', 'lat30ms', 'macs5G_lat30ms': the budget's name and its JSON file's stem."""
  parts = ([f'macs{macs:g}G'] if macs is not None else []) + (
      [f'lat{latency_ms:g}ms'] if latency_ms is not None else [])
  return '_'.join(parts)


def _numbers(text: str, flag: str) -> list[float]:
  """Positive finite numbers of a comma-separated flag value (UserError naming the flag)."""
  parts = [p.strip() for p in str(text).split(',')]
  values = []
  for p in parts:
    try:
      v = float(p)
    except ValueError:
      v = math.nan
    if not math.isfinite(v) or v <= 0:
      raise UserError(f'{flag}: expected comma-separated positive numbers, got {text!r}')
    values.append(v)
  return values


def parse_budgets(macs: str | None, latency_ms: str | None) -> list[Budget]:
  """Budgets of --macs / --latency-ms: '1.2,5,8' is three budgets; with both flags, lists of
  equal length pair up and a single value applies to every budget."""
  if macs is None and latency_ms is None:
    raise UserError('no budget: give --macs (GMACs, e.g. 1.2,5,8) and / or --latency-ms')
  m = _numbers(macs, '--macs') if macs is not None else [None]
  lat = _numbers(latency_ms, '--latency-ms') if latency_ms is not None else [None]
  if len(m) != len(lat) and 1 not in (len(m), len(lat)):
    raise UserError(f'--macs has {len(m)} values and --latency-ms {len(lat)}: give lists of '
                    'equal length (paired) or a single value for every budget')
  n = max(len(m), len(lat))
  m, lat = m * (n // len(m)), lat * (n // len(lat))
  budgets, seen = [], set()
  for a, b in zip(m, lat):
    name = budget_name(a, b)
    if name in seen:
      raise UserError(f'budget {name} is given twice (--macs {macs}, --latency-ms {latency_ms})')
    seen.add(name)
    budgets.append(Budget(macs=a, latency_ms=b, name=name))
  return budgets


def budget_seed(seed: int, name: str) -> int:
  """The evolution seed of a budget: a function of --seed and the budget's name only."""
  return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


def uniform_resolutions(space: nas.SearchSpace) -> tuple[int, ...]:
  """Resolutions of the uniform-width reference nets: the space's lowest and highest."""
  return tuple(sorted({min(space.resolutions), max(space.resolutions)}))


def check_uniform_mults(space: nas.SearchSpace, mults: Sequence[float]) -> None:
  """UserError naming --uniform-mults when a multiplier is not one of the space's."""
  for m in mults:
    if m not in space.width_mults:
      raise UserError(f'--uniform-mults: {m:g} is not a width multiplier of the super-net\'s '
                      f'space {tuple(space.width_mults)}')


def _describe(arch: dict) -> str:
  return (f'{arch["img_size"]} px, stem {arch["input_channel"]}, deconv {arch["deconv_setting"]}, '
          f'stages {[s["channel"] for s in arch["backbone_setting"]]}')


def check_budgets(space: nas.SearchSpace, budgets: Sequence[Budget],
                  costs: Callable[[dict], dict], convention: str,
                  latency_model: Any = None) -> None:
  """UserError (one line) for the first budget that even the space's smallest sub-net exceeds,
  naming the budget and the smallest sub-net's cost in the budget's own terms."""
  smallest = nas.smallest(space)
  macs = costs(smallest)[f'macs_{convention}'] / 1e9
  for b in budgets:
    if b.macs is not None and macs > b.macs:
      raise UserError(f'--macs {b.macs:g}: no sub-net fits this budget: the smallest one '
                      f'({_describe(smallest)}) has {macs:.4g} G MACs ({convention} convention)')
    if b.latency_ms is not None:
      if latency_model is None:
        raise ValueError(f'budget {b.name} has a latency but no latency model was given')
      ms = float(latency_model.predict(smallest))
      if ms > b.latency_ms:
        raise UserError(f'--latency-ms {b.latency_ms:g}: no sub-net fits this budget: the '
                        f'smallest one ({_describe(smallest)}) runs in {ms:.3g} ms (latency '
                        'model)')


def _constraint(budget: Budget, costs: Callable[[dict], dict], convention: str,
                latency_model: Any) -> Callable[[dict], bool]:
  """arch -> whether it meets `budget` (MACs exactly, latency by the model)."""

  def ok(arch: dict) -> bool:
    if budget.macs is not None and costs(arch)[f'macs_{convention}'] > budget.macs * 1e9:
      return False
    return budget.latency_ms is None or latency_model.predict(arch) <= budget.latency_ms

  return ok


def _broadcast_json(obj: Any) -> Any:
  """Process 0's JSON-able `obj` on every process (identity with one process)."""
  if jax.process_count() == 1:
    return obj
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  data = np.frombuffer(json.dumps(obj).encode(), np.uint8) if jax.process_index() == 0 else (
      np.zeros(0, np.uint8))
  n = int(np.asarray(multihost_utils.broadcast_one_to_all(np.array([data.size], np.int32)))[0])
  buf = np.zeros(n, np.uint8)
  buf[:data.size] = data
  return json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).decode())


def _read_jsonl(path: str, fields: tuple[str, ...]) -> list[dict]:
  """The records of a jsonl log ([] when absent); UserError naming a broken line."""
  return [rec for _, rec in evolution.read_jsonl(path, fields)]


def _write_json(path: str, obj: Any) -> None:
  """Atomic JSON write (a killed run never leaves a half file)."""
  split_lib.write_json(path, obj, indent=2)


class _Progress:
  """One bar over every scoring of the run, its postfix the best AP so far per budget."""

  def __init__(self, enabled: bool):
    self.bar = tqdm.tqdm(desc='search', disable=not enabled, dynamic_ncols=True,
                         bar_format='{desc}: {n_fmt} evaluations [{elapsed}, {rate_fmt}]{postfix}',
                         unit='eval')
    self.best: dict[str, float] = {}
    self.stage = ''

  def wrap(self, score_many: Callable[..., list[float]], stage: str, track: bool):
    """score_many that ticks the bar per score; with `track` the scores count for `stage`'s
    best so far."""

    def wrapped(archs: list[dict], done: Callable[[int, float], None] | None = None) -> list[float]:
      self.stage = stage
      self.bar.set_description(f'search {stage}')
      seen: set[int] = set()

      def tick(i: int, score: float) -> None:
        if i not in seen:
          seen.add(i)
          self.bar.update(1)
          if track:
            self.record(stage, score)
        if done is not None:
          done(i, score)

      scores = list(score_many(archs, tick))
      for i, s in enumerate(scores):
        tick(i, s)
      return scores

    return wrapped

  def record(self, stage: str, score: float) -> None:
    if score > self.best.get(stage, -math.inf):
      self.best[stage] = float(score)
      self.bar.set_postfix({k: f'{v:.3f}' for k, v in self.best.items()}, refresh=True)

  def write(self, msg: str) -> None:
    if not self.bar.disable:
      self.bar.write(msg)
    else:
      print(msg, flush=True)


class _Evaluations:
  """Every scoring of a search, through its log (out/evaluations.jsonl): a net measured in the
  log is never measured again; with `prescreen` > 1 the accuracy predictor spares measurements
  (module docstring).

  The log's lines are {'genes', 'arch', 'score'} (the evolution's format), plus 'predicted':
  true for a predicted score. Predicted scores are logged for the record only: a rerun predicts
  them again (the same values), and a net predicted before is measured when a run needs it.
  """

  def __init__(self, space: nas.SearchSpace, log_path: str, *, prescreen: float = 1.0,
               min_measured: int = 0, keep: int = 1, seed: int = 0):
    self.space, self.log_path = space, log_path
    self.prescreen, self.min_measured, self.keep, self.seed = prescreen, min_measured, keep, seed
    self.logged: dict[Genes, float] = {}  # measured scores in the log
    self.logged_predicted: set[Genes] = set()
    for n, rec in evolution.read_jsonl(log_path, ('genes', 'score')):
      try:
        genes, score = tuple(int(g) for g in rec['genes']), float(rec['score'])
      except (TypeError, ValueError) as e:
        raise UserError(f'{log_path}:{n}: not a search log line ({e}); remove the file to start '
                        'afresh') from e
      if rec.get('predicted'):
        self.logged_predicted.add(genes)
      else:
        self.logged[genes] = score
    self.scores: dict[Genes, float] = {}  # every net scored in this run
    self.measured: list[Genes] = []  # the measured ones, in the order met: the predictor's pairs
    self.predicted: set[Genes] = set()

  def _append(self, genes: Genes, arch: dict, score: float, predicted: bool) -> None:
    rec = {'genes': list(genes), 'arch': arch, 'score': float(score)}
    with open(self.log_path, 'a') as f:
      f.write(json.dumps(dict(rec, predicted=True) if predicted else rec) + '\n')

  def _screen(self, pool: list[Genes]) -> dict[Genes, float]:
    """Predicted AP of the nets of `pool` (distinct, not scored yet) that are not to be measured
    ({} when pre-screening is off or not started yet)."""
    measure = max(self.keep, math.ceil(len(pool) / self.prescreen))
    if (self.prescreen <= 1 or len(self.measured) < self.min_measured
        or measure >= len(pool)):
      return {}
    model = accuracy_model.fit_accuracy_model(
        [nas.decode(g, self.space) for g in self.measured],
        [self.scores[g] for g in self.measured], self.space, seed=self.seed)
    pred = model.predict([nas.decode(g, self.space) for g in pool])
    # Stable: equal predictions keep the evolution's order, so the choice is the same every run.
    order = sorted(range(len(pool)), key=lambda i: -pred[i])
    return {pool[i]: float(pred[i]) for i in order[measure:]}

  def scorer(self, score_many: Callable[..., list[float]], screen: bool
             ) -> Callable[..., list[float]]:
    """score_many(archs, done) -> scores over the log; with `screen`, every call after the first
    (a budget's initial population) is pre-screened by the predictor, and otherwise every net is
    measured (a net predicted before included). The nets to measure go to `score_many` together,
    each logged as soon as it is known."""
    calls = [0]

    def score(archs: list[dict], done: Callable[[int, float], None] | None = None
              ) -> list[float]:
      del done  # the scores are returned; the caller (the evolution) records them
      screened = screen and calls[0] > 0
      calls[0] += 1
      genes = [nas.encode(a, self.space) for a in archs]
      arch_of = dict(zip(genes, archs))
      pool = [g for g in dict.fromkeys(genes)
              if g not in self.scores or (g in self.predicted and not screened)]
      predicted = self._screen([g for g in pool if g not in self.scores]) if screened else {}
      new = [g for g in pool if g not in self.logged and g not in predicted]

      def measured(k: int, value: float) -> None:
        g = new[k]
        if g not in self.logged:
          self.logged[g] = float(value)
          self._append(g, arch_of[g], value, predicted=False)

      if new:
        values = list(score_many([arch_of[g] for g in new], measured))
        if len(values) != len(new):
          raise ValueError(f'score_many returned {len(values)} scores for {len(new)} nets')
        for k, v in enumerate(values):
          measured(k, v)
      for g in pool:
        # A net measured in the log (e.g. by a search without pre-screening) stays measured.
        if g in predicted and g not in self.logged:
          self.scores[g] = predicted[g]
          self.predicted.add(g)
          if g not in self.logged_predicted:
            self.logged_predicted.add(g)
            self._append(g, arch_of[g], predicted[g], predicted=True)
        else:
          self.scores[g] = self.logged[g]
          self.predicted.discard(g)
          self.measured.append(g)
      return [self.scores[g] for g in genes]

    return score

  def is_predicted(self, arch: dict) -> bool:
    """Whether the run's score of `arch` is (still) a prediction."""
    return nas.encode(arch, self.space) in self.predicted

  def score_of(self, arch: dict) -> float:
    """The run's last score of `arch` (measured once measured, even if predicted before)."""
    return self.scores[nas.encode(arch, self.space)]

  def report(self) -> dict:
    """results.json's 'accuracy_model': the pre-screening's counts and the predictor's k-fold
    cross-validated Spearman rank correlation on the run's measured pairs (None when too few)."""
    archs = [nas.decode(g, self.space) for g in self.measured]
    aps = [self.scores[g] for g in self.measured]
    rho = None  # too few measured pairs to cross-validate, or no ranking (constant APs)
    if len(aps) >= accuracy_model.cv_min_pairs(PREDICTOR_FOLDS):
      rho = accuracy_model.cross_validated_rank_correlation(archs, aps, self.space,
                                                            folds=PREDICTOR_FOLDS, seed=self.seed)
      rho = rho if math.isfinite(rho) else None
    return {'prescreen': float(self.prescreen), 'min_measured': int(self.min_measured),
            'measured': len(self.measured), 'predicted': len(self.predicted),
            'folds': PREDICTOR_FOLDS, 'rank_correlation': rho}


def _point(arch: dict, ap: float, costs: Callable[[dict], dict], latency_model: Any) -> dict:
  """A scored net with its costs: arch, ap, params, macs_true, macs_paper, latency_ms_model."""
  c = costs(arch)
  return {'arch': arch, 'ap': float(ap), 'params': int(c['params']),
          'macs_true': int(c['macs_true']), 'macs_paper': int(c['macs_paper']),
          'latency_ms_model': (float(latency_model.predict(arch)) if latency_model is not None
                               else None)}


def _key(arch: dict) -> str:
  return json.dumps(arch, sort_keys=True)


def _finalist(budget: Budget, evaluated: list[dict], measure: Callable[[dict], float],
              measured: dict[str, float], log_path: str, measure_key: str,
              progress: _Progress) -> tuple[int, float, bool | None]:
  """(index in `evaluated` of the net chosen for `budget`, its measured latency (ms), whether it
  meets the latency bound (None without one)): with a latency bound, the best candidates in score
  order until one measures within it; else the best one, measured for the record."""

  def ms(arch: dict) -> float:
    k = _key(arch)
    if k not in measured:
      measured[k] = float(measure(arch))
      with open(log_path, 'a') as f:
        f.write(json.dumps({'arch': arch, 'ms': measured[k], 'key': measure_key}) + '\n')
    return measured[k]

  ranked = sorted(range(len(evaluated)), key=lambda i: (-evaluated[i]['score'], i))
  if budget.latency_ms is None:
    return ranked[0], ms(evaluated[ranked[0]]['arch']), None
  for n, i in enumerate(ranked[:MAX_FINALISTS]):
    t = ms(evaluated[i]['arch'])
    if t <= budget.latency_ms:
      if n:
        progress.write(f'{budget.name}: the {n} best candidates measured over '
                       f'{budget.latency_ms:g} ms; chose number {n + 1} ({t:.3g} ms measured)')
      return i, t, True
  progress.write(f'warning: {budget.name}: none of the {min(MAX_FINALISTS, len(ranked))} best '
                 f'candidates measured within {budget.latency_ms:g} ms (the latency model is off '
                 'on this machine); keeping the best one, marked latency_met false')
  return ranked[0], ms(evaluated[ranked[0]]['arch']), False


def _finished(out: str, args: dict | None) -> dict | None:
  """results.json of a finished search with the same arguments, else None."""
  path = os.path.join(out, RESULTS)
  if args is None or not os.path.isfile(path):
    return None
  with open(path) as f:
    results = json.load(f)
  return results if results.get('args') == args else None


def _fmt(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
  return '-' if v is None else f'{v / scale:.{digits}f}'


def format_table(results: dict) -> str:
  """The markdown table of a search's results: the chosen net per budget, then the uniform-width
  reference nets (AP on the search split; MACs in G, both conventions; latency in ms)."""
  head = ('| {} | AP | MACs true (G) | MACs paper (G) | latency model (ms) | latency measured (ms) '
          '| params (M) | px |{}')
  rule = '|---|---|---|---|---|---|---|---|{}'
  lines = [head.format('budget', ' evaluated | file |'), rule.format('---|---|')]
  for b in results['budgets']:
    measured = _fmt(b['latency_ms_measured'], digits=2)
    if b.get('latency_met') is False:
      measured += ' (over)'
    lines.append(f'| {b["name"]} | {b["ap"]:.4f} | {_fmt(b["macs_true"], 1e9)} | '
                 f'{_fmt(b["macs_paper"], 1e9)} | {_fmt(b["latency_ms_model"], digits=2)} | '
                 f'{measured} | {_fmt(b["params"], 1e6)} | {b["arch"]["img_size"]} | '
                 f'{b["evaluations"]} | {b["file"]} |')
  if results['uniform']:
    lines += ['', head.format('uniform width', ''), rule.format('')]
    for u in results['uniform']:
      lines.append(f'| x{u["mult"]:g} | {u["ap"]:.4f} | {_fmt(u["macs_true"], 1e9)} | '
                   f'{_fmt(u["macs_paper"], 1e9)} | {_fmt(u["latency_ms_model"], digits=2)} | - | '
                   f'{_fmt(u["params"], 1e6)} | {u["img_size"]} |')
  acc = results.get('accuracy_model')
  if acc:
    rho = acc['rank_correlation']
    rho = f'{rho:.3f}' if rho is not None else 'n/a (too few measured nets or constant APs)'
    lines += ['', f'Pre-screening (--prescreen {acc["prescreen"]:g}): {acc["measured"]} nets '
                  f'measured, {acc["predicted"]} predicted only; accuracy predictor\'s '
                  f'{acc["folds"]}-fold cross-validated rank correlation (Spearman) with the '
                  f'measured AP: {rho}.']
  return '\n'.join(lines) + '\n'


def search_budgets(space: nas.SearchSpace, budgets: Sequence[Budget], out: str, *,
                   score_many: Callable[..., list[float]], costs: Callable[[dict], dict],
                   convention: str = 'true', latency_model: Any = None,
                   measure: Callable[[dict], float] | None = None, seed: int = 0,
                   population_size: int = 40, iterations: int = 40, parents: int = 10,
                   mutants: int = 20, crossovers: int = 20, mutate_prob: float = 0.1,
                   uniform_mults: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                   args: dict | None = None, latency_note: str = '', measure_key: str = '',
                   prescreen: float = 1.0, progress: bool = True) -> dict:
  """run_search once its pieces exist: the budgets' evolutions, finalists, reference nets and
  files (module docstring), with the scorer and costs given.

  score_many(archs, done) -> APs (parallel.score_many's contract); costs(arch) -> {'params',
  'macs_true', 'macs_paper'}; latency_model: .predict(arch) -> ms and .to_dict(), required when
  a budget has a latency; measure(arch) -> exact ms, required with a latency model;
  measure_key: what the measurements depend on (latency.machine_key: CPU, LiteRT, threads),
  kept measurements of another key are not reused; args: what identifies this search (a
  finished one with equal args is returned as is); prescreen: K > 1 measures only the best 1/K
  of each generation's new candidates by the accuracy predictor (module docstring), 1 is off.
  """
  if convention not in CONVENTIONS:
    raise UserError(f'--convention must be one of {CONVENTIONS}, got {convention!r}')
  if not budgets:
    raise UserError('no budget: give --macs and / or --latency-ms')
  if latency_model is not None and measure is None:
    raise ValueError('a latency model needs `measure` (the exact latency of the finalists)')
  if isinstance(prescreen, bool) or not isinstance(prescreen, (int, float)) or not (
      math.isfinite(prescreen) and prescreen >= 1):
    raise UserError(f'--prescreen must be a number >= 1 (1: off, K: measure the best 1/K of '
                    f'each generation), got {prescreen!r}')
  check_uniform_mults(space, uniform_mults)
  out = os.path.abspath(out)
  done = _finished(out, args)
  if done is not None:
    return done
  check_budgets(space, budgets, costs, convention, latency_model)
  is_main = jax.process_index() == 0
  private = None
  if is_main:
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, EVALUATIONS)
  else:
    # Every process replays the same log (so all score the same new nets together) but only
    # process 0 writes out/: the others append to a private copy.
    private = tempfile.mkdtemp(prefix='litepose_search_')
    log_path = os.path.join(private, EVALUATIONS)
    shared = os.path.join(out, EVALUATIONS)
    if os.path.exists(shared):
      with open(shared) as src, open(log_path, 'w') as dst:
        dst.write(src.read())
  bar = _Progress(progress and is_main)
  evals = _Evaluations(space, log_path, prescreen=prescreen,
                       min_measured=max(population_size, accuracy_model.MIN_PAIRS),
                       keep=parents, seed=seed)
  try:
    uniform = []
    archs = [(m, r, nas.uniform(space, m, r)) for m in uniform_mults
             for r in uniform_resolutions(space)]
    if archs:
      aps = evals.scorer(bar.wrap(score_many, 'uniform', track=False), screen=False)(
          [a for _, _, a in archs])
      uniform = [dict(_point(a, ap, costs, latency_model), mult=float(m), img_size=r)
                 for (m, r, a), ap in zip(archs, aps)]

    searched = []
    for b in budgets:
      # The log is replayed by `evals`, not by the evolution: it tells measured scores from
      # predicted ones, which the evolution's own replay would take for measurements.
      scorer = evals.scorer(bar.wrap(score_many, b.name, track=True), screen=True)
      result = nas.evolutionary_search(
          lambda arch, scorer=scorer: scorer([arch])[0],
          _constraint(b, costs, convention, latency_model), seed=budget_seed(seed, b.name),
          population_size=population_size, iterations=iterations, parents=parents,
          mutants=mutants, crossovers=crossovers, mutate_prob=mutate_prob, space=space,
          score_many=scorer)
      for e in result['evaluated']:
        if evals.is_predicted(e['arch']):
          e['predicted'] = True  # as this budget's evolution saw it: not a final candidate
      best = [e['score'] for e in result['evaluated'] if not e.get('predicted')]
      bar.record(b.name, max(best))  # the initial population is measured: never empty
      searched.append(result)
  finally:
    bar.bar.close()
    if private is not None:
      shutil.rmtree(private, ignore_errors=True)  # a private copy: nothing to keep

  # Finalists: measured by process 0 only, its choice broadcast so that every process returns
  # (and e.g. fine-tunes) the same nets.
  # A chosen net is a measured one: the finalists are the measured candidates (all of them
  # without pre-screening, where this is the evolution's best).
  real = [[i for i, e in enumerate(r['evaluated']) if not e.get('predicted')] for r in searched]
  picks = [(max(idx, key=lambda i, r=r: (r['evaluated'][i]['score'], -i)), None, None)
           for r, idx in zip(searched, real)]
  if latency_model is not None:
    if is_main:
      # Only the measurements of this machine and thread count count.
      measured = {_key(r['arch']): float(r['ms'])
                  for r in _read_jsonl(os.path.join(out, MEASURED), ('arch', 'ms'))
                  if r.get('key', '') == measure_key}
      picks = [_finalist(b, [r['evaluated'][i] for i in idx], measure, measured,
                         os.path.join(out, MEASURED), measure_key, bar)
               for b, r, idx in zip(budgets, searched, real)]
      picks = [(idx[i], ms, met) for idx, (i, ms, met) in zip(real, picks)]
    picks = [tuple(p) for p in _broadcast_json([list(p) for p in picks])]

  candidates, seen = [], set()
  for r in searched:
    for e in r['evaluated']:
      if _key(e['arch']) not in seen:
        seen.add(_key(e['arch']))
        # The run's final score: a net predicted by one budget may be measured by a later one.
        point = _point(e['arch'], evals.score_of(e['arch']), costs, latency_model)
        candidates.append(dict(point, predicted=True) if evals.is_predicted(e['arch'])
                          else point)
  rows = []
  for b, r, (i, ms, met) in zip(budgets, searched, picks):
    e = r['evaluated'][i]
    rows.append(dict(name=b.name, macs=b.macs, latency_ms=b.latency_ms, convention=convention,
                     **_point(e['arch'], e['score'], costs, latency_model),
                     latency_ms_measured=ms, latency_met=met,
                     evaluations=len(r['evaluated']), seed=budget_seed(seed, b.name),
                     file=f'{b.name}.json'))
    if prescreen > 1:
      rows[-1]['measured'] = len(real[len(rows) - 1])
  results = {'args': args, 'convention': convention, 'budgets': rows, 'candidates': candidates,
             'uniform': uniform,
             'latency_model': latency_model.to_dict() if latency_model is not None else None}
  if prescreen > 1:
    results['accuracy_model'] = evals.report()
  if is_main:
    for row in rows:
      _write_json(os.path.join(out, row['file']), row['arch'])
    with open(os.path.join(out, TABLE), 'w') as f:
      f.write(format_table(results))
    plot.draw_search([c for c in candidates if not c.get('predicted')], rows, uniform,
                     os.path.join(out, PICTURE),
                     convention=convention, latency_note=latency_note)
    _write_json(os.path.join(out, RESULTS), results)  # last: its presence means finished
  return results


def _jsonable(cfg: Any) -> Any:
  """A JSON value of a config section (ConfigDict or dict), to compare two runs' data."""
  if hasattr(cfg, 'to_json_best_effort'):
    return json.loads(cfg.to_json_best_effort(sort_keys=True))
  return json.loads(json.dumps(cfg, sort_keys=True, default=str))


def _check_fitness_key(out: str, key: dict) -> None:
  """Records what the scores in out/ depend on; UserError when out/ holds another search's."""
  path = os.path.join(out, FITNESS)
  if os.path.isfile(path):
    with open(path) as f:
      have = json.load(f)
    diff = sorted(k for k in set(have) | set(key) if have.get(k) != key.get(k))
    if diff:
      raise UserError(f'{out} holds the evaluations of another search ({", ".join(diff)} differ, '
                      f'see {path}); use a new --out or the same arguments')
  elif jax.process_index() == 0:
    os.makedirs(out, exist_ok=True)
    _write_json(path, key)


# How the fitness runs candidates: 'sliced' at their own widths (search/sliced.py), 'masked'
# through the full-width super-net, 'auto' by `sliced_fitness`.
FITNESS_WIDTHS = ('auto', 'sliced', 'masked')
# Sliced evaluation compiles ~190 programs per resolution instead of 3 (+57 s on a 2-vCPU CPU)
# and saves 0-0.6 s per 96-px candidate there (0-20% on a quiet machine, 20-25% on a loaded one;
# docs/BENCHMARKS.md, "Architecture search"): worth it from about this many per resolution.
SLICED_BREAK_EVEN = 300


def sliced_fitness(choice: str, per_resolution: float) -> bool:
  """Whether to evaluate candidates sliced: as chosen, or ('auto') on XLA:CPU for searches
  expecting at least SLICED_BREAK_EVEN evaluations per resolution (upper bound, before
  memoisation). A GPU / TPU runs the masked full width nearly as fast as the sliced sub-net
  ("Super-net" in docs/BENCHMARKS.md) and compiles more slowly."""
  if choice == 'auto':
    return jax.default_backend() == 'cpu' and per_resolution >= SLICED_BREAK_EVEN
  return choice == 'sliced'


def run_search(checkpoint: str, budgets: list[Budget], out: str, *, data_cfg: Any,
               convention: str = 'true', threads: int = 2, seed: int = 0,
               population_size: int = 40, iterations: int = 40, parents: int = 10,
               mutants: int = 20, crossovers: int = 20, mutate_prob: float = 0.1,
               num_calibration: int = 2000, num_search: int = 1000, calib_batch: int = 16,
               uniform_mults: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
               latency_cache: str | None = None, prescreen: float = 1.0,
               fitness_widths: str = 'auto', progress: bool = True) -> dict:
  """Searches the super-net at `checkpoint` (checkpoint dir or training workdir) for the best
  sub-net per budget; writes out/ (module docstring) and returns results.json's dict.

  data_cfg: a training config's data section (its training split is carved into the calibration
  and search splits); latency_cache: where the latency model is kept (default out/latency);
  prescreen: K > 1 pre-screens candidates with the accuracy predictor (module docstring);
  fitness_widths: how candidates run (`sliced_fitness`).
  """
  if convention not in CONVENTIONS:
    raise UserError(f'--convention must be one of {CONVENTIONS}, got {convention!r}')
  if fitness_widths not in FITNESS_WIDTHS:
    raise UserError(f'--fitness-widths must be one of {FITNESS_WIDTHS}, got {fitness_widths!r}')
  out = os.path.abspath(out)
  source = checkpoints.find_checkpoint(checkpoint)
  fitness_key = {'checkpoint': source, 'data': _jsonable(data_cfg), 'seed': int(seed),
                 'num_calibration': int(num_calibration), 'num_search': int(num_search),
                 'calib_batch': int(calib_batch)}
  latency_cache = os.path.abspath(latency_cache or os.path.join(out, 'latency'))
  args = dict(fitness_key, budgets=[dataclasses.asdict(b) for b in budgets],
              convention=convention, threads=int(threads), population_size=population_size,
              iterations=iterations, parents=parents, mutants=mutants, crossovers=crossovers,
              mutate_prob=mutate_prob, uniform_mults=[float(m) for m in uniform_mults],
              latency_cache=latency_cache)
  if prescreen != 1:
    # Only when on: the searches finished before the option existed still count as finished.
    args['prescreen'] = prescreen
  done = _finished(out, args)
  if done is not None:
    return done
  net, variables, cfg = nas.load_supernet(source)
  space, joints, fusion = net.space, int(cfg['num_joints']), bool(cfg.get('fusion', True))
  check_uniform_mults(space, uniform_mults)
  costs = functools.partial(costs_lib.arch_costs, num_joints=joints, fusion=fusion)
  # The MACs bounds before any slow step; the latency bounds once the model exists.
  check_budgets(space, [dataclasses.replace(b, latency_ms=None) for b in budgets], costs,
                convention)
  _check_fitness_key(out, fitness_key)
  splits = splits_lib.carve_splits(data_cfg, out, num_calibration=num_calibration,
                                   num_search=num_search, seed=seed)
  evaluations = len(budgets) * (population_size + iterations * (mutants + crossovers))
  fitness = fitness_lib.Fitness(
      net, variables, data_cfg, splits, calib_batch=calib_batch, seed=seed,
      sliced=sliced_fitness(fitness_widths, evaluations / len(space.resolutions)))
  model = measure = None
  note = measure_key = ''
  if any(b.latency_ms is not None for b in budgets):
    # Process 0 measures and fits; every process must constrain with the very same model.
    built = None
    if jax.process_index() == 0:
      built = latency_lib.build_latency_model(space, joints, threads=threads,
                                              cache_dir=latency_cache, seed=seed, fusion=fusion,
                                              progress=progress).to_dict()
    model = latency_lib.LatencyModel.from_dict(_broadcast_json(built))
    # On the model's scale (paired with its reference sub-net): a plain median on a busy
    # machine can read 2-4x the quiet latency the model predicts (latency.py).
    measure = functools.partial(latency_lib.measure_ms, num_joints=joints, threads=threads,
                                fusion=fusion, model=model)
    note = f'LiteRT, {threads} thread{"s" if threads != 1 else ""}'
    measure_key = latency_lib.machine_key(threads)
  return search_budgets(space, budgets, out, score_many=functools.partial(parallel.score_many,
                                                                          fitness),
                        costs=costs, convention=convention, latency_model=model, measure=measure,
                        seed=seed, population_size=population_size, iterations=iterations,
                        parents=parents, mutants=mutants, crossovers=crossovers,
                        mutate_prob=mutate_prob, uniform_mults=uniform_mults, args=args,
                        latency_note=note, measure_key=measure_key, prescreen=prescreen,
                        progress=progress)
