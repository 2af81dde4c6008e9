"""Latency of a sub-net on the real runtime (LiteRT / XNNPACK), measured and modelled.

Measuring (measure_ms): the sub-net (random weights: fp32 latency does not depend on their
values) is exported to an fp32 .tflite as `litepose export` does (export/tflite.py) and its
network invoke is timed with LiteRT (inference/litert.py, export/bench.py): median of `runs`
after `warmup`, batch 1, at the arch's img_size. It costs a conversion (1-4 s) plus the timed
runs: the ground truth, for a search's finalists, far too slow for every candidate.

On a shared machine raw medians are not reproducible: other processes slowed the same sub-net
2-4x from one minute to the next here (2 cores, load 4-12). So the measurements a model is built
on are paired (measure_paired): the sub-net and a fixed reference sub-net of the space
(reference_arch: mid widths, mid resolution) are timed in alternation and the median of their
per-run ratio is kept, which other processes leave nearly unchanged (here, 32 sub-nets measured
twice an hour apart: ratios moved 4% on average and 16% at most, raw medians 17% and 123%). A sub-net's measured latency is that ratio times the reference's quiet
latency, the fastest median the reference showed in any measurement of the cache. On a quiet
machine this is the raw median; on a busy one, what the raw median would be without the other
processes (if the cache ever saw the machine quiet: the scale is only as good as that).
measure_ms(..., model=m) measures the same way on m's scale (for finalists to compare with
m.predict); without a model it is the raw median.

Modelling (LatencyModel, build_latency_model): as production NAS does, a per-machine latency
predictor fitted once. Each sub-net is described by a few features read off the module's own
structure during an abstract trace (like models/counting.py), and latency = features .
coefficients with non-negative coefficients (scipy.optimize.nnls), fitted to minimise the
*relative* error (rows weighted by 1 / measured) on `num_fit` measured sub-nets: the space's
smallest and largest (so the range is covered) and random ones. It is validated on `num_val`
other random sub-nets never used in the fit: .validation holds the mean and max relative error
(goal: within 10%) and, for the record, the errors against the raw medians.

Why fitted rather than a per-layer lookup table: in the official space every stage's first
block and every head layer takes its shape from two or three width genes and the resolution, so
a table needs hundreds of distinct blocks exported and timed alone, and summed per-op times miss
what a whole graph shares (one thread pool, caches warm across ops, one invoke's overhead). A fit
on whole-net measurements needs a few dozen exports (minutes), sees those effects directly, and
its error is measured on whole nets, the quantity a budget constrains.

Features (FEATURES): MACs of dense convs (1x1 expand / project, the stem, the 1x1 output layers)
and of depthwise convs, each split by where the layer writes: at stride <= 8 ('_s8': large maps,
memory-bound, dearer per MAC) or at stride 16-32 ('_s16'); MACs of transposed convs (true
convention; all write at stride <= 8); the elements every conv writes times the input side
(memory traffic, dearer as the maps outgrow the caches: with the plain element count the fit
under-predicted 512-px sub-nets by 7% and over-predicted 320-px ones by 4% on average) and a
constant (the invoke and per-op overhead: depth is fixed within a space, so the number of ops is
too). The stride split cut the leave-one-out error over 64 sub-nets measured on a quiet machine
from 4.9% mean / 14.5% max to 4.1% / 10.9% (and 5.8% / 18.1% to 5.1% / 15.5% over 62 measured on
a busy one). The model is per (machine, threads, space, joints, fusion);
predict() of a sub-net of another space is an extrapolation.

Cache (build_latency_model): in `cache_dir`, `latency-<key>.jsonl` gets one line per measured
sub-net as soon as it is timed (a killed build resumes: only the missing sub-nets are measured)
and `latency-<key>.json` the fitted model; <key> hashes the machine_key (CPU model, cores,
LiteRT version, threads), the space, the joints and fusion. A rerun with the same settings loads
the json and measures nothing; other num_fit / num_val / seed refit, measuring only the sub-nets
not yet in the jsonl.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any
import warnings

import numpy as np

from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib
from litepose_jax.nas import space as space_lib
from litepose_jax.search import costs as costs_lib

# Bump when FEATURES or the fit change: a cached model of another version is refitted from its
# measurements (they stay valid), never reused.
MODEL_VERSION = 2
FEATURES = ('dense_macs_s8', 'dense_macs_s16', 'depthwise_macs_s8', 'depthwise_macs_s16',
            'deconv_macs', 'elements_x_side', 'constant')
# Layers writing at this stride or finer count as large-map ('_s8') MACs.
_LARGE_MAP_STRIDE = 8
# elements_x_side: elements written x img_size / this (any scale would do: _fit normalises).
_SIDE_UNIT = 512
# Row weights (see _fit) are 1 / measured ms; a sub-net measured at under this is refused, as it
# is no measurement of a network (a broken export, a clock problem).
_MIN_MS = 1e-3
# Sub-nets drawn for the fit / validation: how many consecutive duplicate draws to tolerate.
_MAX_REDRAWS = 1000


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise UserError(f'{name} must be an integer >= {minimum}, got {value!r}')
  return value


def _cpu_model() -> str:
  """The CPU's model name (Linux /proc/cpuinfo; else what platform knows)."""
  if os.path.isfile('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  return platform.processor() or platform.machine() or 'unknown CPU'


def machine_key(threads: int) -> str:
  """'<CPU model> | <n> cores | ai-edge-litert <version> | <threads> threads': what a latency
  measurement depends on besides the network."""
  _positive_int(threads, 'threads')
  try:
    litert = importlib.metadata.version('ai-edge-litert')
  except importlib.metadata.PackageNotFoundError:
    litert = 'unknown'
  return f'{_cpu_model()} | {os.cpu_count()} cores | ai-edge-litert {litert} | {threads} threads'


def _canonical(arch: Mapping[str, Any] | arch_lib.ArchSpec) -> str:
  """Sorted-key JSON of the architecture's official-schema dict (its name left out)."""
  if not isinstance(arch, (Mapping, arch_lib.ArchSpec)):
    raise UserError(f'arch must be an official-schema dict or an ArchSpec, got '
                    f'{type(arch).__name__}')
  return json.dumps(arch_lib.resolve_arch(arch).to_json_dict(), sort_keys=True)


class _Loaded:
  """A sub-net exported to fp32 TFLite (random weights) and loaded into LiteRT, ready to time.

  The .tflite and its sidecar live in a temporary folder for as long as this object does.
  """

  def __init__(self, canonical: str, num_joints: int, fusion: bool, threads: int):
    # Heavy imports (TensorFlow, LiteRT, jax): only when something is measured.
    from litepose_jax import joints as joints_lib
    from litepose_jax import models
    from litepose_jax.export import tflite
    from litepose_jax.inference import litert
    from litepose_jax.inference import sidecar
    spec = arch_lib.arch_from_dict(json.loads(canonical))
    module = models.create_model(spec, num_joints, fusion=fusion, depthwise_impl='lax')
    size = spec.img_size
    data = tflite.convert(tflite.export_fn(module, models.init_variables(module, size, 0)), size)
    # TFLiteModel reads a sidecar (joint names etc.); a custom joint count gets generic names.
    if num_joints in {js.num_joints for js in joints_lib.JOINT_SETS.values()}:
      joint_set = joints_lib.get_joint_set(num_joints)
    else:
      joint_set = joints_lib.custom_joint_set([f'joint{j}' for j in range(num_joints)],
                                              list(range(num_joints)))
    self._tmp = tempfile.TemporaryDirectory(prefix='litepose_latency_')
    path = os.path.join(self._tmp.name, 'subnet.tflite')
    with open(path, 'wb') as f:
      f.write(data)
    sidecar.write(path, sidecar.build(size=size, joint_set=joint_set, model_cfg=spec.to_json_dict(),
                                      quantization='none', source='search.latency',
                                      random_init=True))
    self.model = litert.TFLiteModel(path, threads)
    if self.model.delegate_partitions() != 1:
      # Ops outside XNNPACK would time TFLite's reference kernels, not the deployed runtime.
      raise RuntimeError(f'XNNPACK runs this sub-net in {self.model.delegate_partitions()} '
                         'partitions (expected 1): its latency would not be the deployed one')
    self.x = np.random.default_rng(0).normal(size=self.model.input_shape).astype(np.float32)

  def __call__(self) -> None:
    self.model.raw(self.x)

  def close(self) -> None:
    self._tmp.cleanup()


def _check_timing_args(threads: int, runs: int, warmup: int) -> None:
  _positive_int(threads, 'threads')
  _positive_int(runs, 'runs')
  _positive_int(warmup, 'warmup', 0)


def measure_ms(arch: Mapping[str, Any] | arch_lib.ArchSpec, num_joints: int = 14, *,
               threads: int = 2, runs: int = 20, warmup: int = 3, fusion: bool = True,
               model: LatencyModel | None = None) -> float:
  """Median network latency (ms) of `arch` exported to fp32 TFLite (random weights), run by
  LiteRT / XNNPACK on `threads` threads, batch 1, input [1, img_size, img_size, 3].

  model: measure on the latency model's scale instead (measure_paired against its reference
  sub-net, times the reference's quiet latency): what to compare with model.predict on a busy
  machine. Its threads / joints / fusion must be those given.
  """
  from litepose_jax.export import bench
  _check_timing_args(threads, runs, warmup)
  _positive_int(num_joints, 'num_joints')
  if model is not None:
    if (model.threads, model.num_joints, model.fusion) != (threads, num_joints, bool(fusion)):
      raise UserError(f'measure_ms: threads / num_joints / fusion {threads, num_joints, fusion} '
                      f'differ from the latency model\'s '
                      f'{model.threads, model.num_joints, model.fusion}')
    r = measure_paired(arch, model.reference['arch'], num_joints, threads=threads, runs=runs,
                       warmup=warmup, fusion=fusion)
    return r['ratio'] * model.reference['ms']
  net = _Loaded(_canonical(arch), num_joints, bool(fusion), threads)
  try:
    return float(bench.time_ms(net, runs, warmup)['median'])
  finally:
    net.close()


@functools.lru_cache(maxsize=2)
def _reference(canonical: str, num_joints: int, fusion: bool, threads: int) -> _Loaded:
  """The reference sub-net, exported once per process (every paired measurement times it)."""
  return _Loaded(canonical, num_joints, fusion, threads)


def measure_paired(arch: Mapping[str, Any] | arch_lib.ArchSpec,
                   reference: Mapping[str, Any] | arch_lib.ArchSpec, num_joints: int = 14, *,
                   threads: int = 2, runs: int = 20, warmup: int = 3,
                   fusion: bool = True) -> dict[str, float]:
  """{'ms', 'ref_ms', 'ratio'}: medians (ms) of `arch` and of `reference` timed in alternation,
  and the median of their per-run ratio.

  Other processes slow both alike within a run, so the ratio holds where the raw times swing
  on a busy shared machine (measured here: repeats minutes apart agree to ~3%, raw medians to
  ~11%; across a quarter of an hour of changing load to within ~10-20%, where raw medians moved
  2-4x). Each timed call follows an
  untimed one of the same net: the other interpreter's worker threads keep spinning for a
  while after its call (see scripts/bench_edge.py).
  """
  _check_timing_args(threads, runs, warmup)
  _positive_int(num_joints, 'num_joints')
  ref = _reference(_canonical(reference), num_joints, bool(fusion), threads)
  net = _Loaded(_canonical(arch), num_joints, bool(fusion), threads)
  try:
    for _ in range(warmup):
      net()
      ref()
    times: dict[str, list[float]] = {'ms': [], 'ref_ms': []}
    for _ in range(runs):
      for key, call in (('ms', net), ('ref_ms', ref)):
        call()
        t0 = time.perf_counter()
        call()
        times[key].append((time.perf_counter() - t0) * 1e3)
  finally:
    net.close()
  ratios = [a / b for a, b in zip(times['ms'], times['ref_ms'])]
  return {'ms': statistics.median(times['ms']), 'ref_ms': statistics.median(times['ref_ms']),
          'ratio': statistics.median(ratios)}


@functools.lru_cache(maxsize=65536)
def _features_cached(canonical: str, num_joints: int, fusion: bool) -> tuple[float, ...]:
  spec = arch_lib.arch_from_dict(json.loads(canonical))
  f = dict.fromkeys(FEATURES + ('elements_written',), 0.0)
  # The closed-form layer walk of costs.py (checked against the traced model there): features
  # are asked for every candidate a constrained search draws.
  for layer in costs_lib.layer_table(spec, num_joints, fusion):
    if layer.kind == 'deconv':
      f['deconv_macs'] += layer.macs
    else:
      kind = 'dense' if layer.kind == 'conv' else layer.kind
      large = layer.out_hw * _LARGE_MAP_STRIDE >= spec.img_size
      f[f'{kind}_macs_{"s8" if large else "s16"}'] += layer.macs
    f['elements_written'] += layer.out_hw ** 2 * layer.cout
  f['elements_x_side'] = f['elements_written'] * spec.img_size / _SIDE_UNIT
  f['constant'] = 1.0
  return tuple(float(f[k]) for k in FEATURES)


def features(arch: Mapping[str, Any] | arch_lib.ArchSpec, num_joints: int = 14, *,
             fusion: bool = True) -> np.ndarray:
  """The model's features of `arch` [len(FEATURES)] (MACs, elements, 1), memoised."""
  _positive_int(num_joints, 'num_joints')
  return np.asarray(_features_cached(_canonical(arch), num_joints, bool(fusion)), np.float64)


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Non-negative coefficients [F] minimising sum ((x @ c - y) / y)^2 over the rows of x [N, F]."""
  from scipy.optimize import nnls
  # Columns scaled to unit max so that MACs (1e9) and the constant (1) are solved alike.
  scale = np.abs(x).max(axis=0)
  scale[scale == 0] = 1.0
  a = x / scale / y[:, None]
  c, _ = nnls(a, np.ones_like(y))
  return c / scale


@dataclasses.dataclass
class LatencyModel:
  """Predicted network latency (ms) of a sub-net on one machine, at one thread count.

  coef: one non-negative coefficient per feature name in `features` (ms per unit);
  reference: {'arch', 'ms'}: the sub-net measurements were paired with and its quiet latency;
  validation: {'mean_rel_err', 'max_rel_err', 'n', 'raw_mean_rel_err', 'raw_max_rel_err',
  'points': [{'arch', 'measured_ms', 'predicted_ms', 'raw_ms'}]} on sub-nets not used in the
  fit (errors are fractions; raw_*: against the raw medians); fit: the build's settings, costs
  and errors on the fitted sub-nets.
  """
  coef: list[float]
  threads: int
  machine: str
  num_joints: int = 14
  fusion: bool = True
  reference: dict = dataclasses.field(default_factory=dict)
  features: tuple[str, ...] = FEATURES
  validation: dict = dataclasses.field(default_factory=dict)
  fit: dict = dataclasses.field(default_factory=dict)
  version: int = MODEL_VERSION

  def predict(self, arch: Mapping[str, Any] | arch_lib.ArchSpec) -> float:
    """Predicted median network latency (ms) of `arch` at its img_size."""
    if tuple(self.features) != FEATURES:
      raise UserError(f'this latency model uses features {tuple(self.features)}, this code '
                      f'computes {FEATURES}: rebuild it (build_latency_model)')
    return float(features(arch, self.num_joints, fusion=self.fusion) @ np.asarray(self.coef))

  def to_dict(self) -> dict:
    """JSON-able dict (from_dict's input)."""
    d = dataclasses.asdict(self)
    d['features'] = list(self.features)
    return d

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> LatencyModel:
    """Inverse of to_dict; UserError when a field is missing or the version is another."""
    if not isinstance(d, Mapping):
      raise UserError(f'a latency model must be a dict, got {type(d).__name__}')
    missing = [k for k in ('coef', 'threads', 'machine', 'reference', 'features', 'version')
               if k not in d]
    if missing:
      raise UserError(f'latency model: missing field(s) {missing}')
    if d['version'] != MODEL_VERSION:
      raise UserError(f'latency model: version {d["version"]!r}, this code reads '
                      f'{MODEL_VERSION}: rebuild it (build_latency_model)')
    if not isinstance(d['reference'], Mapping) or not {'arch', 'ms'} <= set(d['reference']):
      raise UserError(f'latency model: reference must hold its arch and ms, got '
                      f'{d["reference"]!r}')
    if len(d['coef']) != len(d['features']):
      raise UserError(f'latency model: {len(d["coef"])} coefficients for '
                      f'{len(d["features"])} features')
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in d.items() if k in known}
    kwargs['features'] = tuple(d['features'])
    kwargs['coef'] = [float(c) for c in d['coef']]
    return cls(**kwargs)


def _points(space: space_lib.SearchSpace, n: int, seed: int) -> list[dict]:
  """n distinct sub-nets: the smallest, the largest, then seeded random draws."""
  out, seen = [], set()
  for arch in (space_lib.smallest(space), space_lib.largest(space)):
    if _canonical(arch) not in seen:
      seen.add(_canonical(arch))
      out.append(arch)
  step, redraws = 0, 0
  while len(out) < n:
    arch = space_lib.sample(space, (seed, step))
    step += 1
    key = _canonical(arch)
    if key in seen:
      redraws += 1
      if redraws > _MAX_REDRAWS:
        raise UserError(f'could not draw {n} distinct sub-nets from this space (it has '
                        f'{space_lib.space_size(space)}): lower num_fit + num_val')
      continue
    redraws = 0
    seen.add(key)
    out.append(arch)
  return out[:n]


def _cache_key(machine: str, space: space_lib.SearchSpace, num_joints: int, fusion: bool) -> dict:
  key = {'machine': machine, 'space': space_lib.space_to_json(space), 'num_joints': num_joints,
         'fusion': fusion}
  # As it reads back from the json (tuples become lists), so that a cached key compares equal.
  return json.loads(json.dumps(key))


def cache_paths(cache_dir: str, key: Mapping[str, Any]) -> tuple[str, str]:
  """(model json, measurements jsonl) paths in cache_dir for a cache key."""
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  stem = os.path.join(cache_dir, f'latency-{digest}')
  return stem + '.json', stem + '.jsonl'


def _read_measurements(path: str) -> dict[tuple[str, ...], dict]:
  """{(canonical arch, canonical reference, runs, warmup): row} from the jsonl; a torn last line
  (a kill during the write) is cut off with a warning, any other bad line is an error."""
  out: dict[tuple[str, ...], dict] = {}
  if not os.path.exists(path):
    return out
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  good = 0  # bytes of the complete, valid lines so far
  for n, line in enumerate(lines, 1):
    last = n == len(lines)
    if line.strip():
      try:
        rec = json.loads(line)
        key = _row_key(rec['arch'], rec['reference'], int(rec['runs']), int(rec['warmup']))
        rec = {k: float(rec[k]) for k in ('ms', 'ref_ms', 'ratio', 'seconds')}
      except (ValueError, KeyError, TypeError, UserError) as e:
        if last:
          warnings.warn(f'{path}:{n}: incomplete last line (an interrupted write) dropped: that '
                        'sub-net is measured again', stacklevel=3)
          with open(path, 'r+b') as f:
            f.truncate(good)
          break
        raise UserError(f'{path}:{n}: not a latency measurement ({e}); remove the file to '
                        'measure afresh') from e
      out[key] = rec
    good += len(line) + (0 if last else 1)
  return out


def _row_key(arch, reference, runs: int, warmup: int) -> tuple[str, ...]:
  return (_canonical(arch), _canonical(reference), str(runs), str(warmup))


def reference_arch(space: space_lib.SearchSpace) -> dict:
  """The sub-net every measurement of a build is paired with: mid widths, mid resolution
  (official: 0.5 x at 384 px, ~30 ms on 2 threads, inside the 256-512 px range's latencies)."""
  mults = sorted(space.width_mults)
  resolutions = sorted(space.resolutions)
  return space_lib.uniform(space, mults[(len(mults) - 1) // 2],
                           resolutions[(len(resolutions) - 1) // 2])


def build_latency_model(space: space_lib.SearchSpace, num_joints: int = 14, *, threads: int = 2,
                        cache_dir: str, num_fit: int = 24, num_val: int = 8, seed: int = 0,
                        runs: int = 20, warmup: int = 3, fusion: bool = True,
                        progress: bool = True) -> LatencyModel:
  """Measures num_fit + num_val sub-nets of `space` (cached), fits and validates a LatencyModel.

  See the module docstring for the measurements, the model and the cache. .fit holds the
  build's settings, the seconds spent measuring in this call ('measure_s') and in all
  ('measure_total_s', the build's cost however often it was resumed) and the fit's own errors.
  """
  if not isinstance(space, space_lib.SearchSpace):
    raise UserError(f'space must be a SearchSpace, got {type(space).__name__}')
  _positive_int(num_joints, 'num_joints')
  _positive_int(num_fit, f'num_fit (at least one sub-net per feature, {len(FEATURES)})',
                len(FEATURES))
  _positive_int(num_val, 'num_val')
  _positive_int(seed, 'seed', 0)
  _check_timing_args(threads, runs, warmup)
  if not isinstance(cache_dir, (str, os.PathLike)) or not os.fspath(cache_dir):
    raise UserError(f'cache_dir must be a folder path, got {cache_dir!r}')
  if num_fit + num_val > space_lib.space_size(space):
    raise UserError(f'num_fit + num_val = {num_fit + num_val} exceeds the '
                    f'{space_lib.space_size(space)} sub-nets of this space')
  cache_dir = os.fspath(cache_dir)
  if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
    raise UserError(f'cache_dir {cache_dir} exists and is not a folder')
  os.makedirs(cache_dir, exist_ok=True)
  fusion = bool(fusion)
  machine = machine_key(threads)
  key = _cache_key(machine, space, num_joints, fusion)
  json_path, jsonl_path = cache_paths(cache_dir, key)
  settings = {'num_fit': num_fit, 'num_val': num_val, 'seed': seed, 'runs': runs,
              'warmup': warmup}
  if os.path.exists(json_path):
    with open(json_path) as f:
      try:
        cached = json.load(f)
      except json.JSONDecodeError as e:
        raise UserError(f'{json_path}: not valid JSON ({e}); remove it to refit') from e
    if (cached.get('version') == MODEL_VERSION and cached.get('key') == key
        and cached.get('settings') == settings
        and tuple(cached.get('model', {}).get('features', ())) == FEATURES):
      model = LatencyModel.from_dict(cached['model'])
      model.fit = dict(model.fit, measure_s=0.0, cached=True)
      return model

  reference = reference_arch(space)
  points = _points(space, num_fit + num_val, seed)
  rows = _read_measurements(jsonl_path)
  # Fit and validation sub-nets measured in a shuffled order: the ratios drift a little as the
  # machine's load changes, and that drift must not fall on the validation set alone.
  order = np.random.default_rng(seed).permutation(len(points))
  todo = [points[i] for i in order if _row_key(points[i], reference, runs, warmup) not in rows]
  t0 = time.perf_counter()
  if todo:
    from tqdm import tqdm
    bar = tqdm(todo, desc=f'latency ({threads} threads)', unit='net', disable=not progress)
    for arch in bar:
      t1 = time.perf_counter()
      r = measure_paired(arch, reference, num_joints, threads=threads, runs=runs, warmup=warmup,
                         fusion=fusion)
      if not min(r.values()) > _MIN_MS:
        raise RuntimeError(f'measured {r} for {arch}: not a plausible network latency')
      row = dict(r, seconds=time.perf_counter() - t1)
      # One line per measurement, written at once: a kill loses at most the net being timed.
      with open(jsonl_path, 'a') as f:
        f.write(json.dumps(dict(row, arch=arch, reference=reference, runs=runs, warmup=warmup,
                                machine=machine)) + '\n')
      rows[_row_key(arch, reference, runs, warmup)] = row
      bar.set_postfix_str(f'{arch["img_size"]} px {r["ms"]:.1f} ms')
  measure_s = time.perf_counter() - t0

  used = [rows[_row_key(a, reference, runs, warmup)] for a in points]
  # The reference's quiet latency: its fastest median in every measurement of this cache
  # (other processes only ever slow it down, and one build may never see the machine quiet).
  # Every measurement is its ratio to the reference times this.
  ref_key = _canonical(reference)
  ref_ms = min(r['ref_ms'] for k, r in rows.items() if k[1] == ref_key)
  x = np.stack([features(a, num_joints, fusion=fusion) for a in points])
  y = np.asarray([r['ratio'] for r in used]) * ref_ms
  raw = np.asarray([r['ms'] for r in used])
  coef = _fit(x[:num_fit], y[:num_fit])
  pred = x @ coef
  err = np.abs(pred - y) / y
  raw_err = np.abs(pred - raw) / raw
  val = slice(num_fit, None)
  validation = {
      'mean_rel_err': float(err[val].mean()), 'max_rel_err': float(err[val].max()),
      'n': int(num_val),
      'raw_mean_rel_err': float(raw_err[val].mean()),
      'raw_max_rel_err': float(raw_err[val].max()),
      'points': [{'arch': a, 'measured_ms': float(m), 'predicted_ms': float(p),
                  'raw_ms': float(r)}
                 for a, m, p, r in zip(points[val], y[val], pred[val], raw[val])]}
  model = LatencyModel(
      coef=[float(c) for c in coef], threads=threads, machine=machine, num_joints=num_joints,
      fusion=fusion, reference={'arch': reference, 'ms': float(ref_ms)}, validation=validation,
      fit={'settings': settings, 'measure_s': measure_s,
           'measure_total_s': float(sum(r['seconds'] for r in used)),
           'mean_rel_err': float(err[:num_fit].mean()),
           'max_rel_err': float(err[:num_fit].max())})
  from litepose_jax.evaluation import split as split_lib  # pylint: disable=g-import-not-at-top
  split_lib.write_json(json_path, {'version': MODEL_VERSION, 'key': key, 'settings': settings,
                                   'model': model.to_dict()}, indent=1)
  return model
