"""Periodic evaluation during training: run the model on the val split and compute AP.

Uses the inference issue's decoding (litepose_jax.inference) and the evaluator
(litepose_jax.evaluation.evaluate_keypoints). `make_evaluator(config, info, workdir)` returns
`evaluate(forward, variables, step) -> {'AP': ..., ...}`.
"""
from __future__ import annotations

import importlib.util


def _require(module: str) -> None:
  if importlib.util.find_spec(module) is None:
    raise ValueError(f'periodic evaluation needs {module}, which is not available in this '
                     'checkout; set --config.eval.enabled=False to train without it')


def make_evaluator(config, info, workdir: str):
  """The evaluation callable for config.eval on the val split of config.data."""
  _require('litepose_jax.evaluation')
  from litepose_jax.training import eval_impl  # pylint: disable=g-import-not-at-top
  return eval_impl.make_evaluator(config, info, workdir)
