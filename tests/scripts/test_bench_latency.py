"""scripts/bench_latency.py on the tiny space: the validation table, errors and build time printed;
a rerun loads the cache and measures nothing."""
import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _script():
  spec = importlib.util.spec_from_file_location('bench_latency',
                                                ROOT / 'scripts' / 'bench_latency.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_prints_the_validation_table_then_reuses_the_cache(tmp_path, capsys, monkeypatch):
  bench = _script()
  args = ['--space', 'tiny', '--num-fit', '7', '--num-val', '2', '--runs', '3', '--warmup', '1',
          '--out', str(tmp_path), '--no-progress']
  assert bench.main(args) == 0
  out = capsys.readouterr().out
  rows = re.findall(r'^\| (64|96) C0 \d+ F [\d/]+ C [\d/]+ \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \| '
                    r'[+-][\d.]+% \|$', out, re.M)
  assert len(rows) == 2 and all(float(m) > 0 and float(p) > 0 for _, m, p in rows), out
  assert re.search(r'validation: mean relative error [\d.]+%, max [\d.]+%', out), out
  assert re.search(r'build: \d+ s \(\d+ s measuring\); the 9 measurements took \d+ s', out), out
  assert re.search(r'scale: paired with 64 C0 .* quiet latency [\d.]+ ms', out), out
  assert list((tmp_path / 'latency_cache').glob('latency-*.jsonl'))

  from litepose_jax.search import latency

  def boom(*args, **kwargs):
    raise AssertionError('measured again')
  monkeypatch.setattr(latency, 'measure_paired', boom)
  assert bench.main(args) == 0
  again = capsys.readouterr().out
  assert 'nothing measured (cached)' in again
  assert re.findall(r'^\|.*%', again, re.M) == re.findall(r'^\|.*%', out, re.M)


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
  assert _script().main(['--space', 'tiny', '--threads', '0', '--out', str(tmp_path)]) == 2
  assert 'threads' in capsys.readouterr().err
