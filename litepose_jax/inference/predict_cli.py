"""`litepose predict`: poses on an image, a folder, a video file or a webcam.

Writes drawn images (or an mp4), a COCO-format results json, and prints per-stage timings and FPS.
Drawings of images smaller than 512 px are upscaled so that they are legible, and show the people
scored at least --min-score (0.2); results.json holds every decoded person.
"""
from __future__ import annotations

import json
import os
import sys
import time

import cv2
import numpy as np

from litepose_jax.data import image_files
from litepose_jax.errors import UserError
from litepose_jax.inference import draw

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def add_arguments(parser) -> None:
  model = parser.add_mutually_exclusive_group(required=True)
  model.add_argument('--checkpoint', help='model checkpoint dir, training workdir or .tflite file')
  model.add_argument('--tflite', dest='checkpoint', help='exported .tflite file (same as --checkpoint)')
  parser.add_argument('--source', required=True,
                      help='image file, folder of images, video file or webcam index (0, 1, ...)')
  parser.add_argument('--out', required=True, help='output directory')
  parser.add_argument('--size', type=int, default=None, help='model input size (default: arch)')
  parser.add_argument('--flip', action='store_true',
                      help='flip test (default: off, for speed; litepose eval uses it by default)')
  parser.add_argument('--scales', default='1', help='comma-separated test scales, e.g. 1,0.5,2')
  parser.add_argument('--group-at', choices=('input', 'stride2'), default='input',
                      help='group at input resolution (official) or on the stride-2 maps')
  parser.add_argument('--threshold', type=float, default=0.1, help='min joint value to draw')
  parser.add_argument('--min-score', type=float, default=draw.MIN_PERSON_SCORE,
                      help='draw only people whose score (mean joint heatmap value) is at least '
                           'this; results.json keeps everyone')
  add_fixed_input_argument(parser)
  parser.add_argument('--max-frames', type=int, default=None, help='stop after N frames/images')
  parser.add_argument('--show', action='store_true', help='show a window (needs a display)')


def _frames(source: str, max_frames: int | None):
  """Yields (name, RGB frame, fps or None); fps is set for videos and webcams."""
  if source.isdigit() or os.path.splitext(source)[1].lower() in VIDEO_EXTS:
    if not source.isdigit() and not os.path.isfile(source):
      raise FileNotFoundError(f'--source: video not found: {source}')
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
      raise UserError(f'--source: cannot open video / webcam {source!r}')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
      i = 0
      while max_frames is None or i < max_frames:
        ok, frame = cap.read()
        if not ok:
          break
        yield f'frame_{i:06d}', cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), fps
        i += 1
    finally:
      cap.release()
    return
  if os.path.isdir(source):
    files = sorted(f for f in os.listdir(source) if f.lower().endswith(IMAGE_EXTS))
    if not files:
      raise UserError(f'--source: no images ({", ".join(IMAGE_EXTS)}) in {source}')
    paths = [os.path.join(source, f) for f in files]
  elif os.path.isfile(source):
    paths = [source]
  else:
    raise FileNotFoundError(f'--source not found: {source}')
  for p in paths[:max_frames]:
    yield os.path.basename(p), image_files.read_rgb(p, '--source image'), None


class _Outputs:
  """Drawn images / the mp4 and the results json of one predict run; `close` leaves every
  finished frame on disk, also when the run stops early (error, Ctrl-C)."""

  def __init__(self, args, joint_set):
    self.args, self.joint_set = args, joint_set
    self.results, self.frames = [], 0
    self.writer = self.video_path = None

  def add(self, idx: int, name: str, rgb: np.ndarray, fps, pred, show: bool) -> bool:
    """Draws and writes frame idx; returns False when the window asked to stop."""
    drawn = draw.draw_prediction(rgb, pred.poses, pred.scores, self.joint_set,
                                 threshold=self.args.threshold, min_score=self.args.min_score)
    bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
    self._write(name, bgr, fps)
    self.results += pred.to_coco(idx, image_name=name)
    self.frames += 1
    if show:
      cv2.imshow('litepose', bgr)
      return cv2.waitKey(1) & 0xFF != ord('q')
    return True

  def _write(self, name: str, bgr: np.ndarray, fps) -> None:
    args = self.args
    if fps is None:
      path = os.path.join(args.out, os.path.splitext(name)[0] + '_poses.jpg')
      if not cv2.imwrite(path, bgr):
        raise UserError(f'cannot write {path}')
      return
    if self.writer is None:
      stem = 'webcam' if args.source.isdigit() else os.path.splitext(
          os.path.basename(args.source))[0]
      self.video_path = os.path.join(args.out, f'{stem}_poses.mp4')
      self.writer = cv2.VideoWriter(self.video_path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                    (bgr.shape[1], bgr.shape[0]))
      if not self.writer.isOpened():
        raise UserError(f'cannot write {self.video_path} (no mp4v encoder in this OpenCV build)')
    self.writer.write(bgr)

  def close(self) -> str:
    """Closes the video (a playable file) and writes the results json; returns the json path."""
    if self.writer is not None:
      self.writer.release()
    out_json = os.path.join(self.args.out, 'results.json')
    with open(out_json, 'w') as f:
      json.dump(self.results, f)
    return out_json


