"""The inference Predictor through the exported .tflite finds the same people as through JAX."""
import numpy as np

from litepose_jax import joints
from litepose_jax.inference import Predictor
from litepose_jax.inference.predictor import JaxBackend


def test_predict_tflite_matches_jax(xs_model, xs_fp32):
  module, variables = xs_model
  rng = np.random.default_rng(7)
  image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)  # synthetic, not square
  # Random weights give weak maps: a low threshold makes sure people are found at all.
  kw = dict(detection_threshold=0.02, max_people=5)
  backend = JaxBackend(module, variables, joints.CROWDPOSE, 64)
  # Same fixed 64x64 network input as the .tflite (fit + pad) so both see identical pixels.
  backend.input_shape = (64, 64)
  jax_pred = Predictor(backend, **kw)(image)
  tfl_pred = Predictor.from_path(str(xs_fp32), fixed_input=True, **kw)(image)
  assert len(jax_pred.poses) > 0
  assert tfl_pred.poses.shape == jax_pred.poses.shape
  np.testing.assert_allclose(tfl_pred.scores, jax_pred.scores, atol=1e-3)
  np.testing.assert_allclose(tfl_pred.poses, jax_pred.poses, atol=1e-2)
