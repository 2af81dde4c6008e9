"""Imports only go one way: no cycles, and no module imports a layer above its own.

Every module of litepose_jax/ is parsed with `ast`; imports at module level and inside functions
both count. The layers are the table of docs/ARCHITECTURE.md ("Import layers"), which this test
also checks against LAYERS so that the document and the code agree.
"""
import ast
import graphlib
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'litepose_jax'

# Layer of each top-level module or sub-package (a module may import its own layer and below).
LAYERS = {
    'errors': 0, 'joints': 0, 'config_files': 0, 'host_memory': 0,
    'data': 1,
    'models': 2,
    'checkpoints': 3, 'convert': 3, 'torch_import': 3, 'reference': 3, 'nas': 3,
    'inference': 4,
    'evaluation': 5,
    'export': 6,
    'training': 7, 'search': 7,
    'cli': 8,
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def _resolve(name: str, modules) -> str | None:
  """The package module that `import name` runs last (a submodule, else its package)."""
  while name and name not in modules:
    name = name.rpartition('.')[0]
  return name or None


def _imports(name: str, path: pathlib.Path, modules) -> set[str]:
  """Package modules imported anywhere in the module `name` (module level or in functions)."""
  is_package = path.name == '__init__.py'
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # relative: from the module's package, one level up per extra dot
        package = name if is_package else name.rpartition('.')[0]
        for _ in range(node.level - 1):
          package = package.rpartition('.')[0]
        base = f'{package}.{base}' if base else package
      # `from pkg import sub` imports the submodule pkg.sub when there is one.
      targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base for a in node.names]
    else:
      continue
    for t in targets:
      if t == 'litepose_jax' or t.startswith('litepose_jax.'):
        resolved = _resolve(t, modules)
        if resolved and resolved != name:
          found.add(resolved)
  return found


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: _imports(name, path, modules) for name, path in modules.items()}


def layer(module: str) -> int:
  """The layer of a package module (the package root itself is layer 0)."""
  parts = module.split('.')
  if len(parts) == 1:
    return 0
  if parts[1] not in LAYERS:
    raise AssertionError(f'{module} is in no layer: add litepose_jax.{parts[1]} to LAYERS here '
                         'and to the "Import layers" table of docs/ARCHITECTURE.md')
  return LAYERS[parts[1]]


def test_the_graph_sees_imports_everywhere():
  graph = _graph()
  # Module level, function level (cli's command registry is by name, not an import) and relative.
  assert 'litepose_jax.inference.parser' in graph['litepose_jax.inference']
  assert 'litepose_jax.inference.predictor' in graph['litepose_jax.inference']  # in __getattr__
  assert 'litepose_jax.errors' in graph['litepose_jax.cli']
  assert len(graph) > 40


def test_no_import_cycles():
  try:
    tuple(graphlib.TopologicalSorter(_graph()).static_order())
  except graphlib.CycleError as e:
    pytest.fail('import cycle: ' + ' -> '.join(e.args[1]))


def test_no_upward_imports():
  upward = [f'{a} (layer {layer(a)}) imports {b} (layer {layer(b)})'
            for a, targets in sorted(_graph().items()) for b in sorted(targets)
            if layer(b) > layer(a)]
  assert not upward, 'imports against the layer order:\n' + '\n'.join(upward)


def test_architecture_doc_lists_the_layers():
  text = (REPO / 'docs' / 'ARCHITECTURE.md').read_text()
  section = text.split('## Import layers', 1)[1].split('\n## ', 1)[0]
  documented = {}
  for number, names in re.findall(r'^\s*(\d)\s{2,}(.+)$', section, re.M):
    for entry in re.split(r',\s*', names.split('  ')[0].strip()):
      documented[entry.strip().rstrip('/').removesuffix('.py')] = int(number)
  assert documented == LAYERS
