"""TFLite graph inspection: the builtin allow-list."""
import pytest

from litepose_jax.export import tflite_ops


def test_check_ops_rejects_flex_and_custom():
  with pytest.raises(ValueError, match='FlexConv2D'):
    tflite_ops.check_ops({'CONV_2D': 3, 'CUSTOM:FlexConv2D': 1})
  with pytest.raises(ValueError, match='MUL'):
    tflite_ops.check_ops({'MUL': 1})
  tflite_ops.check_ops({'CONV_2D': 1, 'ADD': 2})


def test_histogram_is_formatted_most_frequent_first():
  text = tflite_ops.format_histogram({'ADD': 2, 'CONV_2D': 5, 'PAD': 2})
  assert text == 'CONV_2D x5, ADD x2, PAD x2'
