"""Import an official PyTorch super-net checkpoint (lib/models/pose_supermobilenet.py).

The official super-net's state_dict has the fixed LitePose's keys at the super-net's largest
widths and depths (first.*, stage.s.b.{inv,depth_conv,point_conv}.*, deconv_*, final_*), so the
fixed-net converter (litepose_jax.torch_import) maps it onto the variables of LitePose on
`max_arch(space)`, which are exactly our super-net's variables. Besides, every block has a
`Linear5x5` and a `Linear3x3` (kernel transforms for 5x5 / 3x3 depthwise crops); the space has
only 7x7 blocks, so they are skipped with one note. A leading 'module.' or '1.' is stripped.
`litepose import-torch --arch supernet` is the command-line form (official space).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litepose_jax import torch_import
from litepose_jax.nas import space as space_lib


def import_torch_supernet(state_dict: Mapping[str, Any], num_joints: int = 14,
                          space: space_lib.SearchSpace = space_lib.OFFICIAL, *,
                          fusion: bool = True) -> dict:
  """Official super-net state_dict (numpy or torch values) -> super-net variables.

  Returns {'params', 'batch_stats'} (nested dicts of float32 numpy arrays) of LitePose on
  `max_arch(space)`, e.g. params/stage2_block9/expand/conv/kernel [1, 1, 96, 576], ready for
  `create_supernet(num_joints, space).apply`, `extract_subnet` or `save_model`. Raises a UserError
  listing every missing, unexpected or mis-shaped key (Linear5x5 / Linear3x3 excepted).
  """
  return torch_import.supernet_state_dict_to_variables(state_dict, num_joints, space,
                                                       fusion=fusion)
