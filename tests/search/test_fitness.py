"""Fitness: the recalibrated sub-net inside the super-net predicts what the recalibrated,
extracted sub-net predicts through the Predictor at fixed input; one set of compiled programs per
resolution whatever the sub-net; the same arch scores the same AP twice."""
import jax
import numpy as np
import pytest

from litepose_jax import joints as joints_lib
from litepose_jax import models
from litepose_jax import nas
from litepose_jax.data import normalize
from litepose_jax.errors import UserError
from litepose_jax.evaluation import split as split_lib
from litepose_jax.inference import predictor as predictor_lib
from litepose_jax.nas import recalibrate as recalibrate_lib
from litepose_jax.search import fitness as fitness_lib
from litepose_jax.search import splits as splits_lib
from tests.nas.helpers import LAX
from tests.search.helpers import JOINTS
from tests.search.helpers import SPACE
from tests.search.helpers import search_setup

CALIB_BATCH, EVAL_BATCH = 4, 4


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  return search_setup(tmp_path_factory.mktemp('fitness'))


@pytest.fixture(scope='module')
def fitness(setup):
  net, variables, cfg, splits = setup
  return fitness_lib.Fitness(net, variables, cfg, splits, calib_batch=CALIB_BATCH,
                             eval_batch=EVAL_BATCH)


def _arch(seed, size=64):
  arch = nas.sample(SPACE, seed)
  arch['img_size'] = size
  return arch


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _top(results, image_id, k=5):
  """The k best-scored detections of one image (stable under float noise, unlike the weakest
  people of a random net, where a last-bit difference can split or merge one)."""
  mine = sorted((r for r in results if r['image_id'] == image_id), key=lambda r: -r['score'])
  return mine[:k]


def test_equals_the_extracted_subnet_through_the_predictor(setup, fitness):
  net, variables, cfg, splits = setup
  arch = _arch(3)
  # Recalibration: nas.recalibrate on the calibration ids (host merge) gives the same statistics.
  batches = recalibrate_lib.calibration_batches(cfg, 64, len(splits.calibration_ids),
                                                CALIB_BATCH, 0, image_ids=splits.calibration_ids)
  recalibrated = recalibrate_lib.recalibrate(net, variables, arch, batches)
  got, want = _flat(fitness.recalibrated(arch)), _flat(recalibrated)
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # Maps: the extracted sub-net, every search image fitted into 64 x 64, flip test.
  sub = models.create_model(arch, JOINTS, **LAX)
  backend = predictor_lib.JaxBackend(sub, nas.extract_subnet(recalibrated, arch, JOINTS),
                                     joints_lib.get_joint_set('crowdpose'), 64)
  backend.input_shape = (64, 64)  # the fixed-input protocol
  predictor = predictor_lib.Predictor(backend, size=64, flip=True, keep_maps=True)
  by_id = {r.image_id: r.file_path for r in fitness._records}  # pylint: disable=protected-access
  images = [split_lib.SplitImage(i, by_id[i]) for i in splits.search_ids]
  kept = []
  want = split_lib.predict_split(predictor, images, progress=False,
                                 on_prediction=lambda im, pred: kept.append(pred.maps))
  heat, tags = fitness.maps(arch)
  assert heat.shape == (len(images), 32, 32, JOINTS) and tags.shape[-1] == 2
  np.testing.assert_allclose(heat, np.stack([m['heatmaps'] for m in kept]), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(tags, np.stack([m['tags'] for m in kept]), rtol=1e-4, atol=1e-5)
  # People: the same (a random net finds many, so there is something to compare).
  got = fitness.predict(arch)
  assert len(want) > 20
  assert abs(len(got) - len(want)) <= 0.02 * len(want)
  for image_id in splits.search_ids:
    a, b = _top(got, image_id), _top(want, image_id)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose([r['score'] for r in a], [r['score'] for r in b], atol=1e-4)
    np.testing.assert_allclose([r['keypoints'] for r in a], [r['keypoints'] for r in b],
                               atol=0.05)
  want_ap = split_lib.score(splits.search_gt, want, 'crowdpose', len(images))['AP']
  assert fitness.score(arch) == pytest.approx(want_ap, abs=1e-3)


def test_no_compilation_after_the_first_subnet_and_deterministic(fitness):
  first = _arch(0)
  results = fitness.predict(first)
  ap = fitness.score(first)
  compiles = fitness.compiles
  assert compiles == 3  # calibration step, statistics merge, maps: one each
  others = [fitness.predict(_arch(seed)) for seed in (1, 2)]
  assert fitness.compiles == compiles
  # Other sub-nets predict other people; the same sub-net, scored again, the same ones.
  assert all(o != results for o in others)
  assert fitness.predict(first) == results
  assert fitness.score(first) == ap
  assert fitness.compiles == compiles


def test_bad_arguments_are_refused(setup, tmp_path):
  net, variables, cfg, splits = setup
  with pytest.raises(UserError, match='eval_batch'):
    fitness_lib.Fitness(net, variables, cfg, splits, eval_batch=0)
  other = splits_lib.SearchSplits(splits.dataset, splits.ann_file, splits.image_dir,
                                  splits.calibration_ids, [10 ** 6], splits.search_gt, 'x.json')
  with pytest.raises(UserError, match='search image ids of x.json'):
    fitness_lib.Fitness(net, variables, cfg, other)
  fit = fitness_lib.Fitness(net, variables, cfg, splits)
  with pytest.raises(ValueError, match='not a local device'):
    fit.score(_arch(0), device=object())
  arch = _arch(0)
  arch['backbone_setting'][0]['num_blocks'] = 3  # the super-net has 2 blocks there
  with pytest.raises(UserError, match='num_blocks'):
    fit.score(arch, device=jax.local_devices()[0])


def test_calibration_batches_of_the_calibration_ids(setup):
  _, _, cfg, splits = setup
  ids = splits.calibration_ids
  raw = list(recalibrate_lib.calibration_batches(cfg, 64, len(ids), 4, 0, image_ids=ids,
                                                 raw=True))
  floats = list(recalibrate_lib.calibration_batches(cfg, 64, len(ids), 4, 0, image_ids=ids))
  assert len(raw) == 2 and raw[0].dtype == np.uint8 and raw[0].shape == (4, 64, 64, 3)
  for a, b in zip(raw, floats):
    np.testing.assert_array_equal(normalize.normalize_images(a), b)
  # Other images than the whole split's seeded choice of as many.
  whole = list(recalibrate_lib.calibration_batches(cfg, 64, len(ids), 4, 0, raw=True))
  assert any(not np.array_equal(a, b) for a, b in zip(raw, whole))
  with pytest.raises(UserError, match=r'1 not among the usable images.*\[999999\]'):
    recalibrate_lib.calibration_batches(cfg, 64, 4, 4, 0, image_ids=ids[:3] + [999999])
