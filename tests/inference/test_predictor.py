"""Predictor: image coordinates, flip test and multi-scale on a fake network; real-model smoke tests."""
import json

import cv2
import jax
import numpy as np
import pytest

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax.data.targets import render_heatmaps
from litepose_jax.inference import Predictor
from litepose_jax.inference import transforms
from litepose_jax.joints import CROWDPOSE

IMG_H, IMG_W = 120, 160


def _symmetric_people(rng):
  """Two people and their mirror images (joints swapped left/right): a flip-symmetric scene."""
  base = np.zeros((2, 14, 3), np.float32)
  for p, (x0, x1) in enumerate([(8, 60), (20, 70)]):
    base[p, :, 0] = rng.uniform(x0, x1, 14)
    base[p, :, 1] = rng.uniform(10 + 50 * p, 55 + 50 * p, 14)
  base[..., 2] = 1
  mirror = base[:, list(CROWDPOSE.flip_index)].copy()
  mirror[..., 0] = IMG_W - mirror[..., 0]
  return np.concatenate([base, mirror])


class FakeNet:
  """Renders the known people (in image pixels) into out4 / out2 for whatever input it gets."""
  joint_set, input_shape, max_batch, size = CROWDPOSE, None, None, 64

  def __init__(self, people):
    self.people = people

  def __call__(self, images):
    b, h_in, w_in, _ = images.shape
    (w_res, h_res), center, scale = transforms.multi_scale_size(IMG_H, IMG_W, 64, 1.0, 1.0)
    scale = np.array([w_in / h_in * IMG_H / 200.0, IMG_H / 200.0])
    xy = transforms.to_image_coords(self.people, np.zeros(2), [0.5, 0.5], (100, 100))  # copy
    m = transforms.affine_matrix(center, scale, (w_in, h_in))
    xy[..., 0] = self.people[..., 0] * m[0, 0] + m[0, 2]
    xy[..., 1] = self.people[..., 1] * m[1, 1] + m[1, 2]
    outs = []
    for stride in (4, 2):
      kp = xy.copy()
      kp[..., :2] /= stride
      hh, ww = h_in // stride, w_in // stride
      heat = render_heatmaps(kp, max(hh, ww))[:hh, :ww]
      # Tiny noise: exact plateaus from the bilinear projection would make duplicate candidates.
      heat = heat + np.random.default_rng(stride).uniform(0, 1e-3, heat.shape).astype(np.float32)
      tags = np.zeros((hh, ww, 14), np.float32)
      for p in range(len(kp)):
        x0, y0 = np.maximum(kp[p, :, :2].min(0).astype(int) - 2, 0)
        x1, y1 = kp[p, :, :2].max(0).astype(int) + 3
        tags[y0:y1, x0:x1] = 3.0 * (p + 1)
      for p, j in np.ndindex(*kp.shape[:2]):  # boxes overlap: each joint keeps its own tag
        x, y = kp[p, j, :2].astype(int)
        tags[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2, j] = 3.0 * (p + 1)
      outs.append(np.concatenate([heat, tags], -1) if stride == 4 else heat)
    return tuple(np.repeat(o[None], b, 0) for o in outs)


def _sorted(poses):
  return poses[np.lexsort((poses[:, 0, 1], poses[:, 0, 0]))]


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('scales', [(1.0,), (1.0, 0.5)])
@pytest.mark.parametrize('group_at', ['input', 'stride2'])
def test_people_in_image_coordinates(flip, scales, group_at):
  people = _symmetric_people(np.random.default_rng(0))
  image = np.zeros((IMG_H, IMG_W, 3), np.uint8)
  pred = Predictor(FakeNet(people), flip=flip, scales=scales, group_at=group_at)(image)
  assert pred.poses.shape == (4, 14, 3)
  got, want = _sorted(pred.poses), _sorted(people)
  # One stride-2 pixel is 2 input pixels = 2 * 120 / 64 image pixels.
  np.testing.assert_array_less(np.abs(got[..., :2] - want[..., :2]), 2 * IMG_H / 64 + 0.01)
  assert (got[..., 2] > 0.4).all()


def test_nan_heatmaps_raise_a_clear_error():
  class NanNet(FakeNet):
    def __call__(self, images):
      out4, out2 = super().__call__(images)
      out2[:, :3, :3] = np.nan
      return out4, out2
  image = np.zeros((IMG_H, IMG_W, 3), np.uint8)
  with pytest.raises(ValueError, match='NaN heatmaps'):
    Predictor(NanNet(_symmetric_people(np.random.default_rng(0))), flip=False)(image)


