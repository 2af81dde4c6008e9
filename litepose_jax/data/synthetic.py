"""Synthetic multi-person pose data in the CrowdPose (or COCO) format: `litepose data synth`.

Each image shows 0-12 articulated, clothed, human-like figures (kinematic skeleton with human
proportions and joint ranges, several pose families, any facing direction, partly outside the
frame, occluding each other in depth order) over a cluttered background with camera effects. The
output is laid out exactly like the real data set, so the ordinary loader reads it:

  crowdpose: OUT/images/000001.jpg ..., OUT/json/crowdpose_{train,val}.json
  coco:      OUT/{train,val}2017/000000000001.jpg ...,
             OUT/annotations/person_keypoints_{train,val}2017.json

Image i depends only on (seed, i): it is identical whatever num_images is, and so is its split
(image i is in val iff floor((i + 1) * f) > floor(i * f) for val fraction f, which spreads val
images evenly and gives floor(num_images * f) of them).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import contextlib
import dataclasses
import json
import math
import multiprocessing
import pathlib
import time
from typing import NamedTuple

import cv2
import numpy as np
from pycocotools import mask as coco_mask
import tqdm

from litepose_jax import joints as joints_lib
from litepose_jax.data import synthetic_figure as sf
from litepose_jax.data import synthetic_render as sr
from litepose_jax.errors import UserError

MAX_PEOPLE_LIMIT = 99  # annotation ids are image_id * 100 + k


@dataclasses.dataclass(frozen=True)
class SynthConfig:
  """Difficulty knobs; the defaults are tuned so a LitePose-XS learns the data in CPU-minutes."""
  # Person height (standing, head top to ankle) as a fraction of the image height:
  # lo + (hi - lo) * Beta(a, b); the defaults put most people at 35-90 %.
  height_range: tuple[float, float] = (0.2, 0.9)
  height_beta: tuple[float, float] = (2.2, 1.4)
  # People per image: 0 with empty_prob; a crowd of 5 + Poisson(crowd_extra) with crowd_prob;
  # otherwise 1 + Poisson(people_extra). Capped by max_people.
  empty_prob: float = 0.03
  crowd_prob: float = 0.1
  crowd_extra: float = 3.0
  people_extra: float = 1.3
  # Occlusion: a new person is re-placed if its box IoU with a placed one exceeds max_iou or
  # if more than max_cover of the smaller box is covered.
  max_iou: float = 0.45
  max_cover: float = 0.7
  place_tries: int = 8
  # With partial_prob a person may stick out of the frame by up to partial_margin of its box;
  # at least min_joints_in_frame labelled joints stay inside.
  partial_prob: float = 0.3
  partial_margin: float = 0.45
  min_joints_in_frame: int = 5
  # Background shape count range, camera noise sigma range (grey levels), blur probability.
  clutter: tuple[int, int] = (6, 22)
  noise_sigma: tuple[float, float] = (0.0, 8.0)
  blur_prob: float = 0.4
  jpeg_quality: tuple[int, int] = (75, 95)
  # Aspect ratios (width / height) with probabilities; the longer side is `size`.
  aspects: tuple[tuple[float, float], ...] = ((1.0, 0.6), (4 / 3, 0.25), (3 / 4, 0.15))
  # Relative odds of facing the camera, facing away and side-on views. Facing away swaps where
  # left and right appear, so only small cues (face, feet) tell the sides apart there.
  facing: tuple[float, float, float] = sf.DEFAULT_FACING


@dataclasses.dataclass
class SynthImage:
  """One rendered image: JPEG bytes and its people ([J, 3] keypoints, [4] xywh bbox)."""
  jpeg: bytes
  width: int
  height: int
  keypoints: list[np.ndarray]
  bboxes: list[np.ndarray]
  segmentations: list[list[list[float]]]
  areas: list[float]
  crowd_index: float


def crowd_index(keypoints: np.ndarray | Sequence, bboxes: np.ndarray | Sequence) -> float:
  """CrowdPose crowd index of one image from keypoints [N, J, 3] and xywh bboxes [N, 4].

  CrowdIndex = (1 / n) * sum_i N_b(i) / N_a(i), where N_a(i) is the number of person i's own
  labelled joints (v > 0) inside its bbox, N_b(i) the number of labelled joints of all OTHER
  people inside person i's bbox (borders inclusive), and n the number of people with N_a(i) > 0
  (people without any joint in their box have no defined ratio and are left out). An image
  without such people has index 0. The returned value is not rounded (the json stores 2 decimals,
  like the CrowdPose files).
  """
  kps = np.asarray(keypoints, np.float64).reshape(len(keypoints), -1, 3) if len(keypoints) else \
      np.zeros((0, 0, 3))
  boxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
  if len(kps) != len(boxes):
    raise ValueError(f'crowd_index: {len(kps)} keypoint sets but {len(boxes)} bboxes')
  ratios = []
  for i, (x, y, w, h) in enumerate(boxes):
    inside = ((kps[..., 2] > 0) & (kps[..., 0] >= x) & (kps[..., 0] <= x + w)
              & (kps[..., 1] >= y) & (kps[..., 1] <= y + h))
    own = int(inside[i].sum())
    if own == 0:
      continue
    ratios.append((int(inside.sum()) - own) / own)
  return float(np.mean(ratios)) if ratios else 0.0


# ------------------------------------------------------------------------------------------------
# Rendering one image


def _point_radii(build: float) -> np.ndarray:
  """Per-point drawing radius [P] in body units, for the amodal extent of a figure."""
  r = np.zeros(len(sf.POINT_NAMES) + sf.NUM_TORSO_HULL)
  for a, b, r0, r1, _ in sf.LIMBS:
    r[sf.PT[a]] = max(r[sf.PT[a]], r0 * build)
    r[sf.PT[b]] = max(r[sf.PT[b]], r1 * build)
  r[sf.PT['head_center']] = 0.075
  r[sf.PT['hair_center']] = 0.07
  r[sf.PT['left_hand']] = r[sf.PT['right_hand']] = 0.026 * build
  return r


_DRAWN = np.array([i for i, n in enumerate(sf.POINT_NAMES) if not n.endswith(('eye', 'ear'))
                   and n not in ('nose', 'mouth_left', 'mouth_right', 'seam_top', 'seam_bottom')]
                  + list(range(len(sf.POINT_NAMES), len(sf.POINT_NAMES) + sf.NUM_TORSO_HULL)))


def _extent(uv: np.ndarray, radii: np.ndarray) -> np.ndarray:
  """[x0, y0, x1, y1] of the drawn figure in the units of uv."""
  lo = (uv[_DRAWN] - radii[_DRAWN, None]).min(axis=0)
  hi = (uv[_DRAWN] + radii[_DRAWN, None]).max(axis=0)
  return np.concatenate([lo, hi])


def _overlap_ok(box: np.ndarray, placed: list[np.ndarray], cfg: SynthConfig) -> bool:
  area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
  for other in placed:
    iw = min(box[2], other[2]) - max(box[0], other[0])
    ih = min(box[3], other[3]) - max(box[1], other[1])
    if iw <= 0 or ih <= 0:
      continue
    inter = iw * ih
    oarea = (other[2] - other[0]) * (other[3] - other[1])
    if inter / (area + oarea - inter) > cfg.max_iou or inter / max(min(area, oarea), 1e-6) > \
        cfg.max_cover:
      return False
  return True


def _num_people(rng: np.random.Generator, cfg: SynthConfig, max_people: int) -> int:
  r = rng.random()
  if r < cfg.empty_prob:
    n = 0
  elif r < cfg.empty_prob + cfg.crowd_prob:
    n = 5 + int(rng.poisson(cfg.crowd_extra))
  else:
    n = 1 + int(rng.poisson(cfg.people_extra))
  return min(n, max_people)


def _image_size(rng: np.random.Generator, size: int, cfg: SynthConfig) -> tuple[int, int]:
  aspect = float(cfg.aspects[sf.pick(rng, tuple(q for _, q in cfg.aspects))][0])
  if aspect >= 1:
    return size, max(1, int(round(size / aspect)))
  return max(1, int(round(size * aspect))), size


def _segmentation(mask: np.ndarray, x0: int, y0: int) -> tuple[list[list[float]], float]:
  """COCO polygons and area of a visible-region mask crop [h, w] placed at (x0, y0)."""
  contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  polys = [[float(v) for v in (c.reshape(-1, 2) + (x0, y0)).ravel()]
           for c in contours if len(c) >= 3]
  return polys, _polygon_area(polys)


def _polygon_area(polys: list[list[float]]) -> float:
  """Area of COCO polygons as the COCO API rasterises them (so `area` matches `segmentation`)."""
  if not polys:
    return 0.0
  h = int(max(max(p[1::2]) for p in polys)) + 2
  w = int(max(max(p[0::2]) for p in polys)) + 2
  return float(coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(polys, h, w))))


class _Person(NamedTuple):
  """One placed figure: its pose, body, projected points px [P, 2] (image pixels) and depths [P],
  pixels per body unit, and its box [x0, y0, x1, y1] clipped to the image."""
  pose: sf.Pose
  fig: sf.Figure
  px: np.ndarray
  depth: np.ndarray
  scale: float
  box: np.ndarray


def _inside(xy: np.ndarray, w: int, h: int) -> np.ndarray:
  """[N] bool: points xy [N, 2] inside a w x h image (pixel centres 0..w-1, 0..h-1)."""
  return (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)


def _place_person(rng: np.random.Generator, cfg: SynthConfig, w: int, h: int, jidx: np.ndarray,
                  min_in: int, boxes: list[np.ndarray]) -> _Person | None:
  """Samples one figure and tries cfg.place_tries positions; None when none fits."""
  pose = sf.sample_pose(rng, cfg.facing)
  fig = sf.build_figure(pose, rng)
  uv, depth = sf.project(fig, pose)
  ext = _extent(uv, _point_radii(fig.build))
  lo, hi = cfg.height_range
  scale = (lo + (hi - lo) * rng.beta(*cfg.height_beta)) * h
  bw, bh = (ext[2] - ext[0]) * scale, (ext[3] - ext[1]) * scale
  centre = 0.5 * (ext[:2] + ext[2:])
  for _ in range(cfg.place_tries):
    m = cfg.partial_margin if rng.random() < cfg.partial_prob else 0.03
    cx = rng.uniform(*sorted((bw / 2 - m * bw, w - bw / 2 + m * bw)))
    cy = rng.uniform(*sorted((bh / 2 - m * bh, h - bh / 2 + m * bh)))
    px = (uv - centre) * scale + (cx, cy)
    box = np.array([max(0.0, cx - bw / 2), max(0.0, cy - bh / 2), min(w, cx + bw / 2),
                    min(h, cy + bh / 2)])
    if _inside(px[jidx], w, h).sum() >= min_in and _overlap_ok(box, boxes, cfg):
      return _Person(pose, fig, px, depth, scale, box)
  return None


def _place_people(rng: np.random.Generator, cfg: SynthConfig, w: int, h: int, jidx: np.ndarray,
                  min_in: int, max_people: int) -> list[_Person]:
  """The people of one image, far to near (painter's order)."""
  placed = []
  for _ in range(_num_people(rng, cfg, max_people)):
    person = _place_person(rng, cfg, w, h, jidx, min_in, [p.box for p in placed])
    if person is not None:
      placed.append(person)
  # People whose feet are higher in the image are farther away.
  placed.sort(key=lambda p: p.box[3])
  return placed


def _paint(rng: np.random.Generator, cfg: SynthConfig, w: int, h: int,
           people: list[_Person]) -> tuple[np.ndarray, np.ndarray]:
  """(BGR image [h, w, 3] uint8 with camera effects, label [h, w]: 1-based index of the
  person visible at each pixel, 0 for background)."""
  img = sr.render_background(rng, h, w, cfg.clutter)
  label = np.zeros((h, w), np.uint8)
  for pid, p in enumerate(people, start=1):
    app = sr.sample_appearance(rng)
    x0, y0 = int(math.floor(p.box[0])), int(math.floor(p.box[1]))
    x1, y1 = int(math.ceil(p.box[2])), int(math.ceil(p.box[3]))
    groups = sr.figure_ops(p.fig, p.pose, app, p.px - (x0, y0), p.depth, p.scale)
    sr.render_figure(img, label, pid, groups, (x0, y0, x1, y1), app, p.scale, rng)
  return sr.camera_effects(img, rng, cfg.noise_sigma, cfg.blur_prob), label


def _encode_jpeg(rng: np.random.Generator, cfg: SynthConfig, img: np.ndarray,
                 index: int) -> bytes:
  """JPEG bytes of img at a quality drawn from cfg.jpeg_quality."""
  quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
  ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, quality])
  if not ok:
    raise RuntimeError(f'JPEG encoding failed for synthetic image {index}')
  return buf.tobytes()


