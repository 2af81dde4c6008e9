"""Shared export fixtures: one small random-init XS model exported once per test session."""
import pytest

from litepose_jax import joints
from litepose_jax.models import create_model

SIZE = 64


@pytest.fixture(scope='session')
def xs_model():
  """(module, variables) of a random-init LitePose-XS with non-trivial BN statistics."""
  from litepose_jax.export import fold
  module = create_model('XS', 14, depthwise_impl='lax')
  return module, fold.random_variables(module, SIZE, seed=3)


@pytest.fixture(scope='session')
def xs_fp32(xs_model, tmp_path_factory, sample_data):
  """Path of XS exported at 64 px in fp32 (calibrated on the real sample images)."""
  from litepose_jax.export import cli
  module, variables = xs_model
  out = tmp_path_factory.mktemp('export') / 'xs.tflite'
  cli.export_model(module, variables, str(out), size=SIZE, quantize='none',
                   calibration=str(sample_data / 'crowdpose_sample'),
                   model_cfg={'name': 'XS'}, joint_set=joints.CROWDPOSE, source='test',
                   random_init=True, log=lambda s: None)
  return out

