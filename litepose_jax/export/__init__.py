"""TFLite (LiteRT) export of LitePose: BN folding, conversion, quantisation, benchmark.

The LiteRT runtime that runs the exported files is inference.litert (export/runtime.py re-exports
it); the sidecar format is inference.sidecar.
"""
