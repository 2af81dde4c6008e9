"""Architecture parsing: presets, official JSON files and dicts, overrides, validation errors."""
import json

import pytest

from litepose_jax.errors import UserError
from litepose_jax.models import arch as arch_lib


def test_presets_match_the_official_json_files(reference_dir):
  for name in arch_lib.PRESET_NAMES:
    official = json.loads((reference_dir / 'arch' / f'litepose-{name}.json').read_text())
    spec = arch_lib.resolve_arch(name)
    assert spec.to_json_dict() == official
    assert arch_lib.resolve_arch(str(reference_dir / 'arch' / f'litepose-{name}.json')) == \
        arch_lib.arch_from_dict(official, name=str(reference_dir / 'arch' / f'litepose-{name}.json'))


@pytest.mark.parametrize('name,size,channels', [
    ('XS', 256, (16, 16, 32, 48, 80)), ('S', 448, (16, 16, 32, 48, 120)),
    ('M', 448, (16, 24, 48, 72, 120)), ('L', 512, (24, 24, 64, 96, 160))])
def test_preset_sizes_and_channels(name, size, channels):
  p = arch_lib.get_preset(name.lower())
  assert p.img_size == size and p.arch.channels == channels
  assert [js.num_joints for js in p.joint_sets] == [14, 17]


def test_make_divisible_matches_official_rounding():
  assert [arch_lib.make_divisible(v) for v in (3, 12, 16, 20, 27.5, 100, 120 * 0.75, 24 * 0.25)] == \
      [8, 16, 16, 24, 32, 104, 88, 8]


def test_overrides():
  spec = arch_lib.resolve_arch('S').replace(kernel_size=3, width_mult=0.5)
  assert {b.kernel for s in spec.stages for b in s.blocks} == {3}
  assert spec.channels == (8, 8, 16, 24, 64)
  with pytest.raises(UserError, match='kernel_size must be one of'):
    arch_lib.resolve_arch('S').replace(kernel_size=4)


def _valid():
  return arch_lib.load_preset_dict('XS')


@pytest.mark.parametrize('mutate,message', [
    (lambda d: d.pop('deconv_setting'), "missing field 'deconv_setting'"),
    (lambda d: d.update(img_size=250), 'img_size must be a multiple of 16'),
    (lambda d: d.update(deconv_setting=[16, 24]), 'deconv_setting must be a list of 3'),
    (lambda d: d['backbone_setting'].pop(), 'backbone_setting must list 4 stages'),
    (lambda d: d['backbone_setting'][1].update(num_blocks=3), r'backbone_setting\[1\].block_setting'),
    (lambda d: d['backbone_setting'][2]['block_setting'][0].__setitem__(1, 4),
     r'backbone_setting\[2\].block_setting\[0\] kernel'),
    (lambda d: d['backbone_setting'][3].update(stride=2), 'stage strides must be'),
    (lambda d: d['backbone_setting'][0].update(channel=-8), r'backbone_setting\[0\].channel'),
])
def test_bad_arch_dicts_name_the_field(mutate, message):
  d = _valid()
  mutate(d)
  with pytest.raises(UserError, match=message):
    arch_lib.arch_from_dict(d)


def test_bad_arch_names_and_files(tmp_path):
  with pytest.raises(UserError, match='unknown architecture'):
    arch_lib.resolve_arch('XXL')
  with pytest.raises(FileNotFoundError, match='architecture file not found'):
    arch_lib.resolve_arch(str(tmp_path / 'nope.json'))
  bad = tmp_path / 'bad.json'
  bad.write_text('{"img_size": ')
  with pytest.raises(UserError, match='bad.json: not valid JSON'):
    arch_lib.resolve_arch(str(bad))
  with pytest.raises(TypeError):
    arch_lib.resolve_arch(3)
