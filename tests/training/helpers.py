"""Shared helpers of the training tests."""


def set_fields(cfg, **fields):
  """Sets dotted config fields given with '.' spelled as keyword names, e.g.
  set_fields(cfg, **{'eval.enabled': False}); returns cfg."""
  for key, value in fields.items():
    node = cfg
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return cfg


def free_port() -> int:
  """A TCP port on localhost that nothing listens on now (a jax.distributed coordinator)."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def communicate_all(procs, timeout: float) -> list[str]:
  """The output of every subprocess (text, stderr merged), all killed if one outlasts timeout;
  asserts each exited with 0, showing the end of its output otherwise."""
  import subprocess  # pylint: disable=g-import-not-at-top
  outs = []
  for p in procs:
    try:
      out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    outs.append(out)
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  return outs
