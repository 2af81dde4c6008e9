"""Architecture search over a trained super-net, and the whole super-net -> deployable nets chain.

costs.py (params, true / paper MACs of any sub-net), latency.py (a fitted LiteRT latency model,
validated against full measurements), splits.py (calibration / search splits carved from the
training set), fitness.py (AP of a sub-net inside the super-net after BatchNorm recalibration,
one compiled program per resolution), parallel.py (a generation's candidates spread over every
device and host), run.py + cli.py (`litepose search`), plot.py (Pareto pictures), pipeline.py
(`litepose nas`: super-net training -> search -> extract -> fine-tune -> evaluate -> report).
The evolution itself is `litepose_jax.nas.evolutionary_search`.

Layer 7 (docs/ARCHITECTURE.md): like training, may import everything below it and training.
"""
