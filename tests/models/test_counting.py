"""Parameter and MAC counts against the official model (measured on the official code)."""
import pytest

from litepose_jax import cli
from litepose_jax.models import counting
from litepose_jax.models import create_model

# Measured on the official PyTorch model: params, true GMACs and old-ptflops (published) GMACs
# for 14 and 17 joints.
OFFICIAL = {
    ('XS', 14): (1_675_552, 0.883, 1.202), ('XS', 17): (1_675_912, 0.886, 1.205),
    ('S', 14): (2_731_240, 3.614, 4.981), ('S', 17): (2_731_624, 3.624, 4.992),
    ('M', 14): (3_533_808, 5.264, 7.842), ('M', 17): (3_534_336, 5.276, 7.854),
    ('L', 14): (5_738_120, 9.962, 13.713), ('L', 17): (5_738_672, 9.979, 13.730),
}


@pytest.mark.parametrize('name,joints', sorted(OFFICIAL))
def test_counts_match_official(name, joints):
  params, true_g, paper_g = OFFICIAL[(name, joints)]
  m = create_model(name, joints)
  c = counting.count(m, m.arch.img_size)
  assert c.params == params
  assert abs(c.macs('true') / 1e9 - true_g) <= 0.005 * true_g
  assert abs(c.macs('paper') / 1e9 - paper_g) <= 0.005 * paper_g


def test_fusion_head_ablation_costs_less():
  full = counting.count(create_model('S'), 448)
  plain = counting.count(create_model('S', fusion=False), 448)
  assert plain.params < full.params and plain.macs() < full.macs()
  # The raw branches are exactly three deconvs and two SepConvs: their MACs are the difference.
  assert full.macs() - plain.macs() > 0.05 * full.macs()


def test_kernel_override_scales_depthwise_cost():
  k3 = counting.count(create_model('XS', kernel_size=3), 256).macs()
  k7 = counting.count(create_model('XS'), 256).macs()
  assert k3 < k7


def test_macs_cli(capsys):
  assert cli.main(['macs', '--arch', 'S', '--convention', 'paper']) == 0
  out = capsys.readouterr().out
  assert 'params: 2,731,240' in out and 'MACs (paper): 4.981 G' in out
  assert cli.main(['macs', '--all', '--family', 'litepose']) == 0
  table = capsys.readouterr().out.splitlines()
  assert len(table) == 9 and table[1].split()[:4] == ['XS', '256', '14', '1,675,552']
  assert cli.main(['macs', '--arch', 'XS', '--size', '100']) == 2
  assert 'multiples of 16' in capsys.readouterr().err
