"""evaluate_keypoints equals xtcocotools / pycocotools run directly; ground truth scores AP 1."""
import contextlib
import io
import json

import numpy as np
import pytest

from litepose_jax import joints
from litepose_jax.evaluation import METRIC_NAMES
from litepose_jax.evaluation import evaluate_keypoints


def _gt_as_results(path):
  data = json.loads(path.read_text())
  return [{'image_id': a['image_id'], 'category_id': 1, 'keypoints': a['keypoints'],
           'score': 1.0} for a in data['annotations'] if a['num_keypoints'] > 0]


def _perturbed(results, seed):
  rng = np.random.default_rng(seed)
  out = []
  for r in results:
    k = np.array(r['keypoints'], float).reshape(-1, 3)
    k[:, :2] += rng.normal(0, 6, k[:, :2].shape)
    k[:, 2] = rng.uniform(0.2, 1.0, len(k))
    out.append(dict(r, keypoints=k.reshape(-1).tolist(), score=float(rng.uniform(0.1, 1))))
  return out + [dict(out[0], score=0.05)]  # a duplicate: a false positive


def _direct(ann, results, dataset):
  with contextlib.redirect_stdout(io.StringIO()):
    if dataset == 'crowdpose':
      from xtcocotools.coco import COCO
      from xtcocotools.cocoeval import COCOeval
      gt = COCO(str(ann))
      ev = COCOeval(gt, gt.loadRes(results), 'keypoints_crowd',
                    np.array(joints.CROWDPOSE.sigmas), use_area=False)
    else:
      from pycocotools.coco import COCO
      from pycocotools.cocoeval import COCOeval
      gt = COCO(str(ann))
      ev = COCOeval(gt, gt.loadRes(results), 'keypoints')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return list(ev.stats)


@pytest.mark.parametrize('dataset', ['crowdpose', 'coco'])
def test_ground_truth_scores_one(sample_data, dataset):
  ann = sample_data / f'{dataset}_sample' / 'annotations.json'
  m = evaluate_keypoints(ann, _gt_as_results(ann), dataset)
  assert list(m) == list(METRIC_NAMES[dataset])
  assert m['AP'] == pytest.approx(1.0) and m['AR'] == pytest.approx(1.0)
  assert m['AP50'] == pytest.approx(1.0)


@pytest.mark.parametrize('dataset', ['crowdpose', 'coco'])
def test_perturbed_equals_library(sample_data, dataset, tmp_path):
  ann = sample_data / f'{dataset}_sample' / 'annotations.json'
  res = _perturbed(_gt_as_results(ann), 0)
  path = tmp_path / 'results.json'
  path.write_text(json.dumps(res))
  m = evaluate_keypoints(ann, str(path), dataset)
  direct = _direct(ann, res, dataset)
  assert list(m.values()) == direct
  assert 0 < m['AP'] < 1


def test_clear_errors(sample_data):
  ann = sample_data / 'crowdpose_sample' / 'annotations.json'
  good = _gt_as_results(ann)
  with pytest.raises(ValueError, match='empty'):
    evaluate_keypoints(ann, [], 'crowdpose')
  with pytest.raises(ValueError, match='not in the ground truth'):
    evaluate_keypoints(ann, [dict(good[0], image_id=123456789)], 'crowdpose')
  with pytest.raises(ValueError, match='expected 42'):
    evaluate_keypoints(ann, [dict(good[0], keypoints=good[0]['keypoints'][:-3])], 'crowdpose')
  with pytest.raises(ValueError, match='dataset'):
    evaluate_keypoints(ann, good, 'mpii')
  with pytest.raises(FileNotFoundError):
    evaluate_keypoints(ann.parent / 'missing.json', good, 'crowdpose')
