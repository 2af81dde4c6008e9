"""Host memory for XLA:CPU: back glibc malloc with transparent huge pages.

XLA:CPU mallocs each execution's temporaries afresh (~1 GB for a LitePose-XS train step at
128 px, batch 16), and glibc maps such large blocks straight from the kernel and unmaps them on
free, so every step faults ~240k fresh 4 KiB pages in: ~40% of the step's CPU time is spent in
the kernel. glibc >= 2.35 can ask for transparent huge pages instead
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`): 2 MiB pages, ~300x fewer faults, a ~1.4x faster CPU
train step (docs/BENCHMARKS.md).

Inference has the same problem at a smaller scale: decoding and stage fusion make numpy / OpenCV
temporaries of 1-32 MB (an input-resolution heatmap of 448 x 448 x 14 is 11 MB). glibc's default
thresholds adapt to the largest block freed and then trim the heap top once more than twice that
is free, so a call that frees several such arrays hands their pages back and the next call
faults them in again. A fixed mmap threshold of 32 MiB (glibc's maximum) keeps those blocks on
the heap and a trim threshold of 64 MiB keeps their pages: `litepose bench` S int8 end to end
42-46 -> 36-37 ms (decode 13-14 -> 8 ms); the training step does not change (docs/BENCHMARKS.md).

glibc reads tunables only at process start, so the `litepose` command and the benchmark scripts
re-execute themselves once with the tunables set (a value the user set for one of them is kept).
Set LITEPOSE_NO_HUGEPAGES=1 to keep the process as started.
"""
from __future__ import annotations

from collections.abc import Mapping
import os
import platform
import sys

TUNABLES = ('glibc.malloc.hugetlb=1', 'glibc.malloc.mmap_threshold=33554432',
            'glibc.malloc.trim_threshold=67108864')
TUNABLE = ':'.join(TUNABLES)
OPT_OUT = 'LITEPOSE_NO_HUGEPAGES'
_THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled'
_MIN_GLIBC = (2, 35)  # first glibc with the malloc.hugetlb tunable


def hugepage_malloc_supported() -> bool:
  """True on Linux with glibc >= 2.35 and transparent huge pages not switched off."""
  if not sys.platform.startswith('linux'):
    return False
  libc, version = platform.libc_ver()
  try:
    glibc = tuple(int(v) for v in version.split('.')[:2])
  except ValueError:
    return False
  if libc != 'glibc' or glibc < _MIN_GLIBC:
    return False
  try:
    with open(_THP_SETTING) as f:
      return '[never]' not in f.read()
  except OSError:
    return False


def _missing(environ: Mapping[str, str]) -> list[str]:
  """Our tunables whose name the environment's GLIBC_TUNABLES does not set yet."""
  have = {t.split('=')[0] for t in environ.get('GLIBC_TUNABLES', '').split(':') if t}
  return [t for t in TUNABLES if t.split('=')[0] not in have]


def hugepage_malloc_active(environ: Mapping[str, str] | None = None) -> bool:
  """True when this process was started with the huge-page tunable."""
  environ = os.environ if environ is None else environ
  return TUNABLES[0] in environ.get('GLIBC_TUNABLES', '').split(':')


def tuned_environ(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
  """The environment to re-execute with, or None when there is nothing to change."""
  environ = os.environ if environ is None else environ
  missing = _missing(environ)
  if environ.get(OPT_OUT) or not missing or not hugepage_malloc_supported():
    return None
  env = dict(environ)
  old = env.get('GLIBC_TUNABLES')
  env['GLIBC_TUNABLES'] = ':'.join(([old] if old else []) + missing)
  return env


def reexec_with_hugepage_malloc() -> None:
  """Replaces this process by the same command with huge-page malloc, if that changes anything.

  Call it first thing in an entry point (before anything is printed or computed); it returns
  when the tunable is already set, unsupported here, or opted out.
  """
  env = tuned_environ()
  args = getattr(sys, 'orig_argv', None)
  if env is None or not args or len(args) < 2:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *args[1:]], env)
