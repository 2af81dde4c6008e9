"""tf.data pipeline: shapes, target consistency, flip, masks, determinism, sharding, resume, bad data."""
import json
import time

import cv2
import numpy as np
import pytest

from litepose_jax.data import augment
from litepose_jax.data import datasets
from litepose_jax.data import normalize
from litepose_jax.data import pipeline
from litepose_jax.data import targets
from litepose_jax.errors import UserError
from tests.data.helpers import copy_sample


def _cfg(data_dir, dataset='crowdpose', size=64, batch=4, **kw):
  c = pipeline.default_data_config()
  c.dataset, c.data_dir, c.split, c.input_size, c.batch_size = dataset, str(data_dir), 'train', size, batch
  c.update(kw)
  return c


def _take(cfg, n, **kw):
  it = pipeline.make_train_dataset(cfg, **kw).as_numpy_iterator()
  return [next(it) for _ in range(n)]


def test_batch_shapes_and_targets_agree(sample_data):
  b = _take(_cfg(sample_data / 'crowdpose_sample'), 1)[0]
  assert b['image'].shape == (4, 64, 64, 3) and b['image'].dtype == np.uint8  # RGB bytes
  assert b['heatmaps4'].shape == (4, 16, 16, 14) and b['heatmaps2'].shape == (4, 32, 32, 14)
  assert b['masks4'].shape == (4, 16, 16) and b['masks2'].shape == (4, 32, 32)
  assert b['joints'].shape == (4, 30, 14, 2) and b['joints'].dtype == np.int32
  np.testing.assert_array_equal(b['valid'], 1)
  assert b['image'].max() > 100
  for i in range(4):
    idx = b['joints'][i][b['joints'][i][..., 1] > 0][:, 0]
    assert len(idx) > 0
    j, rest = np.divmod(idx, 16 * 16)
    y, x = np.divmod(rest, 16)
    np.testing.assert_array_equal(b['heatmaps4'][i][y, x, j], 1.0)  # every joint is a peak
    assert (b['heatmaps4'][i] == 1.0).sum() == len(idx)


def _samples_with_params(sample_data):
  """(batch of 2 at 128 px, source, [(record index, (center, scale, rot, flip))] per row)."""
  cfg = _cfg(sample_data / 'crowdpose_sample', size=128, batch=2, shuffle=False)
  source = datasets.open_from_config(cfg)
  b = _take(cfg, 1, source=source)[0]
  loader = pipeline._Loader(source, cfg, (128,))
  rows = []
  for i in range(2):
    rec_idx = int(np.flatnonzero([r.image_id == b['image_id'][i] for r in source.records])[0])
    rows.append((rec_idx, loader.params(int(b['index'][i]), source.records[rec_idx])))
  return b, source, rows


def test_targets_match_the_affine(sample_data):
  b, source, rows = _samples_with_params(sample_data)
  for i, (rec_idx, (center, scale, rot, flip)) in enumerate(rows):
    kp = source.keypoints[rec_idx]
    for size, key in ((32, 'heatmaps4'), (64, 'heatmaps2')):
      m = augment.affine_matrix(center, scale, rot, size, flip)
      want = targets.render_heatmaps(
          augment.transform_keypoints(kp, m, flip, source.joint_set.flip_index), size)
      np.testing.assert_array_equal(b[key][i], want)


def test_flip_index_roundtrip():
  from litepose_jax import joints
  rng = np.random.default_rng(1)
  for js in (joints.CROWDPOSE, joints.COCO):
    kp = np.concatenate([rng.uniform(0, 63, (3, js.num_joints, 2)),
                         rng.integers(0, 3, (3, js.num_joints, 1))], -1).astype(np.float32)
    f = augment.affine_matrix((32, 32), 0.32, 0.0, 64, flip=True)  # identity crop, flipped
    once = augment.transform_keypoints(kp, f, True, js.flip_index)
    # Left and right swap: a flipped left shoulder is the mirrored right shoulder.
    np.testing.assert_allclose(once[:, 0, 0], 63 - kp[:, js.flip_index[0], 0], atol=1e-4)
    back = augment.transform_keypoints(once, f, True, js.flip_index)
    np.testing.assert_allclose(back, kp, atol=1e-4)


