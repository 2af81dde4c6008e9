"""The decoded-image cache: same batches as decoding, keyed by file state, robust to bad entries."""
import os
import types

import numpy as np

from litepose_jax.data import decoded_cache
from litepose_jax.data import pipeline
from tests.data.helpers import copy_sample
from tests.data.test_pipeline import _cfg
from tests.data.test_pipeline import _take


def _rec(path, h=4, w=5):
  return types.SimpleNamespace(file_path=str(path), height=h, width=w)


def test_put_get_and_key_follows_the_file(tmp_path):
  src = tmp_path / 'a.jpg'
  src.write_bytes(b'x' * 10)
  cache = decoded_cache.DecodedCache(tmp_path / 'cache')
  rec = _rec(src)
  assert cache.get(rec) is None
  img = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
  cache.put(rec, img)
  np.testing.assert_array_equal(cache.get(rec), img)
  assert not list((tmp_path / 'cache').rglob('*.tmp'))
  old = cache.path(rec)
  src.write_bytes(b'y' * 11)  # an edited image must not be served from the old entry
  assert cache.path(rec) != old and cache.get(rec) is None


def test_corrupt_or_mismatched_entry_is_reported_and_ignored(tmp_path, capsys):
  src = tmp_path / 'a.jpg'
  src.write_bytes(b'x')
  cache = decoded_cache.DecodedCache(tmp_path / 'cache')
  rec = _rec(src)
  cache.put(rec, np.zeros((4, 5, 3), np.uint8))
  cache.path(rec).write_bytes(b'garbage')
  assert cache.get(rec) is None
  assert 'unreadable entry' in capsys.readouterr().err
  other = tmp_path / 'b.jpg'
  other.write_bytes(b'x')
  cache.put(_rec(other), np.zeros((2, 2, 3), np.uint8))  # json says 4x5, entry is 2x2
  assert cache.get(_rec(other)) is None and 'expected uint8' in capsys.readouterr().err


def test_unwritable_folder_turns_the_cache_off(tmp_path, capsys):
  src = tmp_path / 'a.jpg'
  src.write_bytes(b'x')
  blocker = tmp_path / 'cache'
  blocker.write_text('a file where the folder should be')
  cache = decoded_cache.DecodedCache(blocker)
  cache.put(_rec(src), np.zeros((4, 5, 3), np.uint8))
  assert not cache and 'cache turned off' in capsys.readouterr().err


def test_pipeline_batches_equal_with_and_without_cache(tmp_path, sample_data):
  copy_sample(sample_data / 'crowdpose_sample', tmp_path / 'data')
  plain = _take(_cfg(tmp_path / 'data', batch=2), 3)
  cache_dir = tmp_path / 'decoded'
  cold = _take(_cfg(tmp_path / 'data', batch=2, decoded_cache_dir=str(cache_dir)), 3)
  assert len(list(cache_dir.rglob('*.npy'))) == 2  # both sample images, written once
  # Warm: the entries are read back, not the JPEGs: garble them keeping size and mtime (the key).
  for f in (tmp_path / 'data').glob('*.jpg'):
    stat = f.stat()
    f.write_bytes(b'\0' * stat.st_size)
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  warm = _take(_cfg(tmp_path / 'data', batch=2, decoded_cache_dir=str(cache_dir)), 3)
  for a, b, c in zip(plain, cold, warm):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
      np.testing.assert_array_equal(a[k], c[k])
  assert 'decoded_cache_dir' in pipeline.default_data_config()
