"""Data sets and the training input pipeline.

- datasets:  CrowdPose / COCO / custom COCO-format readers (`open_dataset`, `ImageRecord`).
- targets:   heatmaps (`render_heatmaps`) and associative-embedding joints (`encode_joints`).
- augment:   the official random affine + flip as 2x3 matrices.
- normalize: ImageNet mean / std; uint8 batches are normalised on the device (`model_input`).
- pipeline:  `default_data_config()` and `make_train_dataset(cfg, process_index, process_count,
             start_step)` (tf.data; deterministic, sharded, resumable).
- tfds_crowdpose: a TFDS builder that prepares CrowdPose from a manual download.
- show / cli: `litepose data show|synth`.
Submodules are imported on use so that `import litepose_jax.data` stays light.
"""
