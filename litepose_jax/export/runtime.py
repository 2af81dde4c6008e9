"""Moved: the LiteRT runtime is `litepose_jax.inference.litert` (beside the JAX backend)."""
from litepose_jax.inference.litert import TFLiteModel
from litepose_jax.inference.litert import delegate_partitions

__all__ = ['TFLiteModel', 'delegate_partitions']