def test_transforms_round_trip():
  (w, h), center, scale = transforms.multi_scale_size(425, 640, 448, 1.0, 1.0)
  assert (w, h) == (704, 448)
  (w2, h2), _, _ = transforms.multi_scale_size(640, 425, 448, 1.0, 1.0)
  assert (w2, h2) == (448, 704)
  (w3, h3), _, _ = transforms.multi_scale_size(425, 640, 448, 1.0, 0.5)
  # Official: sizes are computed at the min scale (256 x 448) and scaled by 1 / 0.5.
  assert (w3, h3) == (896, 512)
  pts = np.array([[[10.0, 20.0, 1.0], [600.0, 400.0, 1.0]]])
  m = transforms.affine_matrix(center, scale, (w, h))
  fwd = pts.copy()
  fwd[..., 0] = pts[..., 0] * m[0, 0] + m[0, 2]
  fwd[..., 1] = pts[..., 1] * m[1, 1] + m[1, 2]
  np.testing.assert_allclose(transforms.to_image_coords(fwd, center, scale, (w, h)), pts)
  np.testing.assert_allclose(m[0, 0], 448 / 425)


@pytest.fixture(scope='module')
def xs_checkpoint(tmp_path_factory):
  # XS with 3x3 kernels: the same code paths, a much smaller graph to compile on CPU.
  spec = models.resolve_arch('XS').replace(kernel_size=3)
  module = models.create_model(spec, 14)
  # Random variables from the abstract shapes: compiling init costs as much as the forward pass.
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), np.zeros((1, 64, 64, 3), np.float32))
  rng = np.random.default_rng(0)
  variables = jax.tree_util.tree_map_with_path(
      lambda path, a: (np.ones(a.shape, a.dtype) if 'var' in jax.tree_util.keystr(path) else
                       rng.normal(0, 0.1, a.shape).astype(a.dtype)), dict(shapes))
  path = tmp_path_factory.mktemp('ckpt') / 'xs'
  checkpoints.save_model(path, variables, checkpoints.model_config(spec, 14))
  return path


def test_predict_cli_on_images_and_video(xs_checkpoint, sample_data, tmp_path, capsys):
  from litepose_jax import cli
  out = tmp_path / 'imgs'
  rc = cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source',
                 str(sample_data / 'crowdpose_sample'), '--out', str(out), '--size', '64'])
  assert rc == 0
  drawn = sorted(p.name for p in out.glob('*_poses.jpg'))
  assert drawn == ['103319_poses.jpg', '106848_poses.jpg']
  assert cv2.imread(str(out / drawn[0])).shape == (480, 640, 3)
  results = json.loads((out / 'results.json').read_text())
  assert isinstance(results, list)
  for r in results:
    assert len(r['keypoints']) == 42 and r['category_id'] == 1 and r['image_id'] in (0, 1)
  text = capsys.readouterr().out
  assert 'network' in text and 'decode' in text and 'FPS' in text

  # A small image is drawn upscaled; --min-score changes the drawing, never the results.
  small = tmp_path / 'small'
  small.mkdir()
  rgb = cv2.imread(str(sample_data / 'crowdpose_sample' / '103319.jpg'))
  cv2.imwrite(str(small / 'a.png'), cv2.resize(rgb, (128, 96), interpolation=cv2.INTER_AREA))
  kept = {}
  for min_score in ('0', '1e9'):
    sout = tmp_path / f'small_out_{min_score}'
    assert cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source', str(small),
                     '--out', str(sout), '--size', '64', '--min-score', min_score]) == 0
    assert cv2.imread(str(sout / 'a_poses.jpg')).shape == (384, 512, 3)
    kept[min_score] = json.loads((sout / 'results.json').read_text())
  assert kept['0'] == kept['1e9']

  vout = tmp_path / 'video'
  rc = cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source',
                 str(sample_data / 'video' / 'street.mp4'), '--out', str(vout), '--size', '64',
                 '--max-frames', '3'])
  assert rc == 0
  cap = cv2.VideoCapture(str(vout / 'street_poses.mp4'))
  assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 3
  assert json.loads((vout / 'results.json').read_text()) is not None


def test_predict_cli_keeps_finished_frames_when_stopped(xs_checkpoint, sample_data, tmp_path,
                                                         capsys, monkeypatch):
  import shutil

  from litepose_jax import cli
  from litepose_jax.inference import predictor as predictor_lib
  # A folder whose last image is broken: a clear error, the first two images' outputs kept.
  src = tmp_path / 'src'
  src.mkdir()
  for f in ('103319.jpg', '106848.jpg'):
    shutil.copy(sample_data / 'crowdpose_sample' / f, src / f)
  (src / 'zzz.jpg').write_bytes(b'not a jpeg')
  out = tmp_path / 'imgs'
  rc = cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source', str(src), '--out',
                 str(out), '--size', '64'])
  err = capsys.readouterr().err
  assert rc == 2 and 'zzz.jpg' in err and 'kept the 2 finished frame(s)' in err
  assert sorted(p.name for p in out.glob('*_poses.jpg')) == ['103319_poses.jpg', '106848_poses.jpg']
  assert {r['image_id'] for r in json.loads((out / 'results.json').read_text())} <= {0, 1}

  # Ctrl-C during a video: the mp4 is closed (playable) with the frames done, results written.
  calls = []
  real_call = predictor_lib.Predictor.__call__

  def interrupt_third(self, images):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return real_call(self, images)
  monkeypatch.setattr(predictor_lib.Predictor, '__call__', interrupt_third)
  vout = tmp_path / 'video'
  rc = cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source',
                 str(sample_data / 'video' / 'street.mp4'), '--out', str(vout), '--size', '64'])
  assert rc == 130 and 'kept the 2 finished frame(s)' in capsys.readouterr().err
  assert cv2.VideoCapture(str(vout / 'street_poses.mp4')).get(cv2.CAP_PROP_FRAME_COUNT) == 2
  assert {r['image_id'] for r in json.loads((vout / 'results.json').read_text())} <= {0, 1}


