"""Synthetic data set generator: determinism, json validity, annotation invariants, CLI."""
import argparse
import contextlib
import hashlib
import io
import json
import pathlib

import cv2
import numpy as np
from pycocotools.coco import COCO as PyCOCO
import pytest
from xtcocotools.coco import COCO as XtCOCO

from litepose_jax import joints as joints_lib
from litepose_jax.data import synthetic
from litepose_jax.data import synthetic_figure as sf

SIZE = 96


def _gen(out, n, seed, **kw):
  return synthetic.generate(out, n, seed, size=kw.pop('size', SIZE), progress=False, **kw)


def _load(path):
  return json.loads(pathlib.Path(path).read_text())


def _pixels(path):
  img = cv2.imread(str(path), cv2.IMREAD_COLOR)
  assert img is not None, path
  return img


@pytest.fixture(scope='module')
def crowdpose_set(tmp_path_factory):
  out = tmp_path_factory.mktemp('synth_cp')
  return _gen(out, 30, seed=7)


@pytest.fixture(scope='module')
def coco_set(tmp_path_factory):
  out = tmp_path_factory.mktemp('synth_coco')
  return _gen(out, 10, seed=3, joints='coco')


def _all(summary):
  """(images, annotations, categories) over both splits."""
  images, anns = [], []
  for split in ('train', 'val'):
    doc = _load(summary['json'][split])
    images += doc['images']
    anns += doc['annotations']
  return images, anns, doc['categories']


def test_layout_and_counts(crowdpose_set):
  out = pathlib.Path(crowdpose_set['out_dir'])
  assert (out / 'json' / 'crowdpose_train.json').is_file()
  assert (out / 'json' / 'crowdpose_val.json').is_file()
  # floor(30 * 0.2) = 6 val images, spread evenly: indices 4, 9, ..., 29 -> ids 5, 10, ..., 30.
  assert crowdpose_set['num_images'] == {'train': 24, 'val': 6}
  val_ids = [im['id'] for im in _load(crowdpose_set['json']['val'])['images']]
  assert val_ids == [5, 10, 15, 20, 25, 30]
  assert len(list((out / 'images').glob('*.jpg'))) == 30
  doc = _load(crowdpose_set['json']['train'])
  assert set(doc) == {'categories', 'images', 'annotations'}  # CrowdPose files have no info/area
  for ann in doc['annotations']:
    assert set(ann) == {'num_keypoints', 'iscrowd', 'keypoints', 'image_id', 'bbox',
                        'category_id', 'id'}
  for im in doc['images']:
    assert set(im) == {'file_name', 'id', 'height', 'width', 'crowdIndex'}
    h, w = _pixels(out / 'images' / im['file_name']).shape[:2]
    assert (w, h) == (im['width'], im['height'])
    assert max(w, h) == SIZE


def test_categories_match_joint_set(crowdpose_set, coco_set):
  for summary, js in ((crowdpose_set, joints_lib.CROWDPOSE), (coco_set, joints_lib.COCO)):
    _, _, cats = _all(summary)
    assert len(cats) == 1 and cats[0]['id'] == 1 and cats[0]['name'] == 'person'
    assert cats[0]['keypoints'] == list(js.names)
    assert cats[0]['skeleton'] == [[a + 1, b + 1] for a, b in js.skeleton]


def test_deterministic_same_seed_and_differs_across_seeds(tmp_path):
  a = _gen(tmp_path / 'a', 5, seed=11, size=64)
  b = _gen(tmp_path / 'b', 5, seed=11, size=64)
  c = _gen(tmp_path / 'c', 5, seed=12, size=64)
  for split in ('train', 'val'):
    assert pathlib.Path(a['json'][split]).read_bytes() == pathlib.Path(b['json'][split]).read_bytes()
  assert pathlib.Path(a['json']['train']).read_bytes() != pathlib.Path(c['json']['train']).read_bytes()
  names = sorted(p.name for p in (tmp_path / 'a' / 'images').glob('*.jpg'))
  assert len(names) == 5
  differ = 0
  for name in names:
    pa, pb, pc = (_pixels(tmp_path / d / 'images' / name) for d in 'abc')
    np.testing.assert_array_equal(pa, pb)
    differ += int(pa.shape != pc.shape or not np.array_equal(pa, pc))
  assert differ == 5


