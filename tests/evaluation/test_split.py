"""evaluate_split: predict a split, restrict the ground truth to it, score; no people -> 0."""
import json

import numpy as np
import pytest

from litepose_jax.evaluation import METRIC_NAMES
from litepose_jax.evaluation import load_gt
from litepose_jax.evaluation import split as split_lib
from litepose_jax.inference.predictor import Prediction


def _gt_poses(ann_file):
  """image id -> [P, 14, 3] keypoints of its annotated people (x, y, score 1)."""
  with open(ann_file) as f:
    anns = json.load(f)['annotations']
  out = {}
  for a in anns:
    k = np.asarray(a['keypoints'], np.float32).reshape(14, 3)
    if (k[:, 2] > 0).any():
      k[:, 2] = 1.0
      out.setdefault(a['image_id'], []).append(k)
  return {i: np.stack(p) for i, p in out.items()}


class _Oracle:
  """A 'predictor' that returns the ground truth of the image it is called on, in order."""

  def __init__(self, people_by_call):
    self.people = list(people_by_call)

  def __call__(self, rgb):
    assert rgb.ndim == 3
    poses = self.people.pop(0)
    return Prediction(poses, np.ones(len(poses), np.float32), {})


@pytest.fixture()
def split(sample_data):
  ann = str(sample_data / 'crowdpose_sample' / 'annotations.json')
  images = split_lib.split_images(load_gt(ann, 'crowdpose'), str(sample_data / 'crowdpose_sample'))
  return ann, images


def test_split_images_sorted_by_id(split, sample_data):
  _, images = split
  assert [im.image_id for im in images] == [103319, 106848]
  assert images[0].path == str(sample_data / 'crowdpose_sample' / '103319.jpg')


def test_partial_split_is_scored_on_its_own_ground_truth(split, tmp_path):
  ann, images = split
  first = images[:1]
  truth = _gt_poses(ann)[first[0].image_id]
  prefix = str(tmp_path / 'eval')
  metrics, results = split_lib.evaluate_split(_Oracle([truth]), ann, first, 'crowdpose',
                                              out_prefix=prefix, restrict=True, progress=False,
                                              log=lambda s: None)
  assert len(results) == len(truth) and metrics['AP'] == pytest.approx(1.0)
  subset = json.loads((tmp_path / 'eval_gt_subset.json').read_text())
  assert [im['id'] for im in subset['images']] == [first[0].image_id]
  assert {a['image_id'] for a in subset['annotations']} == {first[0].image_id}
  assert json.loads((tmp_path / 'eval_results.json').read_text()) == results
  assert not list(tmp_path.glob('*.tmp'))  # atomic writes leave no temporary files
  # Against the whole split the people of the skipped image count as missed.
  full, _ = split_lib.evaluate_split(_Oracle([truth]), ann, first, 'crowdpose', progress=False,
                                     log=lambda s: None)
  assert full['AR'] < metrics['AR']


def test_no_detections_score_zero_with_a_message(split):
  ann, images = split
  said = []
  metrics, results = split_lib.evaluate_split(
      _Oracle([np.zeros((0, 14, 3), np.float32)] * 2), ann, images, 'crowdpose', progress=False,
      log=said.append)
  assert results == [] and metrics == {k: 0.0 for k in METRIC_NAMES['crowdpose']}
  assert said == ['no detections on any of the 2 image(s): every metric is 0']


def test_predictions_are_seen_in_order(split):
  ann, images = split
  seen = []
  split_lib.predict_split(_Oracle([np.zeros((0, 14, 3), np.float32)] * 2), images,
                          progress=False, on_prediction=lambda im, p: seen.append(im.image_id))
  assert seen == [103319, 106848]


def test_restrict_needs_a_place_for_the_subset(split):
  ann, images = split
  with pytest.raises(ValueError, match='out_prefix'):
    split_lib.evaluate_split(_Oracle([]), ann, images, 'crowdpose', restrict=True)
