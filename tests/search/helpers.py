"""Shared builders of the search tests: a tiny search space at 64 / 96 px, a random super-net
checkpoint of it, a small synthetic data set and a data-only config file pointing at it."""
import pathlib

from litepose_jax import checkpoints
from litepose_jax import models
from litepose_jax import nas
from tests.nas.helpers import LAX
from tests.nas.helpers import randomise_bn
from tests.nas.helpers import write_data_config

JOINTS = 14
# Two resolutions, one block per stage in every sub-net (stage 1 of the super-net has two, so
# elastic depth is still exercised): the official widths at a fraction of the compile time.
SPACE = nas.SearchSpace(resolutions=(64, 96), depths=(1, 1, 1, 1), supernet_depths=(1, 2, 1, 1))


def save_supernet(path: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """A random super-net of SPACE (randomised BatchNorm) saved as a checkpoint at `path`."""
  net = nas.create_supernet(JOINTS, SPACE, **LAX)
  variables = randomise_bn(models.init_variables(net, 64, seed), seed + 1)
  checkpoints.save_model(path, variables, nas.supernet_model_config(SPACE, JOINTS))
  return path


def synthetic_data(root: pathlib.Path, num_images: int = 20, seed: int = 0) -> pathlib.Path:
  """A synthetic CrowdPose-layout data set (train + val) of num_images 96-px images at `root`."""
  from litepose_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  synthetic.generate(root, num_images=num_images, seed=seed, size=96, progress=False)
  return root


def data_config(path: pathlib.Path, data_dir: pathlib.Path) -> pathlib.Path:
  """A config file whose only section is the data (train split under data_dir)."""
  return write_data_config(path, data_dir)


def search_data_config(data_dir: pathlib.Path):
  """config.data of the synthetic set at data_dir (training split 'train', one data thread)."""
  from litepose_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  cfg = pipeline.default_data_config()
  cfg.data_dir, cfg.split, cfg.num_parallel_calls = str(data_dir), 'train', 1
  return cfg


def search_setup(root: pathlib.Path, seed: int = 0, space: nas.SearchSpace = SPACE):
  """(super-net of `space` with LAX layers, its random variables, config.data, SearchSplits of 8
  calibration and 6 search images) over a 24-image synthetic set under root."""
  from litepose_jax.search import splits  # pylint: disable=g-import-not-at-top
  cfg = search_data_config(synthetic_data(root / 'data', num_images=24))
  split = splits.carve_splits(cfg, str(root / 'search'), num_calibration=8, num_search=6)
  net = nas.create_supernet(JOINTS, space, **LAX)
  variables = randomise_bn(models.init_variables(net, 64, seed), seed + 1)
  return net, variables, cfg, split