def _digest(out):
  """md5 over every file's relative path and bytes under out."""
  h = hashlib.md5()
  for p in sorted(pathlib.Path(out).rglob('*')):
    if p.is_file():
      h.update(str(p.relative_to(out)).encode())
      h.update(p.read_bytes())
  return h.hexdigest()


@pytest.mark.parametrize('n,seed,joints,md5', [
    (12, 5, 'crowdpose', '3a9594fa3634532c183e24d91409fa7c'),
    (6, 2, 'coco', 'd7ad0dbe24ce9e415785d95c6d0cc5a4')])
def test_generated_bytes_unchanged(tmp_path, n, seed, joints, md5):
  # A refactor must keep every random draw in its place: the same images and jsons, byte for
  # byte. The digests are of the pinned numpy / OpenCV (requirements.txt); a version bump that
  # changes drawing or JPEG coding changes them too (regenerate the quickstart data then).
  _gen(tmp_path, n, seed, joints=joints)
  assert _digest(tmp_path) == md5


def test_image_i_independent_of_num_images(tmp_path):
  small = _gen(tmp_path / 's', 3, seed=4, size=64)
  large = _gen(tmp_path / 'l', 7, seed=4, size=64)
  for image_id in (1, 2, 3):
    name = f'{image_id:06d}.jpg'
    np.testing.assert_array_equal(_pixels(tmp_path / 's' / 'images' / name),
                                  _pixels(tmp_path / 'l' / 'images' / name))
  _, anns_s, _ = _all(small)
  _, anns_l, _ = _all(large)
  assert anns_s == [a for a in anns_l if a['image_id'] <= 3]


def test_workers_give_identical_output(tmp_path):
  a = _gen(tmp_path / 'a', 6, seed=2, size=64)
  b = _gen(tmp_path / 'b', 6, seed=2, size=64, workers=2)
  assert pathlib.Path(a['json']['train']).read_bytes() == pathlib.Path(b['json']['train']).read_bytes()
  for p in sorted((tmp_path / 'a' / 'images').glob('*.jpg')):
    assert p.read_bytes() == (tmp_path / 'b' / 'images' / p.name).read_bytes()


@pytest.mark.parametrize('coco_cls', [PyCOCO, XtCOCO], ids=['pycocotools', 'xtcocotools'])
def test_json_loads_in_coco_apis(crowdpose_set, coco_set, coco_cls):
  for summary in (crowdpose_set, coco_set):
    for split in ('train', 'val'):
      with contextlib.redirect_stdout(io.StringIO()):
        api = coco_cls(summary['json'][split])
      doc = _load(summary['json'][split])
      assert sorted(api.getImgIds()) == sorted(im['id'] for im in doc['images'])
      assert len(api.getAnnIds()) == len(doc['annotations'])
      assert api.getCatIds(catNms=['person']) == [1]
      for img_id in api.getImgIds():
        for ann in api.loadAnns(api.getAnnIds(imgIds=img_id)):
          assert ann['image_id'] == img_id


def test_coco_layout_fields_and_masks(coco_set):
  out = pathlib.Path(coco_set['out_dir'])
  assert (out / 'annotations' / 'person_keypoints_train2017.json').is_file()
  doc = _load(coco_set['json']['train'])
  assert {'info', 'licenses', 'categories', 'images', 'annotations'} <= set(doc)
  for im in doc['images']:
    assert im['file_name'] == f"{im['id']:012d}.jpg"
    assert (out / 'train2017' / im['file_name']).is_file()
  with contextlib.redirect_stdout(io.StringIO()):
    api = PyCOCO(coco_set['json']['train'])
  assert doc['annotations']
  for ann in doc['annotations']:
    assert ann['iscrowd'] == 0 and ann['area'] > 0 and ann['segmentation']
    assert len(ann['keypoints']) == 17 * 3
    mask = api.annToMask(api.loadAnns(ann['id'])[0])
    # area is the area of the segmentation polygons, as the COCO API rasterises them.
    assert int(mask.sum()) == ann['area']


