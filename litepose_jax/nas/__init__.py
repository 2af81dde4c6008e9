"""Neural architecture search for LitePose: the search space (space.py), sub-net extraction from
super-net variables (extract.py) and, as issue 18 grows, the super-net module and its training.

Layer 3 (docs/ARCHITECTURE.md): may import base, data, models and checkpoints, never inference,
evaluation, export or training.
"""
from __future__ import annotations

from litepose_jax.nas.extract import extract_subnet
from litepose_jax.nas.space import GENE_NAMES
from litepose_jax.nas.space import OFFICIAL
from litepose_jax.nas.space import WIDTH_GENES
from litepose_jax.nas.space import SearchSpace
from litepose_jax.nas.space import decode
from litepose_jax.nas.space import encode
from litepose_jax.nas.space import largest
from litepose_jax.nas.space import max_arch
from litepose_jax.nas.space import sample
from litepose_jax.nas.space import smallest
from litepose_jax.nas.space import space_size
from litepose_jax.nas.space import uniform
from litepose_jax.nas.space import validate

__all__ = ['GENE_NAMES', 'OFFICIAL', 'WIDTH_GENES', 'SearchSpace', 'decode', 'encode',
           'extract_subnet', 'largest', 'max_arch', 'sample', 'smallest', 'space_size', 'uniform',
           'validate']
