"""A generation's candidates scored in parallel over every device and host of the run.

Candidates are independent, so the split is by candidate, not by batch: candidate k goes to
global device k % jax.device_count(); each process runs one thread per local device (jax
releases the GIL while a device computes), each thread scoring its device's candidates one after
another with Fitness.score(arch, device). Every candidate is computed entirely on one device by
the same programs, so its score does not depend on how many devices or hosts there are: the
result equals one device's. The processes then exchange their scores (an all-gather), so each
returns the full list, in the order of `archs`.

Multi-host runs call `initialize_distributed` first (the trainer's jax.distributed set-up).
Bit-for-bit equal to one device where every device runs the same executable (CPU, TPU); on
GPUs each process autotunes its convolutions by timing and may pick other algorithms (scores then
agree to float noise); XLA_FLAGS=--xla_gpu_autotune_level=0 makes the choice fixed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import queue
import threading

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from litepose_jax.search import fitness as fitness_lib


def initialize_distributed(coordinator_address: str = '', num_processes: int = 1,
                           process_id: int = 0) -> None:
  """jax.distributed.initialize over coordinator_address ('host:port'); a no-op for ''."""
  if not coordinator_address:
    return
  # The trainer's set-up (CPU collectives for CPU-only runs included), not a second copy of it.
  from litepose_jax.training import trainer  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({'distributed': {
      'auto': False, 'coordinator_address': coordinator_address,
      'num_processes': int(num_processes), 'process_id': int(process_id),
      'cpu_collectives': 'gloo'}})
  trainer.initialize_distributed(config)


def assignment(num_archs: int) -> list:
  """The global device of each candidate: candidate k on jax.devices()[k % device_count]."""
  devices = jax.devices()
  return [devices[k % len(devices)] for k in range(num_archs)]


def score_many(fitness: fitness_lib.Fitness, archs: Sequence[dict],
               done: Callable[[int, float], None] | None = None) -> list[float]:
  """Scores of `archs` (AP fractions, in order), spread over all devices of all processes.

  done(i, score) is called in this (the calling) thread as each score is known: this process's
  own candidates as they finish, the other processes' after the exchange. Every process must
  call score_many with the same archs (the evolution's draws are seeded, so they do).
  """
  archs = list(archs)
  if not archs:
    return []
  owners = assignment(len(archs))
  me = jax.process_index()
  mine: dict = {}
  for k, device in enumerate(owners):
    if device.process_index == me:
      mine.setdefault(device, []).append(k)
  scores = np.full(len(archs), np.nan, np.float64)
  reported = np.zeros(len(archs), bool)

  def report(k: int, value: float) -> None:
    scores[k] = value
    if done is not None and not reported[k]:
      done(k, value)
    reported[k] = True

  if len(mine) == 1:
    # One local device: no threads to start.
    (device, ks), = mine.items()
    for k in ks:
      report(k, fitness.score(archs[k], device))
  elif mine:
    _score_threaded(fitness, archs, mine, report)
  if jax.process_count() > 1:
    for k, value in enumerate(_all_gather(scores, owners)):
      report(k, value)
  return [float(s) for s in scores]


def _score_threaded(fitness: fitness_lib.Fitness, archs: list[dict], mine: dict,
                    report: Callable[[int, float], None]) -> None:
  """One thread per local device; results reported from the calling thread as they come."""
  results: queue.Queue = queue.Queue()

  def work(device, ks):
    for k in ks:
      try:
        results.put((k, fitness.score(archs[k], device), None))
      except BaseException as e:  # noqa: BLE001 -- re-raised in the calling thread below
        results.put((k, None, e))
        return

  threads = [threading.Thread(target=work, args=(d, ks), daemon=True, name=f'fitness-{d}')
             for d, ks in mine.items()]
  for t in threads:
    t.start()
  expected = sum(len(ks) for ks in mine.values())
  error = None
  received = 0
  while received < expected and error is None:
    k, value, exc = results.get()
    received += 1
    if exc is not None:
      error = exc
    else:
      report(k, value)
  if error is not None:
    # The other threads finish their current candidate and stop at the next (daemon threads:
    # a stuck device does not keep the process alive).
    raise error
  for t in threads:
    t.join()


def _all_gather(scores: np.ndarray, owners: list) -> np.ndarray:
  """Every process's scores of its own candidates, merged: the full list on every process."""
  # float64 through the 32-bit words that jax carries without x64: the scores stay exact.
  words = np.ascontiguousarray(scores, np.float64).view(np.uint32)
  gathered = np.asarray(multihost_utils.process_allgather(words))  # [processes, 2 * n]
  per_process = gathered.reshape(jax.process_count(), -1).view(np.float64)
  return np.array([per_process[d.process_index, k] for k, d in enumerate(owners)], np.float64)
