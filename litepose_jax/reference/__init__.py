"""Independent re-implementations of the official LitePose code, written from its description.

Tests check the library against them and benchmarks time them as the baseline. They are not
used by the library itself.
"""