def test_predict_cli_failing_save_does_not_hide_the_error(xs_checkpoint, sample_data, tmp_path,
                                                          capsys, monkeypatch):
  import shutil

  from litepose_jax import cli
  from litepose_jax.inference import predict_cli
  src = tmp_path / 'src'
  src.mkdir()
  shutil.copy(sample_data / 'crowdpose_sample' / '103319.jpg', src / '103319.jpg')
  (src / 'zzz.jpg').write_bytes(b'not a jpeg')

  def broken_close(self):
    raise OSError('disk full')
  monkeypatch.setattr(predict_cli._Outputs, 'close', broken_close)
  rc = cli.main(['predict', '--checkpoint', str(xs_checkpoint), '--source', str(src), '--out',
                 str(tmp_path / 'out'), '--size', '64'])
  err = capsys.readouterr().err
  # The broken image is still the error reported; the failed save is said too.
  assert rc == 2 and 'zzz.jpg' in err and 'saving the finished frames failed: disk full' in err


def test_eval_cli_writes_results_and_metrics(xs_checkpoint, sample_data, tmp_path):
  from litepose_jax import cli
  cfg = tmp_path / 'cfg.py'
  cfg.write_text(
      'import ml_collections\n'
      'def get_config(arg=None):\n'
      '  c = ml_collections.ConfigDict()\n'
      '  c.data = ml_collections.ConfigDict()\n'
      '  c.data.dataset = arg\n'
      f'  c.data.ann_file = {str(sample_data / "crowdpose_sample" / "annotations.json")!r}\n'
      f'  c.data.image_dir = {str(sample_data / "crowdpose_sample")!r}\n'
      '  return c\n')
  rc = cli.main(['eval', '--checkpoint', str(xs_checkpoint), '--config', f'{cfg}:crowdpose',
                 '--size', '64', '--out', str(tmp_path / 'ev')])
  assert rc == 0
  metrics = json.loads((tmp_path / 'ev' / 'eval_crowdpose_metrics.json').read_text())
  assert metrics['images'] == 2 and 0.0 <= metrics['AP'] <= 1.0 and 'AP_hard' in metrics
  assert isinstance(json.loads((tmp_path / 'ev' / 'eval_crowdpose_results.json').read_text()), list)
  assert cli.main(['eval', '--checkpoint', str(xs_checkpoint), '--dataset', 'crowdpose']) == 2


@pytest.mark.parametrize('scales', [(1.0,), (1.0, 0.5)])
def test_keep_maps_maps_image_pixels_onto_the_maps(scales):
  # The kept maps are the scale-1 stride-2 maps; image_to_map puts each true joint on its peak
  # and its person's tag.
  people = _symmetric_people(np.random.default_rng(1))
  image = np.zeros((IMG_H, IMG_W, 3), np.uint8)
  pred = Predictor(FakeNet(people), flip=False, scales=scales, keep_maps=True)(image)
  heat, tags, m = pred.maps['heatmaps'], pred.maps['tags'], pred.maps['image_to_map']
  # Input 64 x 128 (short side 64, long side up to a multiple of 64); with scale 0.5 the official
  # multi-scale sizes make the scale-1 input 128 x 256.
  assert heat.shape[:2] == tags.shape[:2] == ((32, 64) if scales == (1.0,) else (64, 128))
  xy = people[..., :2] @ m[:, :2].T + m[:, 2]
  x, y = np.rint(xy[..., 0]).astype(int), np.rint(xy[..., 1]).astype(int)
  joints = np.arange(14)[None]
  assert (heat[y, x, joints] > 0.5).all()
  want = np.broadcast_to(3.0 * (np.arange(4)[:, None] + 1), (4, 14))
  np.testing.assert_allclose(tags[y, x, joints, 0], want, atol=0.8)
  assert Predictor(FakeNet(people), flip=False)(image).maps is None


def test_flip_test_is_the_predictors_default():
  # The official TEST.FLIP_TEST is True; `litepose predict` / `bench` pass flip=False for speed.
  assert Predictor(FakeNet([])).flip is True
