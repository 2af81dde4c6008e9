"""Host memory for XLA:CPU: back glibc malloc with transparent huge pages.

XLA:CPU mallocs each execution's temporaries afresh (~1 GB for a LitePose-XS train step at
128 px, batch 16), and glibc maps such large blocks straight from the kernel and unmaps them on
free, so every step faults ~240k fresh 4 KiB pages in: ~40% of the step's CPU time is spent in
the kernel. glibc >= 2.35 can ask for transparent huge pages instead
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`): 2 MiB pages, ~300x fewer faults, a ~1.4x faster CPU
train step (docs/BENCHMARKS.md). glibc reads tunables only at process start, so the `litepose`
command and the benchmark scripts re-execute themselves once with the tunable set.
Set LITEPOSE_NO_HUGEPAGES=1 to keep the process as started.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Mapping

TUNABLE = 'glibc.malloc.hugetlb=1'
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


def hugepage_malloc_active(environ: Mapping[str, str] | None = None) -> bool:
  """True when this process was started with the huge-page tunable."""
  environ = os.environ if environ is None else environ
  return TUNABLE in environ.get('GLIBC_TUNABLES', '').split(':')


def tuned_environ(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
  """The environment to re-execute with, or None when there is nothing to change."""
  environ = os.environ if environ is None else environ
  if environ.get(OPT_OUT) or hugepage_malloc_active(environ) or not hugepage_malloc_supported():
    return None
  env = dict(environ)
  old = env.get('GLIBC_TUNABLES')
  env['GLIBC_TUNABLES'] = f'{old}:{TUNABLE}' if old else TUNABLE
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
