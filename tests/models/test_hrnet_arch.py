"""HigherHRNet architecture schema: the official yaml's MODEL.EXTRA, validation naming the field,
presets, create_model's dispatch between the two families."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from litepose_jax import models
from litepose_jax.errors import UserError
from litepose_jax.models import hrnet_arch
from litepose_jax.models.higherhrnet import HigherHRNet
from litepose_jax.models.litepose import LitePose

# The MODEL / DATASET part of LitePose's experiments/crowd_pose/higher_hrnet/w16_512_adam_lr1e-3.yaml
# (values as SUPERNET_SPEC.md §7.1 lists them), with keys the port ignores left in.
W16_512_YAML = """\
DATASET:
  INPUT_SIZE: 512
  NUM_JOINTS: 14
LOSS:
  WITH_AE_LOSS: [True, False]
MODEL:
  EXTRA:
    FINAL_CONV_KERNEL: 1
    PRETRAINED_LAYERS: ['*']
    STEM_INPLANES: 36
    STAGE2:
      NUM_MODULES: 1
      NUM_BRANCHES: 2
      BLOCK: BASIC
      NUM_BLOCKS: [0, 4]
      NUM_CHANNELS: [18, 36]
      FUSE_METHOD: SUM
    STAGE3:
      NUM_MODULES: 4
      NUM_BRANCHES: 3
      BLOCK: BASIC
      NUM_BLOCKS: [0, 0, 4]
      NUM_CHANNELS: [18, 36, 72]
      FUSE_METHOD: SUM
    STAGE4:
      NUM_MODULES: 3
      NUM_BRANCHES: 4
      BLOCK: BASIC
      NUM_BLOCKS: [0, 0, 0, 4]
      NUM_CHANNELS: [18, 36, 72, 144]
      FUSE_METHOD: SUM
    DECONV:
      NUM_DECONVS: 1
      NUM_CHANNELS: [32]
      KERNEL_SIZE: [4]
      NUM_BASIC_BLOCKS: 0
      CAT_OUTPUT: [True]
  NAME: pose_higher_hrnet
  NUM_JOINTS: 14
  TAG_PER_JOINT: True
