"""Model checkpoints: a user's broken checkpoint is reported as a UserError naming the file."""
import json

import pytest

from litepose_jax import checkpoints
from litepose_jax.errors import UserError


def test_config_round_trip():
  cfg = checkpoints.model_config('XS', 14)
  assert cfg['joint_set'] == 'crowdpose' and cfg['name'] == 'XS'
  module = checkpoints.model_from_config(json.loads(json.dumps(cfg)))
  assert module.num_joints == 14 and module.arch.name == 'XS'


def test_broken_checkpoints_are_user_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='checkpoint not found'):
    checkpoints.find_checkpoint(tmp_path / 'absent')
  with pytest.raises(FileNotFoundError, match='is not a litepose checkpoint'):
    checkpoints.find_checkpoint(tmp_path)
  (tmp_path / checkpoints.MODEL_JSON).write_text('{not json')
  with pytest.raises(UserError, match='model.json is not valid JSON'):
    checkpoints.load_model(tmp_path)
  (tmp_path / checkpoints.MODEL_JSON).write_text(json.dumps({'arch': 'XS'}))
  with pytest.raises(UserError, match="lacks the field 'num_joints'"):
    checkpoints.load_model(tmp_path)
  (tmp_path / checkpoints.MODEL_JSON).write_text(json.dumps(checkpoints.model_config('XS', 14)))
  with pytest.raises(FileNotFoundError, match='variables is missing'):
    checkpoints.load_model(tmp_path)
