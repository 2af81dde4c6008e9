"""Shared fixtures (the real sample data beside the repo: ../shared/data or $LITEPOSE_SAMPLE_DATA)
and the `slow` marker."""
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def sample_data_root() -> pathlib.Path:
  """../shared/data (or $LITEPOSE_SAMPLE_DATA); CI provides it, so its absence is an error."""
  env = os.environ.get('LITEPOSE_SAMPLE_DATA')
  root = pathlib.Path(env) if env else REPO_ROOT.parent / 'shared' / 'data'
  if not (root / 'crowdpose_sample' / 'annotations.json').is_file():
    raise FileNotFoundError(f'sample data not found at {root}: put ../shared beside the repo or set '
                            'LITEPOSE_SAMPLE_DATA')
  return root


def reference_root() -> pathlib.Path:
  """../shared/reference (architecture JSONs, state-dict listing)."""
  return sample_data_root().parent / 'reference'


@pytest.fixture(scope='session')
def sample_data() -> pathlib.Path:
  return sample_data_root()


@pytest.fixture(scope='session')
def reference_dir() -> pathlib.Path:
  return reference_root()


# The `slow` marker: `bash scripts/test.sh -m "not slow"` is the fast loop, `.ci/run` runs
# everything. Tests are marked here, by what they do (training loops and subprocesses, multi-host,
# TFLite conversion, PyTorch parity), so that test files need no decorator; tests/test_conftest.py
# fails when a name below no longer exists.
SLOW_FILES = {
    'test_multihost.py',  # two training processes joined by jax.distributed
    'test_sharding.py',  # a training subprocess on 8 forced host devices vs 1
    'test_trainer.py',  # whole train_and_evaluate loops: resume, SIGTERM, NaN guard, EMA
    'test_real_data.py',  # training with periodic evaluation on generated image files
    'test_torch_import.py',  # PyTorch parity of the checkpoint importer (imports torch)
    'test_torch_import_hrnet.py',  # PyTorch HigherHRNet reference and importer parity
    'test_dynamic_range.py',  # TFLite conversions (toy graphs and an XS export)
    'test_extract.py',  # nas: super-nets and sub-nets compiled forward (about a minute)
    'test_supernet.py',  # nas and training: masked super-net forward / gradients, train loops
    'test_bench_supernet.py',  # five compiled super-net / largest-net programs
    'test_fitness.py',  # search: compiled super-net recalibration + evaluation
    'test_parallel.py',  # search: 2 processes x 2 devices scoring sub-nets vs 1 device
    'test_bench_search.py',  # search: PyTorch official flow vs the compiled fitness
    'test_latency.py',  # search: sub-nets exported to TFLite and timed
    'test_bench_latency.py',  # search: the latency benchmark script (TFLite exports)
    'test_pipeline.py',  # search: `litepose nas` end to end (trainings, search, report)
    'test_hrnet_train.py',  # a HigherHRNet train step compiled inside train_and_evaluate
    'test_hrnet_export.py',  # HigherHRNet / EfficientHRNet jax2tf -> TFLite, LiteRT, decoding
}
SLOW_FIXTURES = {
    'xs_fp32',  # tests/export/conftest.py: the session's jax2tf -> TFLite export of XS
}
SLOW_TESTS = {  # test function names, without parameters
    'test_quantized_variants_within_documented_bounds',  # three TFLite exports
    'test_cli_export_random_arch',  # `litepose export` end to end
    'test_cli_export_from_checkpoint',  # `litepose export` end to end
    'test_tensorflow_import_is_quiet',  # two fresh processes importing TensorFlow
    'test_samples_build_a_litepose',  # nas: ten sub-nets traced
    'test_subnets_run',  # nas: sub-nets compiled and run
    'test_extract_then_export_tflite_parity',  # `litepose extract` -> `litepose export`
    'test_eval_supernet_arch_recalibrates_and_scores_the_subnet',  # super-net compiled forward
    'test_search_end_to_end',  # `litepose search` on a tiny super-net
    'test_two_processes_choose_alike_and_only_process_0_writes',  # jax.distributed processes
    'test_shrink_plan_costs_fall_along_the_study',  # five HigherHRNet / LitePose traces counted
    'test_tiny_forward_train_eval_folded_and_drop_connect',  # EfficientHRNet: 4 compiled programs
}


def is_slow(item: pytest.Item) -> bool:
  """True for a test that the lists above mark slow."""
  return (item.path.name in SLOW_FILES
          or getattr(item, 'originalname', item.name) in SLOW_TESTS
          or not SLOW_FIXTURES.isdisjoint(getattr(item, 'fixturenames', ())))


def pytest_collection_modifyitems(config, items):
  del config  # unused
  for item in items:
    if is_slow(item):
      item.add_marker(pytest.mark.slow)