"""


def _extra() -> dict:
  return hrnet_arch.PRESETS['shrink3'].to_extra()


def test_shrink3_is_the_shipped_w16_512_yaml(tmp_path):
  path = tmp_path / 'w16_512_adam_lr1e-3.yaml'
  path.write_text(W16_512_YAML)
  spec = hrnet_arch.resolve_hrnet(str(path))
  assert spec.name == str(path) and spec.img_size == 512
  assert dataclasses.replace(spec, name='shrink3') == hrnet_arch.PRESETS['shrink3']
  assert isinstance(models.create_model(path, 14), HigherHRNet)


@pytest.mark.parametrize('name', hrnet_arch.preset_names())
def test_presets_round_trip_through_extra(name):
  spec = hrnet_arch.get_hrnet_preset(name.upper())
  back = hrnet_arch.hrnet_from_extra(spec.to_extra(), img_size=spec.img_size, name=name)
  assert back == spec
  assert hrnet_arch.resolve_hrnet(spec.to_config()) == dataclasses.replace(spec, name='custom')


def test_img_size_from_dataset_and_override():
  cfg = hrnet_arch.PRESETS['higherhrnet-w32'].to_config()
  cfg['DATASET']['INPUT_SIZE'] = 640
  assert hrnet_arch.resolve_hrnet(cfg).img_size == 640
  assert hrnet_arch.resolve_hrnet(_extra()).img_size == hrnet_arch.DEFAULT_IMG_SIZE
  assert hrnet_arch.resolve_hrnet('shrink3', img_size=256).img_size == 256
  assert hrnet_arch.get_hrnet_preset('higherhrnet-w48').img_size == 640


def _set(path: str, value):
  """The shrink3 EXTRA with the field at `path` ('STAGE3.NUM_BLOCKS') set (or deleted: None)."""
  extra = copy.deepcopy(_extra())
  *parents, leaf = path.split('.')
  node = extra
  for p in parents:
    node = node[p]
  if value is None:
    del node[leaf]
  else:
    node[leaf] = value
  return extra


@pytest.mark.parametrize('path, value, message', [
    ('STAGE3.NUM_BLOCKS', [4, 4],
     r'MODEL\.EXTRA\.STAGE3\.NUM_BLOCKS: expected 3 integers >= 0, got \[4, 4\]'),
    ('STAGE2.NUM_BLOCKS', [0, -1], r'MODEL\.EXTRA\.STAGE2\.NUM_BLOCKS: expected 2 integers >= 0'),
    ('STAGE4.NUM_CHANNELS', [18, 36, 72, 0], r'MODEL\.EXTRA\.STAGE4\.NUM_CHANNELS: expected 4 '),
    ('STAGE2.NUM_MODULES', 0, r'MODEL\.EXTRA\.STAGE2\.NUM_MODULES: expected an integer >= 1'),
    ('STAGE3.BLOCK', 'BOTTLENECK', r"MODEL\.EXTRA\.STAGE3\.BLOCK: only 'BASIC'"),
    ('STAGE3.FUSE_METHOD', 'CAT', r"MODEL\.EXTRA\.STAGE3\.FUSE_METHOD: only 'SUM'"),
    ('STAGE4', None, r'MODEL\.EXTRA: missing field STAGE4'),
    ('STAGE3.NUM_CHANNELS', [18, 40, 72],
     r'MODEL\.EXTRA\.STAGE3\.NUM_CHANNELS: the first 2 widths must equal'),
    ('STEM_INPLANES', 0, r'MODEL\.EXTRA\.STEM_INPLANES: expected an integer >= 1, got 0'),
    ('FINAL_CONV_KERNEL', 5, r'MODEL\.EXTRA\.FINAL_CONV_KERNEL: expected 1 or 3, got 5'),
    ('DECONV.NUM_DECONVS', 2, r'MODEL\.EXTRA\.DECONV\.NUM_DECONVS: only 1'),
    ('DECONV.KERNEL_SIZE', [3], r'MODEL\.EXTRA\.DECONV\.KERNEL_SIZE: only \[4\]'),
    ('DECONV.CAT_OUTPUT', [1], r'MODEL\.EXTRA\.DECONV\.CAT_OUTPUT: expected 1 boolean'),
    ('DECONV.NUM_BASIC_BLOCKS', None, r'MODEL\.EXTRA\.DECONV: missing field NUM_BASIC_BLOCKS'),
])
def test_validation_names_the_field(path, value, message):
  with pytest.raises(UserError, match=message):
    hrnet_arch.hrnet_from_extra(_set(path, value))


def test_whole_config_checks(tmp_path):
  cfg = hrnet_arch.PRESETS['shrink3'].to_config()
  with pytest.raises(UserError, match='multiple of 32'):
    hrnet_arch.resolve_hrnet({**cfg, 'DATASET': {'INPUT_SIZE': 500}})
  with pytest.raises(UserError, match=r'LOSS\.WITH_AE_LOSS: only \[True, False\]'):
    hrnet_arch.resolve_hrnet({**cfg, 'LOSS': {'WITH_AE_LOSS': [True, True]}})
  with pytest.raises(UserError, match=r'MODEL\.TAG_PER_JOINT'):
    hrnet_arch.resolve_hrnet({**cfg, 'MODEL': {**cfg['MODEL'], 'TAG_PER_JOINT': False}})
  with pytest.raises(UserError, match=r'MODEL: missing field EXTRA'):
    hrnet_arch.resolve_hrnet({'MODEL': {'NUM_JOINTS': 14}})
  bad = tmp_path / 'bad.yaml'
  bad.write_text('MODEL: [unclosed')
  with pytest.raises(UserError, match='bad.yaml: not valid YAML'):
    hrnet_arch.resolve_hrnet(str(bad))
  with pytest.raises(FileNotFoundError, match='absent.yaml'):
    models.create_model(str(tmp_path / 'absent.yaml'))
  with pytest.raises(UserError, match="unknown HigherHRNet preset 'w64'"):
    hrnet_arch.get_hrnet_preset('w64')


def test_create_model_dispatches_by_family():
  assert isinstance(models.create_model('S', 14), LitePose)
  assert isinstance(models.create_model(models.arch.load_preset_dict('XS')), LitePose)
  for arch in ('Shrink3', _extra(), hrnet_arch.PRESETS['shrink3'].to_config(),
               hrnet_arch.PRESETS['shrink3']):
    m = models.create_model(arch, 17)
    assert isinstance(m, HigherHRNet) and m.num_joints == 17 and m.fusion
  assert models.create_model('shrink3').arch.name == 'shrink3'
  with pytest.raises(UserError, match='LitePose ablations'):
    models.create_model('shrink3', fusion=False)
  with pytest.raises(UserError, match='LitePose ablations'):
    models.create_model('higherhrnet-w32', kernel_size=5)
  with pytest.raises(UserError, match="unknown architecture 'shrink4'"):
    models.create_model('shrink4')
