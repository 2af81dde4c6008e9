"""Former name of torch_import.py (the PyTorch checkpoint importer), kept as a re-export.

`litepose_jax.convert.torch_state_dict_to_variables` is the documented entry point and the
`litepose import-torch` command is registered here; the code lives in torch_import.py (one
meaning per name: `tflite.convert` is the TFLite converter).
"""
from litepose_jax.torch_import import add_arguments
from litepose_jax.torch_import import hrnet_torch_key
from litepose_jax.torch_import import key_map
from litepose_jax.torch_import import load_torch_checkpoint
from litepose_jax.torch_import import run
from litepose_jax.torch_import import torch_key
from litepose_jax.torch_import import torch_state_dict_to_variables

__all__ = ['add_arguments', 'hrnet_torch_key', 'key_map', 'load_torch_checkpoint', 'run',
           'torch_key', 'torch_state_dict_to_variables']
