"""A disk cache of decoded training images: JPEG decode once, raw bytes on every later epoch.

Entry for an image = <dir>/<k[:2]>/<k>.npy with k = sha1(absolute path, size, mtime_ns, version)
[:24]: an edited or replaced image gets a new key. Entries are written to a temporary name and
renamed, so concurrent readers (tf.data threads, several hosts on a shared disk) only ever see
whole files. A corrupt entry is reported once per file and decoded again; a failed write (disk
full, read-only folder) is reported and turns the cache off for this process rather than stopping
training.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import sys
import threading

import numpy as np

_VERSION = 1  # bump when the decoded content changes (e.g. colour order, EXIF handling)


class DecodedCache:
  """get(rec) -> [H, W, 3] uint8 or None; put(rec, image). rec needs file_path, width, height."""

  def __init__(self, directory: str | os.PathLike):
    self.root = pathlib.Path(directory)
    self.enabled = True
    self._reported: set[str] = set()
    self._lock = threading.Lock()

  def __bool__(self) -> bool:
    return self.enabled

  def path(self, rec) -> pathlib.Path:
    """Where rec's decoded image lives (raises OSError if the image file is missing)."""
    src = os.path.abspath(rec.file_path)
    st = os.stat(src)
    key = hashlib.sha1(f'{src}|{st.st_size}|{st.st_mtime_ns}|{_VERSION}'.encode()).hexdigest()[:24]
    return self.root / key[:2] / f'{key}.npy'

  def get(self, rec, path: pathlib.Path | None = None) -> np.ndarray | None:
    """The cached image, or None when absent or unusable (then decode and put).

    path: self.path(rec) when the caller already has it (it costs a stat and a hash).
    """
    path = path or self.path(rec)
    try:
      img = np.load(path, allow_pickle=False)
    except FileNotFoundError:
      return None
    except (OSError, ValueError, EOFError) as e:
      self._report(str(path), f'unreadable entry ({e}); decoding the image again')
      return None
    if img.dtype != np.uint8 or img.shape != (rec.height, rec.width, 3):
      self._report(str(path), f'entry holds {img.dtype} {img.shape}, expected uint8 '
                              f'{(rec.height, rec.width, 3)}; decoding the image again')
      return None
    return img

  def put(self, rec, image: np.ndarray, path: pathlib.Path | None = None) -> None:
    """Stores a decoded [H, W, 3] uint8 image (atomically; errors disable the cache)."""
    path = path or self.path(rec)
    tmp = path.with_name(f'{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp')
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      with open(tmp, 'wb') as f:
        np.save(f, np.ascontiguousarray(image, np.uint8), allow_pickle=False)
      os.replace(tmp, path)
    except OSError as e:
      self.enabled = False
      self._report(str(self.root), f'cannot write ({e}); decoded-image cache turned off')
      try:
        tmp.unlink(missing_ok=True)
      except OSError:
        pass  # the write already failed and was reported; a stray .tmp is harmless

  def _report(self, what: str, message: str) -> None:
    with self._lock:
      if what in self._reported:
        return
      self._reported.add(what)
    print(f'decoded-image cache: {what}: {message}', file=sys.stderr, flush=True)