def _keypoints(p: _Person, pid: int, label: np.ndarray, jidx: np.ndarray,
               face: np.ndarray) -> np.ndarray:
  """COCO keypoints [J, 3] of person pid: v = 2 visible, 1 covered by a nearer person, 0 none."""
  h, w = label.shape
  xy = p.px[jidx]
  ok = _inside(xy, w, h)
  # Face points on the far side of the head are not labelled, as in COCO.
  ok &= ~(face & (p.depth[jidx] < p.depth[sf.PT['head_center']] - 0.01))
  ij = np.rint(np.clip(xy, 0, (w - 1, h - 1))).astype(np.intp)
  # Covered by someone drawn later (nearer): labelled but occluded (v = 1).
  vis = np.where(label[ij[:, 1], ij[:, 0]] > pid, 1.0, 2.0)
  return np.where(ok[:, None], np.concatenate([np.round(xy, 2), vis[:, None]], 1), 0.0)


def _person_segmentation(p: _Person, pid: int, label: np.ndarray,
                         box_polygon: list[float]) -> tuple[list[list[float]], float]:
  """COCO polygons and area of person pid's visible pixels (its box when hidden or a sliver)."""
  bx0, by0 = int(math.floor(p.box[0])), int(math.floor(p.box[1]))
  crop = (label[by0:int(math.ceil(p.box[3])), bx0:int(math.ceil(p.box[2]))] == pid)
  polys, area = _segmentation(crop.astype(np.uint8), bx0, by0)
  if area < 1:
    polys = [box_polygon]
    area = max(1.0, _polygon_area(polys))
  return polys, area


