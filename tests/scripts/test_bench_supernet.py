"""scripts/bench_supernet.py on a shallow super-net: every figure is printed, nothing recompiles."""
import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_prints_every_figure_with_one_compilation_each(capsys):
  spec = importlib.util.spec_from_file_location('bench_supernet',
                                                ROOT / 'scripts' / 'bench_supernet.py')
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  assert bench.main([
      '--size', '64', '--batch', '2', '--steps', '3', '--warmup', '1', '--calib-batches', '2',
      '--config.supernet.space.depths=(1,1,1,1)', '--config.supernet.space.supernet_depths=(1,2,1,1)',
      '--config.model.depthwise_impl=lax', '--config.model.conv_impl=lax']) == 0
  out = capsys.readouterr().out
  assert 'largest standalone step' in out
  for policy in ('official', 'sandwich'):
    # A new sub-net at every one of the 4 steps, and still one compilation.
    assert re.search(rf'super-net step, {policy} .* \d\.\d\dx .*1 compilation\(s\)', out), out
  assert re.search(r'recalibrate \(2 batches\) \+ inference .*\(1 compilation', out), out
