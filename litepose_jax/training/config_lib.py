"""Deprecated alias of litepose_jax.config_files (the one config loader).

Kept only until litepose_jax/evaluation/cli.py calls config_files.load_config; then delete it.
The recipes live in configs/*.py.
"""
from __future__ import annotations

from litepose_jax.config_files import apply_overrides
from litepose_jax.config_files import load_config
from litepose_jax.config_files import parse_arg

__all__ = ['apply_overrides', 'load_config', 'parse_arg']
