"""Neural architecture search for LitePose: the search space (space.py), the weight-shared
super-net (supernet.py), the evolutionary search (evolution.py), sub-net extraction from its variables (extract.py), BatchNorm
recalibration of a sub-net (recalibrate.py), channel sorting by importance (sort.py) and the
official PyTorch super-net importer (torch_import.py). `nas.recalibrate` is the module (its
function: `nas.recalibrate.recalibrate`).

Layer 3 (docs/ARCHITECTURE.md): may import base, data, models and checkpoints, never inference,
evaluation, export or training.
"""
from __future__ import annotations

from litepose_jax.nas.evolution import evolutionary_search
from litepose_jax.nas.extract import extract_subnet
from litepose_jax.nas.recalibrate import calibration_batches
from litepose_jax.nas.sort import channel_importance
from litepose_jax.nas.sort import init_supernet_from
from litepose_jax.nas.sort import sort_channels
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
from litepose_jax.nas.space import space_from_json
from litepose_jax.nas.space import space_size
from litepose_jax.nas.space import space_to_json
from litepose_jax.nas.space import uniform
from litepose_jax.nas.space import validate
from litepose_jax.nas.supernet import SuperLitePose
from litepose_jax.nas.supernet import create_supernet
from litepose_jax.nas.supernet import load_supernet
from litepose_jax.nas.supernet import subnet_masks
from litepose_jax.nas.supernet import supernet_model_config
from litepose_jax.nas.torch_import import import_torch_supernet

__all__ = ['GENE_NAMES', 'OFFICIAL', 'WIDTH_GENES', 'SearchSpace', 'SuperLitePose',
           'calibration_batches', 'channel_importance', 'create_supernet', 'decode', 'encode',
           'evolutionary_search',
           'extract_subnet', 'import_torch_supernet', 'init_supernet_from', 'largest',
           'load_supernet', 'max_arch', 'sample', 'smallest', 'sort_channels',
           'space_from_json', 'space_size', 'space_to_json', 'subnet_masks',
           'supernet_model_config', 'uniform', 'validate']