def render_image(seed: int, index: int, size: int, joint_set: joints_lib.JointSet,
                 cfg: SynthConfig = SynthConfig(), max_people: int = 12,
                 with_segmentation: bool = False) -> SynthImage:
  """Renders image `index` of the data set `seed`; a pure function of its arguments."""
  # One random stream per image, consumed in a fixed order: size, people, pixels, JPEG quality.
  rng = np.random.default_rng([seed, index])
  w, h = _image_size(rng, size, cfg)
  jidx = np.array([sf.PT[n] for n in joint_set.names])
  face = np.array([n in ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear')
                   for n in joint_set.names])
  min_in = min(cfg.min_joints_in_frame, joint_set.num_joints)
  people = _place_people(rng, cfg, w, h, jidx, min_in, max_people)
  img, label = _paint(rng, cfg, w, h, people)
  jpeg = _encode_jpeg(rng, cfg, img, index)

  keypoints, bboxes, segs, areas = [], [], [], []
  for pid, p in enumerate(people, start=1):
    keypoints.append(_keypoints(p, pid, label, jidx, face))
    x0, y0, x1, y1 = (round(float(v), 2) for v in p.box)
    bboxes.append(np.array([x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)]))
    if with_segmentation:
      polys, area = _person_segmentation(p, pid, label, [x0, y0, x1, y0, x1, y1, x0, y1])
      segs.append(polys)
      areas.append(area)
  return SynthImage(jpeg=jpeg, width=w, height=h, keypoints=keypoints, bboxes=bboxes,
                    segmentations=segs, areas=areas, crowd_index=crowd_index(keypoints, bboxes))