def test_keypoint_and_bbox_invariants(crowdpose_set, coco_set):
  for summary, js in ((crowdpose_set, joints_lib.CROWDPOSE), (coco_set, joints_lib.COCO)):
    images, anns, _ = _all(summary)
    by_id = {im['id']: im for im in images}
    assert len(by_id) == len(images)
    assert len({a['id'] for a in anns}) == len(anns)
    visibilities = set()
    for ann in anns:
      im = by_id[ann['image_id']]
      kp = np.array(ann['keypoints'], np.float64).reshape(js.num_joints, 3)
      v = kp[:, 2]
      visibilities |= set(v.tolist())
      assert set(v.tolist()) <= {0.0, 1.0, 2.0}
      assert ann['num_keypoints'] == int((v > 0).sum()) > 0
      assert ann['iscrowd'] == 0 and ann['category_id'] == 1
      np.testing.assert_array_equal(kp[v == 0, :2], 0.0)
      lab = kp[v > 0]
      assert (lab[:, 0] >= 0).all() and (lab[:, 0] <= im['width'] - 1).all()
      assert (lab[:, 1] >= 0).all() and (lab[:, 1] <= im['height'] - 1).all()
      x, y, w, h = ann['bbox']
      assert w > 0 and h > 0 and x >= 0 and y >= 0
      assert x + w <= im['width'] + 1e-6 and y + h <= im['height'] + 1e-6
      assert (lab[:, 0] >= x - 0.01).all() and (lab[:, 0] <= x + w + 0.01).all()
      assert (lab[:, 1] >= y - 0.01).all() and (lab[:, 1] <= y + h + 0.01).all()
    # Over a few dozen images there are visible, occluded and unlabelled joints.
    assert visibilities == {0.0, 1.0, 2.0}


def test_crowd_index_in_json_matches_formula(crowdpose_set):
  images, anns, _ = _all(crowdpose_set)
  crowded = 0
  for im in images:
    mine = [a for a in anns if a['image_id'] == im['id']]
    kps = [np.reshape(a['keypoints'], (14, 3)) for a in mine]
    expected = synthetic.crowd_index(kps, [a['bbox'] for a in mine])
    assert im['crowdIndex'] == pytest.approx(round(expected, 2), abs=1e-9)
    crowded += im['crowdIndex'] > 0
  assert crowded > 0


def test_crowd_index_hand_made_example():
  # Person A: box [0, 0, 10, 10], own joints (1, 1), (2, 2), (9, 9) and one unlabelled joint.
  # Person B: box [8, 8, 10, 10], own joints (9, 8), (17, 17); (9, 8) lies in A's box.
  # Person C: box [30, 30, 5, 5] with no labelled joint: no ratio, left out of the mean.
  # A: N_a = 3, N_b = 1 (B's (9, 8)).  B: N_a = 2, N_b = 1 (A's (9, 9)).
  # CrowdIndex = (1/3 + 1/2) / 2 = 5/12.
  a = [[1, 1, 2], [2, 2, 1], [9, 9, 2], [0, 0, 0]]
  b = [[9, 8, 2], [17, 17, 2], [0, 0, 0], [0, 0, 0]]
  c = [[0, 0, 0]] * 4
  boxes = [[0, 0, 10, 10], [8, 8, 10, 10], [30, 30, 5, 5]]
  assert synthetic.crowd_index([a, b, c], boxes) == pytest.approx(5 / 12)
  assert synthetic.crowd_index([a], boxes[:1]) == 0.0
  assert synthetic.crowd_index([], []) == 0.0
  with pytest.raises(ValueError, match='bboxes'):
    synthetic.crowd_index([a, b], boxes)


def test_train_val_disjoint(crowdpose_set):
  train = _load(crowdpose_set['json']['train'])
  val = _load(crowdpose_set['json']['val'])
  assert not {im['id'] for im in train['images']} & {im['id'] for im in val['images']}
  assert not {im['file_name'] for im in train['images']} & {im['file_name'] for im in val['images']}
  assert not {a['id'] for a in train['annotations']} & {a['id'] for a in val['annotations']}
  assert {a['image_id'] for a in val['annotations']} <= {im['id'] for im in val['images']}
  assert [synthetic.is_val(i, 0.25) for i in range(8)] == [False, False, False, True] * 2