def test_flipped_sample_mirrors_image_and_joints(sample_data):
  base = dict(shuffle=False, batch=2, size=64, max_rotation=15.0, image_dtype='float32')
  a = _take(_cfg(sample_data / 'crowdpose_sample', flip_prob=0.0, **base), 1)[0]
  f = _take(_cfg(sample_data / 'crowdpose_sample', flip_prob=1.0, **base), 1)[0]
  assert np.abs(f['image'] - a['image'][:, :, ::-1]).mean() < 0.02
  np.testing.assert_array_equal(f['masks2'], a['masks2'][:, :, ::-1])
  flip_index = list(datasets.joints_lib.CROWDPOSE.flip_index)
  ha, hf = a['heatmaps2'], f['heatmaps2'][..., flip_index]  # back to the original joint order
  for i in range(2):
    ya, xa, ja = np.nonzero(ha[i] == 1.0)
    yf, xf, jf = np.nonzero(hf[i] == 1.0)
    pa = sorted(zip(ja, ya, xa))
    pf = sorted(zip(jf, yf, 31 - xf))
    assert len(pa) == len(pf) > 0
    for (j1, y1, x1), (j2, y2, x2) in zip(pa, pf):
      # x -> R-1-x on the float position, then truncation: equal or one pixel apart.
      assert j1 == j2 and y1 == y2 and x2 - x1 in (0, 1)


