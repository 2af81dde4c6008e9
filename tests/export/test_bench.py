"""`litepose bench`: timing helper and the command on a small exported model."""
import numpy as np
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


def test_benchmark_decodes(xs_fp32):
  r = bench.benchmark(str(xs_fp32), threads=1, runs=2, warmup=1)
  assert r['size'] == 64 and r['quantization'] == 'none'
  assert r['decoded'] is True
  for key in ('network', 'e2e', 'e2e_flip'):
    assert 0 < r[key]['min'] <= r[key]['median'] <= r[key]['max']
  assert 'e2e' not in bench.benchmark(str(xs_fp32), threads=1, runs=1, warmup=0, e2e=False)


def test_decoder_flip_symmetry(xs_fp32):
  from litepose_jax.export import runtime
  model = runtime.TFLiteModel(xs_fp32, num_threads=1)
  decode = bench._decoder(model)
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  out = model(x)
  poses, scores = decode(*out)
  assert poses.ndim == 3 and poses.shape[1:] == (14, 3) and len(scores) == len(poses)
  poses_f, _ = decode(*out, flipped=model(np.ascontiguousarray(x[:, :, ::-1])))
  assert poses_f.shape[1:] == (14, 3)


def test_bench_command(xs_fp32, capsys):
  rc = litepose_cli.main(['bench', '--tflite', str(xs_fp32), '--runs', '2', '--warmup', '0',
                          '--threads', '1'])
  out = capsys.readouterr().out
  assert rc == 0
  assert 'network' in out and 'end to end, flip' in out and 'decode' in out


def test_bench_errors(tmp_path, capsys):
  assert litepose_cli.main(['bench', '--tflite', str(tmp_path / 'x.tflite')]) == 2
  assert 'not found' in capsys.readouterr().err