# ------------------------------------------------------------------------------------------------
# Data set writer


def is_val(index: int, val_fraction: float) -> bool:
  """Whether image `index` belongs to the val split (depends on index and fraction only)."""
  eps = 1e-9
  return math.floor((index + 1) * val_fraction + eps) > math.floor(index * val_fraction + eps)


def category(joint_set: joints_lib.JointSet) -> dict:
  """The COCO-style 'person' category (1-based skeleton) for a joint set."""
  return {'supercategory': 'person', 'id': 1, 'name': 'person',
          'keypoints': list(joint_set.names),
          'skeleton': [[a + 1, b + 1] for a, b in joint_set.skeleton]}


SPLITS = ('train', 'val')


def _render_job(job):
  seed, index, size, joints_name, cfg, max_people, coco = job
  return render_image(seed, index, size, joints_lib.get_joint_set(joints_name), cfg, max_people,
                      with_segmentation=coco)


def _validate(num_images, seed, size, joints, val_fraction, max_people, workers):
  if not isinstance(num_images, (int, np.integer)) or num_images < 1:
    raise UserError(f'--num-images must be a positive integer, got {num_images!r}')
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise UserError(f'--seed must be a non-negative integer, got {seed!r}')
  if not isinstance(size, (int, np.integer)) or size < 32:
    raise UserError(f'--size must be an integer >= 32 pixels, got {size!r}')
  if joints not in joints_lib.JOINT_SETS:
    raise UserError(f'--joints must be one of {sorted(joints_lib.JOINT_SETS)}, got {joints!r}')
  if not 0.0 <= val_fraction < 1.0:
    raise UserError(f'--val-fraction must be in [0, 1), got {val_fraction!r}')
  if not 0 <= max_people <= MAX_PEOPLE_LIMIT:
    raise UserError(f'--max-people must be in [0, {MAX_PEOPLE_LIMIT}], got {max_people!r}')
  if workers < 1:
    raise UserError(f'--workers must be >= 1, got {workers!r}')


