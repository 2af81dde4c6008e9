"""`litepose bench`: timing helper and the command on a small exported model."""
import pytest

from litepose_jax import cli as litepose_cli
from litepose_jax.export import bench


def test_time_ms_counts_runs():
  calls = []
  t = bench.time_ms(lambda: calls.append(1), runs=4, warmup=2)
  assert len(calls) == 6
  assert 0 <= t['min'] <= t['median'] <= t['max']
  with pytest.raises(ValueError, match='--runs'):
    bench.time_ms(lambda: None, runs=0, warmup=0)


@pytest.mark.parametrize('group_at', ['input', 'stride2'])
def test_benchmark_times_the_predictor(xs_fp32, group_at):
  r = bench.benchmark(str(xs_fp32), threads=1, runs=2, warmup=1, group_at=group_at)
  assert r['size'] == 64 and r['quantization'] == 'none' and r['group_at'] == group_at
  for key in ('network', 'e2e', 'e2e_flip'):
    assert 0 < r[key]['min'] <= r[key]['median'] <= r[key]['max']
  for key in ('e2e', 'e2e_flip'):
    stages = r[key + '_stages']
    assert set(stages) == {'preprocess', 'network', 'decode'} and min(stages.values()) > 0
  assert 'e2e' not in bench.benchmark(str(xs_fp32), threads=1, runs=1, warmup=0, e2e=False)


def test_bench_command(xs_fp32, capsys):
  rc = litepose_cli.main(['bench', '--tflite', str(xs_fp32), '--runs', '2', '--warmup', '0',
                          '--threads', '1'])
  out = capsys.readouterr().out
  assert rc == 0
  assert 'network' in out and 'end to end, flip' in out and 'decode' in out
  assert 'grouping at the input resolution' in out
  assert 'partitions' not in out  # an exported graph is one XNNPACK partition
  rc = litepose_cli.main(['bench', '--tflite', str(xs_fp32), '--runs', '1', '--warmup', '0',
                          '--threads', '1', '--group-at', 'stride2'])
  assert rc == 0 and 'grouping at the stride-2 maps' in capsys.readouterr().out


def test_bench_errors(tmp_path, capsys):
  assert litepose_cli.main(['bench', '--tflite', str(tmp_path / 'x.tflite')]) == 2
  assert 'not found' in capsys.readouterr().err


def test_bench_warns_about_a_split_graph(xs_fp32, capsys, monkeypatch):
  from litepose_jax.export import runtime
  monkeypatch.setattr(runtime.TFLiteModel, 'delegate_partitions', lambda self: 35)
  rc = litepose_cli.main(['bench', '--tflite', str(xs_fp32), '--runs', '1', '--warmup', '0',
                          '--threads', '1', '--no-e2e'])
  assert rc == 0 and 'XNNPACK runs this graph in 35 partitions' in capsys.readouterr().out