def test_max_people_and_images_are_not_blank(tmp_path):
  s = _gen(tmp_path / 'o', 12, seed=9, size=64, max_people=1, val_fraction=0.0)
  images, anns, _ = _all(s)
  assert s['num_images'] == {'train': 12, 'val': 0}
  counts = np.bincount([a['image_id'] for a in anns], minlength=13)
  assert counts.max() <= 1
  # Cluttered backgrounds: no image is a flat colour.
  for im in images:
    assert _pixels(tmp_path / 'o' / 'images' / im['file_name']).std() > 10


def test_figure_left_right_follow_facing():
  rng = np.random.default_rng(0)
  pose = sf.sample_pose(rng)
  pose.family, pose.roll, pose.lean, pose.side_bend, pose.twist = 'stand', 0.0, 0.0, 0.0, 0.0
  pose.arms[:, :3] = np.deg2rad([10, 0, 0])
  pose.legs[:] = np.deg2rad([5, 0, 0])
  fig = sf.build_figure(pose, rng)
  pt = sf.PT
  for yaw, left_on_right in ((0.0, True), (np.pi, False)):
    pose.yaw = yaw
    uv, depth = sf.project(fig, pose)
    for side in ('shoulder', 'hip', 'ankle'):
      assert (uv[pt[f'left_{side}'], 0] > uv[pt[f'right_{side}'], 0]) == left_on_right
    # The face points toward the camera only when facing it.
    assert (depth[pt['nose']] > depth[pt['head_center']]) == left_on_right
  # Standing proportions: head top to ankles is about one body height, head above neck.
  pose.yaw = 0.0
  uv, _ = sf.project(fig, pose)
  height = uv[[pt['left_ankle'], pt['right_ankle']], 1].mean() - uv[pt['head'], 1]
  assert 0.85 < height < 1.1
  assert uv[pt['head'], 1] < uv[pt['neck'], 1] < uv[pt['left_hip'], 1] < uv[pt['left_knee'], 1]


def test_facing_odds_control_yaw():
  rng = np.random.default_rng(1)
  deg = lambda f: np.rad2deg([sf.sample_pose(rng, f).yaw for _ in range(300)])
  assert (np.abs(deg((1.0, 0.0, 0.0))) <= 35).all()
  away = deg((0.0, 1.0, 0.0))
  assert ((away >= 145) & (away <= 215)).all()
  side = np.abs(deg((0.0, 0.0, 1.0)))
  assert ((side >= 35) & (side <= 145)).all()
  mixed = np.abs(deg(sf.DEFAULT_FACING))  # all three kinds appear by default
  assert (mixed <= 35).any() and (mixed >= 145).any() and ((mixed > 35) & (mixed < 145)).any()


def test_bad_arguments_raise_clear_errors(tmp_path):
  with pytest.raises(ValueError, match='--num-images'):
    synthetic.generate(tmp_path, 0, 0, progress=False)
  with pytest.raises(ValueError, match='--joints'):
    synthetic.generate(tmp_path, 1, 0, joints='mpii', progress=False)
  with pytest.raises(ValueError, match='--val-fraction'):
    synthetic.generate(tmp_path, 1, 0, val_fraction=1.0, progress=False)
  with pytest.raises(ValueError, match='--max-people'):
    synthetic.generate(tmp_path, 1, 0, max_people=100, progress=False)
  with pytest.raises(ValueError, match='--seed'):
    synthetic.generate(tmp_path, 1, -1, progress=False)


def test_cli_synth(tmp_path, capsys):
  argv = ['--out', str(tmp_path / 'cli'), '--num-images', '5', '--seed', '1', '--size', '64',
          '--val-fraction', '0.4', '--quiet']
  parser = argparse.ArgumentParser()
  synthetic.add_synth_arguments(parser)
  assert synthetic.run_synth(parser.parse_args(argv)) == 0
  line = capsys.readouterr().out.strip()
  assert line.startswith('synth: 3 train + 2 val images'), line
  assert len(line.splitlines()) == 1
  assert len(_load(tmp_path / 'cli' / 'json' / 'crowdpose_val.json')['images']) == 2