def _make_layout(out: pathlib.Path, coco: bool) -> tuple[dict, dict]:
  """Creates the folders; returns ({split: image folder}, {split: json path})."""
  if out.exists() and not out.is_dir():
    raise FileExistsError(f'--out {out} exists and is not a folder')
  if coco:
    image_dirs = {s: out / f'{s}2017' for s in SPLITS}
    json_paths = {s: out / 'annotations' / f'person_keypoints_{s}2017.json' for s in SPLITS}
  else:
    image_dirs = {s: out / 'images' for s in SPLITS}
    json_paths = {s: out / 'json' / f'crowdpose_{s}.json' for s in SPLITS}
  for p in list(image_dirs.values()) + [p.parent for p in json_paths.values()]:
    p.mkdir(parents=True, exist_ok=True)
  return image_dirs, json_paths


@contextlib.contextmanager
def _rendered(jobs: list[tuple], workers: int):
  """Yields the SynthImages of jobs in order, rendered here or by `workers` spawned processes."""
  if workers <= 1:
    yield map(_render_job, jobs)
    return
  pool = multiprocessing.get_context('spawn').Pool(workers)
  try:
    yield pool.imap(_render_job, jobs, chunksize=8)
  finally:
    pool.close()
    pool.join()


def _image_entry(r: SynthImage, image_id: int, file_name: str, coco: bool) -> dict:
  """The json 'images' entry of one rendered image."""
  entry = {'file_name': file_name, 'id': image_id, 'height': r.height, 'width': r.width,
           'crowdIndex': round(r.crowd_index, 2)}
  return {'license': 1, **entry} if coco else entry


def _annotations(r: SynthImage, image_id: int, coco: bool) -> list[dict]:
  """The json 'annotations' entries of one rendered image's people."""
  anns = []
  for k, (kp, box) in enumerate(zip(r.keypoints, r.bboxes)):
    ann = {'num_keypoints': int((kp[:, 2] > 0).sum()), 'iscrowd': 0,
           'keypoints': [v for x, y, vis in kp.tolist() for v in (x, y, int(vis))],
           'image_id': image_id, 'bbox': [float(v) for v in box], 'category_id': 1,
           'id': image_id * (MAX_PEOPLE_LIMIT + 1) + k + 1}
    if coco:
      ann = {'segmentation': r.segmentations[k], 'area': round(r.areas[k], 2), **ann}
    anns.append(ann)
  return anns


def _write_json(path: pathlib.Path, images: list, anns: list, js: joints_lib.JointSet,
                seed: int, coco: bool) -> None:
  doc = {'categories': [category(js)], 'images': images, 'annotations': anns}
  if coco:
    doc = {'info': {'description': f'litepose-jax synthetic data, seed {seed}', 'version': '1.0',
                    'year': 2024},
           'licenses': [{'id': 1, 'name': 'synthetic', 'url': ''}], **doc}
  path.write_text(json.dumps(doc))