def add_fixed_input_argument(parser) -> None:
  """--fixed-input (predict and eval): how a .tflite is fed."""
  parser.add_argument('--fixed-input', action='store_true',
                      help='a .tflite only (a checkpoint always takes the official size): fit '
                           'each image into its exported square input, as an app '
                           'with a fixed-size interpreter does (default: resize the interpreter '
                           'to the official test size of each image, short side to the input '
                           'size and long side to a multiple of 64, as for a checkpoint)')


def parse_scales(text: str) -> list[float]:
  """'1,0.5,2' (the --scales flag of predict and eval) -> [1.0, 0.5, 2.0]."""
  try:
    return [float(s) for s in text.split(',')]
  except ValueError:
    raise UserError(f'--scales must be comma-separated numbers, got {text!r}') from None


def run(args) -> int:
  # JAX and the decoder take seconds to import: not for `litepose predict --help`.
  from litepose_jax.inference.predictor import Predictor
  scales = parse_scales(args.scales)
  predictor = Predictor.from_path(args.checkpoint, size=args.size, flip=args.flip, scales=scales,
                                  group_at=args.group_at, fixed_input=args.fixed_input)
  print(f'network input: {predictor.protocol}')
  os.makedirs(args.out, exist_ok=True)
  show = args.show and _can_show()
  outputs = _Outputs(args, predictor.joint_set)
  totals = {'preprocess': 0.0, 'network': 0.0, 'decode': 0.0}
  n, t_start, warm = 0, None, None
  try:
    for idx, (name, rgb, fps) in enumerate(_frames(args.source, args.max_frames)):
      pred = predictor(rgb)
      if idx == 0:
        warm = dict(pred.timings)  # includes JIT compilation; excluded from the averages
        t_start = time.perf_counter()
      else:
        for k in totals:
          totals[k] += pred.timings[k]
        n += 1
      if not outputs.add(idx, name, rgb, fps, pred, show):
        break
  except BaseException:
    # Whatever stopped the run (an error, Ctrl-C), the frames already done are kept on disk; a
    # failure to save them is reported without hiding the error that stopped the run.
    try:
      outputs.close()
      print(f'litepose predict: stopped early; kept the {outputs.frames} finished frame(s) and '
            f'their results in {args.out}', file=sys.stderr)
    except Exception as e:  # pylint: disable=broad-except
      print(f'litepose predict: stopped early, and saving the finished frames failed: {e}',
            file=sys.stderr)
    raise
  out_json = outputs.close()
  if t_start is None:
    raise UserError(f'--source {args.source!r} gave no frames')
  wall = time.perf_counter() - t_start
  print('first frame (includes compilation): ' +
        ', '.join(f'{k} {1000 * v:.1f} ms' for k, v in warm.items()))
  if n:
    avg = {k: 1000 * v / n for k, v in totals.items()}
    print('per frame: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in avg.items()) +
          f'; {n / wall:.2f} FPS end to end (incl. drawing and writing)')
  print(f'wrote {len(outputs.results)} people from {n + 1} frame(s): {out_json}' +
        (f', {outputs.video_path}' if outputs.video_path else f', drawn images in {args.out}'))
  return 0


def _can_show() -> bool:
  if not os.environ.get('DISPLAY') and os.name != 'nt':
    print('litepose predict: --show ignored: no display ($DISPLAY is not set)')
    return False
  try:
    cv2.namedWindow('litepose')
    return True
  except cv2.error as e:
    print(f'litepose predict: --show ignored: this OpenCV build has no GUI ({e})')
    return False
