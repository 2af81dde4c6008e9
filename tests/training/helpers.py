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