def generate(out_dir: str | pathlib.Path, num_images: int, seed: int, size: int = 192,
             joints: str = 'crowdpose', val_fraction: float = 0.2, max_people: int = 12,
             progress: bool = True, *, config: SynthConfig | None = None,
             workers: int = 1) -> dict:
  """Writes a synthetic data set (JPEGs + CrowdPose / COCO jsons); returns a summary dict.

  Args:
    out_dir: output folder (created; existing files with the same names are overwritten).
    num_images: total images over both splits.
    seed: non-negative data set seed; image i is a function of (seed, i) only.
    size: longer image side in pixels.
    joints: 'crowdpose' (14 joints, CrowdPose layout) or 'coco' (17 joints, COCO layout).
    val_fraction: fraction of images in val (floor(num_images * val_fraction) of them).
    max_people: upper bound on people per image (0-99).
    progress: show a tqdm bar.
    config: difficulty knobs (SynthConfig defaults if None).
    workers: rendering processes (spawned: scripts need an `if __name__ == "__main__"` guard);
      the output is identical for any value.

  Returns:
    {'out_dir', 'layout', 'joints', 'size', 'seed', 'images': {split: folder},
     'json': {split: path}, 'num_images': {split: n}, 'num_people': {split: n}, 'seconds'}.
  """
  _validate(num_images, seed, size, joints, val_fraction, max_people, workers)
  cfg = config or SynthConfig()
  coco = joints == 'coco'
  out = pathlib.Path(out_dir)
  image_dirs, json_paths = _make_layout(out, coco)
  images = {s: [] for s in SPLITS}
  anns = {s: [] for s in SPLITS}
  jobs = [(seed, i, size, joints, cfg, max_people, coco) for i in range(num_images)]
  start = time.perf_counter()
  with _rendered(jobs, workers) as results:
    bar = tqdm.tqdm(results, total=num_images, desc='synth', unit='img', disable=not progress)
    for i, r in enumerate(bar):
      split = 'val' if is_val(i, val_fraction) else 'train'
      image_id = i + 1
      file_name = f'{image_id:012d}.jpg' if coco else f'{image_id:06d}.jpg'
      (image_dirs[split] / file_name).write_bytes(r.jpeg)
      images[split].append(_image_entry(r, image_id, file_name, coco))
      anns[split].extend(_annotations(r, image_id, coco))
  seconds = time.perf_counter() - start
  for split, path in json_paths.items():
    _write_json(path, images[split], anns[split], joints_lib.get_joint_set(joints), seed, coco)
  return {'out_dir': str(out), 'layout': 'coco' if coco else 'crowdpose', 'joints': joints,
          'size': size, 'seed': seed,
          'images': {s: str(p) for s, p in image_dirs.items()},
          'json': {s: str(p) for s, p in json_paths.items()},
          'num_images': {s: len(images[s]) for s in images},
          'num_people': {s: len(anns[s]) for s in anns}, 'seconds': seconds}


# ------------------------------------------------------------------------------------------------
# CLI: `litepose data synth`


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `litepose data synth` flags to parser."""
  parser.add_argument('--out', required=True, help='output folder')
  parser.add_argument('--num-images', type=int, required=True, help='images over both splits')
  parser.add_argument('--seed', type=int, default=0, help='data set seed (image i = f(seed, i))')
  parser.add_argument('--size', type=int, default=192, help='longer image side in pixels')
  parser.add_argument('--joints', choices=sorted(joints_lib.JOINT_SETS), default='crowdpose',
                      help='crowdpose: 14 joints, CrowdPose layout; coco: 17 joints, COCO layout')
  parser.add_argument('--val-fraction', type=float, default=0.2, help='fraction of images in val')
  parser.add_argument('--max-people', type=int, default=12, help='most people in one image')
  parser.add_argument('--workers', type=int, default=1,
                      help='rendering processes (output identical for any value)')
  parser.add_argument('--quiet', action='store_true', help='no progress bar')


def run_synth(args: argparse.Namespace) -> int:
  """Runs `litepose data synth`; prints a one-line summary."""
  s = generate(args.out, args.num_images, args.seed, size=args.size, joints=args.joints,
               val_fraction=args.val_fraction, max_people=args.max_people,
               progress=not args.quiet, workers=getattr(args, 'workers', 1))
  n = s['num_images']
  total = n['train'] + n['val']
  print(f"synth: {n['train']} train + {n['val']} val images "
        f"({s['num_people']['train']} + {s['num_people']['val']} people, {args.joints} joints, "
        f"{args.size} px) -> {s['out_dir']} in {s['seconds']:.1f} s "
        f"({total / max(s['seconds'], 1e-9):.0f} img/s)")
  return 0
