"""Huge-page malloc: environment logic, the re-exec, and that it really cuts page faults."""
import os
import subprocess
import sys
import textwrap

from litepose_jax import host_memory


def _run(code, env):
  out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=env, check=True,
                       capture_output=True, text=True, timeout=120)
  return out.stdout.strip()


def _clean_env(**extra):
  env = {k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', host_memory.OPT_OUT)}
  env.update(extra)
  return env


def test_tuned_environ_adds_keeps_and_respects_opt_out(monkeypatch):
  monkeypatch.setattr(host_memory, 'hugepage_malloc_supported', lambda: True)
  assert host_memory.tuned_environ({'A': '1'}) == {'A': '1', 'GLIBC_TUNABLES': host_memory.TUNABLE}
  other = 'glibc.malloc.arena_max=2'
  env = host_memory.tuned_environ({'GLIBC_TUNABLES': other})
  assert env['GLIBC_TUNABLES'] == f'{other}:{host_memory.TUNABLE}'
  assert host_memory.tuned_environ({'GLIBC_TUNABLES': env['GLIBC_TUNABLES']}) is None
  assert host_memory.tuned_environ({host_memory.OPT_OUT: '1'}) is None
  # A value the user chose for one of our tunables is kept; the others are added.
  mine = 'glibc.malloc.mmap_threshold=1000'
  env = host_memory.tuned_environ({'GLIBC_TUNABLES': mine})
  assert env['GLIBC_TUNABLES'].split(':') == [mine, host_memory.TUNABLES[0], host_memory.TUNABLES[2]]
  monkeypatch.setattr(host_memory, 'hugepage_malloc_supported', lambda: False)
  assert host_memory.tuned_environ({'A': '1'}) is None


def test_reexec_sets_the_tunable_once():
  code = """
      import os
      from litepose_jax import host_memory
      print('start', flush=True)
      host_memory.reexec_with_hugepage_malloc()
      print(os.environ.get('GLIBC_TUNABLES'))
  """
  out = _run(code, _clean_env()).splitlines()
  if host_memory.hugepage_malloc_supported():
    assert out == ['start', 'start', host_memory.TUNABLE]  # one re-exec, then it stays
  else:
    assert out == ['start', 'None']
  assert _run(code, _clean_env(**{host_memory.OPT_OUT: '1'})).splitlines() == ['start', 'None']


def _faults(env, size_mb, blocks=1, rounds=8, skip=0):
  """Minor page faults of rounds (after the first `skip`) that malloc `blocks` blocks of size_mb
  MiB, touch every byte and free them all, in a fresh process with `env`."""
  code = f"""
      import ctypes, resource
      libc = ctypes.CDLL(None)
      libc.malloc.restype = ctypes.c_void_p
      libc.free.argtypes = [ctypes.c_void_p]
      n = {size_mb} << 20
      faults = []
      for _ in range({rounds}):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        held = [libc.malloc(n) for _ in range({blocks})]
        for p in held:
          ctypes.memset(p, 1, n)
        for p in held:
          libc.free(p)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
      print(sum(faults[{skip}:]))
  """
  return int(_run(code, env))


def test_huge_pages_cut_page_faults_of_large_mallocs():
  # What XLA:CPU does every step: malloc a large block, touch it, free it.
  plain = _faults(_clean_env(), 64)
  tuned = _faults(_clean_env(GLIBC_TUNABLES=host_memory.TUNABLE), 64)
  assert plain >= 8 * (64 << 20) // 4096 * 0.9  # every 4 KiB page of every block faults
  if host_memory.hugepage_malloc_supported():
    assert tuned * 20 < plain, (tuned, plain)


def test_heap_thresholds_keep_the_pages_of_repeated_temporaries():
  # What decoding does per image: several arrays of ~11 MB at once, then all freed. glibc's
  # adaptive thresholds trim the freed heap top, so every call faults the pages in again.
  huge_only = _faults(_clean_env(GLIBC_TUNABLES=host_memory.TUNABLES[0]), 11, blocks=4, skip=2)
  tuned = _faults(_clean_env(GLIBC_TUNABLES=host_memory.TUNABLE), 11, blocks=4, skip=2)
  if host_memory.hugepage_malloc_supported():  # glibc: the tunables exist (the CI machine)
    assert tuned * 10 < max(huge_only, 10), (tuned, huge_only)