def test_coco_crowd_region_is_masked(tmp_path, sample_data):
  def edit(d):
    img = next(i for i in d['images'] if i['id'] == 785)
    d['images'] = [img]
    anns = [a for a in d['annotations'] if a['image_id'] == 785]
    h, w = img['height'], img['width']
    # A crowd region as RLE: the left quarter of the image (column-major counts).
    rle = {'size': [h, w], 'counts': [0, h * (w // 4), h * (w - w // 4)]}
    anns.append({'id': 1, 'image_id': 785, 'category_id': 1, 'iscrowd': 1, 'num_keypoints': 0,
                 'keypoints': [0] * 51, 'segmentation': rle, 'bbox': [0, 0, w // 4, h],
                 'area': h * w // 4})
    d['annotations'] = anns
  copy_sample(sample_data / 'coco_sample', tmp_path, edit)
  fixed = dict(min_scale=1.0, max_scale=1.0, max_rotation=0.0, max_translate=0.0, flip_prob=0.0,
               batch=1, size=64)
  b = _take(_cfg(tmp_path, 'custom', **fixed), 1)[0]
  # 640 x 425 image, short side 425 -> crop 425 px wide around the centre, 16 px map: x = 16/425 *
  # (x_img - 320) + 8; the crowd region x_img < 160 covers map x < 1.98; the image x_img >= 107.5.
  m = b['masks4'][0]
  assert m[:, 3:].all() and not m[:, :2].any()
  b2 = _take(_cfg(tmp_path, 'custom', mask_outside_image=False, **fixed), 1)[0]
  assert not b2['masks4'][0][:, :2].any() and b2['masks4'][0][:, 3:].all()


def test_deterministic_and_resume(sample_data):
  cfg = _cfg(sample_data / 'coco_sample', 'coco', batch=2, size=64)
  run1 = _take(cfg, 5)
  run2 = _take(cfg, 5)
  resumed = _take(cfg, 2, start_step=3)
  for a, b in zip(run1, run2):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  for a, b in zip(run1[3:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  assert [int(i) for i in resumed[0]['index']] == [6, 7]


def test_two_hosts_disjoint_and_cover_the_epoch(sample_data):
  cfg = _cfg(sample_data / 'coco_sample', 'coco', batch=4, size=64)
  hosts = [_take(cfg, 2, process_index=p, process_count=2) for p in range(2)]
  for step in range(2):
    idx = [set(h[step]['index'].tolist()) for h in hosts]
    assert not idx[0] & idx[1]
    assert idx[0] | idx[1] == set(range(4 * step, 4 * step + 4))
    ids = hosts[0][step]['image_id'].tolist() + hosts[1][step]['image_id'].tolist()
    assert sorted(ids) == [785, 40083, 196141, 197388]  # each epoch is every image once
  whole = _take(cfg, 1)[0]
  np.testing.assert_array_equal(
      np.sort(np.concatenate([hosts[0][0]['index'], hosts[1][0]['index']])), whole['index'])
  with pytest.raises(ValueError, match='divisible'):
    pipeline.make_train_dataset(_cfg(sample_data / 'coco_sample', 'coco', batch=3),
                                process_count=2)


def test_variable_input_sizes_per_step(sample_data):
  cfg = _cfg(sample_data / 'crowdpose_sample', batch=2, input_sizes=(64, 128))
  host = [_take(cfg, 6, process_index=p, process_count=2) for p in range(2)]
  sizes = [b['image'].shape[1] for b in host[0]]
  assert set(sizes) == {64, 128}
  assert sizes == [b['image'].shape[1] for b in host[1]]  # all hosts agree on each step's size
  for b in host[0]:
    s = b['image'].shape[1]
    assert b['heatmaps4'].shape[1:3] == (s // 4, s // 4) and b['masks2'].shape[1] == s // 2
    assert b['joints'][..., 0].max() < 14 * (s // 4) ** 2
  with pytest.raises(ValueError, match='multiple of 16'):
    pipeline.make_train_dataset(_cfg(sample_data / 'crowdpose_sample', input_sizes=(70,)))


def test_drawn_size_batches_equal_batches_rendered_at_that_size(sample_data):
  # Super-net training: a step at a drawn size gets exactly what a single-size run at that size
  # renders for the same stream positions (images, sigma-2 heatmaps, masks, joint indices), not
  # resized tensors of the largest size.
  mixed = _take(_cfg(sample_data / 'crowdpose_sample', batch=2, input_sizes=(64, 128)), 4)
  for size in (64, 128):
    fixed = _take(_cfg(sample_data / 'crowdpose_sample', batch=2, size=size), 4)
    steps = [t for t, b in enumerate(mixed) if b['image'].shape[1] == size]
    assert steps
    for t in steps:
      for key in ('image', 'heatmaps4', 'heatmaps2', 'masks4', 'masks2', 'joints', 'index'):
        np.testing.assert_array_equal(mixed[t][key], fixed[t][key], err_msg=f'{key} step {t}')
    assert fixed[steps[0]]['heatmaps4'].max() == pytest.approx(1.0)  # peaks survive


def test_unreadable_image_is_reported_zeroed_or_strict(tmp_path, sample_data):
  copy_sample(sample_data / 'crowdpose_sample', tmp_path)
  (tmp_path / '103319.jpg').write_bytes(b'not a jpeg')
  cfg = _cfg(tmp_path, 'crowdpose', batch=2, shuffle=False)
  source = datasets.open_from_config(cfg)
  b = _take(cfg, 1, source=source)[0]
  bad = int(np.flatnonzero(b['image_id'] == 103319)[0])
  assert b['valid'][bad] == 0 and b['valid'][1 - bad] == 1
  assert not b['heatmaps4'][bad].any() and not b['masks4'][bad].any()
  assert not b['joints'][bad].any() and b['joints'][1 - bad].any()
  assert source.bad.counts() == {'unreadable image': 1}
  assert '103319.jpg' in source.bad.items[0][1] and source.bad.items[0][2] == 103319
  cfg.strict = True
  with pytest.raises(Exception, match=r'103319\.jpg \(image id 103319\)'):
    _take(cfg, 1)


def test_scale_type_typo_is_a_user_error(sample_data):
  cfg = _cfg(sample_data / 'crowdpose_sample', scale_type='shrot')
  with pytest.raises(UserError, match=r"data\.scale_type must be 'short' or 'long', got 'shrot'"):
    pipeline.make_train_dataset(cfg)
  long_side = _take(_cfg(sample_data / 'crowdpose_sample', scale_type='long', batch=2), 1)[0]
  assert long_side['valid'].all()


def test_reads_synthetic_output_as_crowdpose(tmp_path):
  from litepose_jax.data import synthetic
  synthetic.generate(tmp_path, 6, 0, size=96)
  with open(tmp_path / 'json' / 'crowdpose_train.json') as f:
    assert json.load(f)['images']
  b = _take(_cfg(tmp_path, 'crowdpose', batch=2), 1)[0]
  assert b['valid'].all() and b['heatmaps4'].max() == 1.0


def test_uint8_images_normalise_to_the_float_ones(sample_data):
  f = _take(_cfg(sample_data / 'crowdpose_sample', batch=2, image_dtype='float32'), 1)[0]
  u = _take(_cfg(sample_data / 'crowdpose_sample', batch=2, image_dtype='uint8'), 1)[0]
  assert u['image'].dtype == np.uint8 and f['image'].dtype == np.float32
  assert -2.2 < f['image'].min() < 0 < f['image'].max() < 2.7  # ImageNet-normalised
  np.testing.assert_allclose(normalize.normalize_images(u['image']), f['image'], atol=1e-5)
  np.testing.assert_array_equal(u['heatmaps2'], f['heatmaps2'])


def test_images_are_rgb_warps_of_the_file(sample_data):
  # The batch image is the official RGB decode (cv2.imread + BGR2RGB) warped by the sample's affine.
  import cv2
  b, source, rows = _samples_with_params(sample_data)
  for i, (rec_idx, (center, scale, rot, flip)) in enumerate(rows):
    rec = source.records[rec_idx]
    rgb = cv2.cvtColor(cv2.imread(rec.file_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    want = cv2.warpAffine(rgb, augment.affine_matrix(center, scale, rot, 128, flip), (128, 128),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_array_equal(b['image'][i], want)


def test_model_input_normalises_bytes_only():
  from litepose_jax.data import normalize
  u = np.array([[[0, 128, 255]]], np.uint8)
  want = (u / 255.0 - np.array(normalize.MEAN)) / np.array(normalize.STD)
  np.testing.assert_allclose(normalize.model_input(u), want, rtol=1e-5)
  x = np.ones((1, 1, 3), np.float32)
  assert normalize.model_input(x) is x
  np.testing.assert_array_equal(normalize.to_uint8(normalize.model_input(u)), u)


def test_opencv_is_single_threaded_only_inside_the_data_workers(sample_data):
  before = cv2.getNumThreads()
  cv2.setNumThreads(3)
  try:
    cfg = _cfg(sample_data / 'crowdpose_sample', batch=2)
    source = datasets.open_from_config(cfg)
    loader = pipeline._Loader(source, cfg, (64,))
    seen, load_into = [], loader.load_into
    loader.load_into = lambda *a: (seen.append(cv2.getNumThreads()), load_into(*a))
    loader(np.arange(2), np.arange(2))
    assert seen == [1, 1] and cv2.getNumThreads() == 3
    _take(cfg, 2, source=source)
    # The prefetching workers stop once the buffer is full; then OpenCV has its threads back
    # (for the periodic evaluation's warps).
    deadline = time.monotonic() + 20
    while cv2.getNumThreads() != 3 and time.monotonic() < deadline:
      time.sleep(0.05)
    assert cv2.getNumThreads() == 3
  finally:
    cv2.setNumThreads(before)
