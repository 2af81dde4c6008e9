"""The whole architecture-search chain: super-net -> search -> extract -> fine-tune -> report.

`litepose nas` (litepose_jax/search/pipeline.py) runs, in WORKDIR and resumable at every stage:
  1 config.supernet: the super-net training config (configs/supernet.py), into WORKDIR/supernet;
  2 config.search: the evolutionary search at each budget (`litepose search`), WORKDIR/search;
  3 per budget, the chosen sub-net and the largest uniform-width net (every width times one
    multiplier, at one of the space's resolutions) of the same or lower cost, each cut out of the
    super-net with BatchNorm recalibration (head included): WORKDIR/nets/<budget>[_uniform]/init;
  4 config.finetune: both trained from those weights for the same steps (the fixed-net recipe at
    the net's own img_size), WORKDIR/nets/*/finetune;
  5 config.eval: every net scored before and after fine-tuning on config.eval.split;
  6 WORKDIR/report.md + report.json (a table per budget, the search's Pareto picture, stage times).

The real-data recipe is the official one: super-net SUPERNET_SPEC.md §3.1 (2400 epochs, Adam 4e-3
constant, one sub-net and one size in 256..512 per step), search §5.4 (population 40, 40
iterations, 10 parents, 20 mutants, 20 crossovers, mutation 0.1, paper-convention MACs; the
budgets are the published XS / S / M / L costs 1.2 / 5.0 / 7.8 / 13.7 G), fine-tuning §6 (Adam
4e-3, 500 epochs, lr x0.1 at epochs 350 and 480, batch 16: configs/litepose_xs.py's recipe, which
S / M / L share), but from every transferred weight, head included (§6 [suggestion]), and on
calibration / search splits carved from the training split (2000 / 1000 images).

Arguments (comma separated, after a colon):
  dataset=crowdpose|coco  CrowdPose trainval -> test (default) or COCO train2017 -> val2017
  synthetic  the quickstart's synthetic data (`python scripts/quickstart.py data`) at 64 / 96 px
             with every stage shrunk to fit ~30 minutes on a 2-core CPU (see below)
  fake       in-memory random batches for the two training stages (benchmarks); the search, the
             BatchNorm recalibration and the evaluation still read the data section's files
  runlocal   every stage tiny (4 training steps at batch 2, a search of 2 candidates and one
             generation, 4-image splits and evaluation): a smoke test of the chain

What `synthetic` shrinks, and why (measured on the 2-core CPU; docs/BENCHMARKS.md,
"Architecture search"):
  - data: 5690 training / 200 val images of 128 px, the sizes 64 / 96 px of configs/supernet.py:
    synthetic (the official widths and depths, so the sub-nets are the real ones, at small
    resolutions; 96 px keeps the 512 px net's 5.8 M parameters at 0.54 G paper MACs);
  - super-net: 200 steps of the quickstart recipe instead of 2400 epochs (1.5-3.7 s per step
    at batch 32, quiet / shared CPU: 5-12 minutes);
  - search: budgets 0.1 and 0.25 G (paper MACs: between the uniform nets 0.5x and 0.75x at 64 px,
    and about 1x at 64 px), population 12, 3 generations of 6 + 6 children, calibration 128 /
    search 96 images: up to 48 candidates per budget instead of ~1600 (2-6 s each);
  - fine-tuning: 200 steps of the quickstart recipe (batch 32, lr 8e-3, cosine) instead of 500
    epochs of the official one (2.5 minutes per net at 64 px, 4.5 at 96 px); no evaluation
    during training (stage 5 scores every net);
  - evaluation: the 200 synthetic val images, flip test on.

Run:
  python scripts/quickstart.py data   # once: the synthetic data set
  litepose nas --config configs/nas.py:synthetic --workdir workdirs/nas_synthetic
  bash scripts/nas_synthetic.sh       # the same, timed, data generated if missing
  litepose nas --config configs/nas.py --workdir runs/nas_crowdpose \
      --config.supernet.data.data_dir=/path/to/crowdpose \
      --config.supernet.init_from=runs/largest_crowdpose
  (the data location is set once: the fine-tuning and evaluation sections refer to the
  super-net's data_dir / dataset; --config.KEY=VALUE overrides any other field)

Expected, synthetic: about 30 minutes on a 2-core CPU (26 min measured, lightly shared: super-net
8.5, search 3, extraction 0.5, fine-tuning 12.5, evaluation 1.2); synthetic val AP after
fine-tuning 0.41 (searched) vs 0.39 (uniform 0.5x) at 0.1 G, 0.42 vs 0.42 (uniform 1x at 64 px)
at 0.25 G, 0.006-0.022 before fine-tuning (docs/BENCHMARKS.md, "Architecture search"). A
rerun of a finished workdir skips every stage (seconds). Real data: the published sub-nets reach
CrowdPose test AP 49.4 (XS), 58.3 (S), 59.9 (M), 61.9 (L) after this chain.

Expected cost of the real recipe (CrowdPose trainval, ~12,000 images; estimates, not runs):
  - super-net: 2400 epochs = 28.8 M images. The masked super-net computes the full-width network
    at every step (1.11x the largest network's step, docs/BENCHMARKS.md "Super-net"), at sizes
    whose mean area is 0.59x that of 512 px; the largest network trains at ~259 img/s at 512 px
    in bf16 on one H100 (official PyTorch, NUMBERS.md; our Flax S step is 1.15x that code's), so
    ~390 img/s: ~20 h on one H100, ~2.6 h on eight;
  - search: <= 40 + 40 x 40 = 1640 candidates per budget (memoised: repeats are free), each a
    recalibration on 2000 images and an evaluation of 1000 with flip test; the network parts run
    at >= 1000 img/s on an H100, so the host's data pipeline (~125 img/s per core) and decoding
    (2-12 ms per image per core, BENCHMARKS "Decoding") dominate: ~5-10 s per candidate on a
    16-core host, ~2-5 h per budget on one GPU, the candidates spread over every device;
  - fine-tuning: 500 epochs = 6 M images per net, at the H100 bf16 rates of NUMBERS.md (XS 800,
    S 476, M 381, L 259 img/s): ~2 / 3.5 / 4.4 / 6.4 h for the four budgets, twice that with the
    uniform-width baselines: ~33 h of one H100 (~4 h on eight);
  so ~3 GPU-days of one H100 in all. TPUs: not measured in this project; the same image counts
  apply, scale by the chip's measured img/s (`python scripts/bench_train.py` on the TPU host).
"""
import ml_collections

from litepose_jax import config_files

common = config_files.import_sibling(__file__, 'common')
supernet = config_files.import_sibling(__file__, 'supernet')
litepose_xs = config_files.import_sibling(__file__, 'litepose_xs')
quickstart = config_files.import_sibling(__file__, 'quickstart')

# Where the data set lives: set on config.supernet.data, shared (field references) by the fine-tuning.
_LOCATION = ('dataset', 'data_dir', 'split', 'ann_file', 'image_dir')


def get_config(arg=None):
  """The chain's config; `arg` as in the module docstring."""
  a = common.parse_arg(arg)
  config = ml_collections.ConfigDict()
  config.progress = True  # progress bars of every stage (the training configs refer to it)

  shrink = ','.join(k for k in ('synthetic', 'fake') if a[k])
  config.supernet = supernet.get_config(','.join(filter(None, (f'dataset={a.dataset}', shrink))))

  config.search = ml_collections.ConfigDict()
  # Budgets: MACs (G, in `convention`) and / or latency (ms, LiteRT on this machine with
  # `threads` threads); equal-length tuples pair up, a single value applies to every budget
  # (as `litepose search --macs / --latency-ms`).
  config.search.macs = (1.2, 5.0, 7.8, 13.7)  # the published XS / S / M / L (paper convention)
  config.search.latency_ms = ()
  config.search.convention = 'paper'  # official: ptflops of the paper's time (SPEC §5.2)
  config.search.population_size = 40  # official evolution (SPEC §5.4)
  config.search.iterations = 40
  config.search.parents = 10
  config.search.mutants = 20
  config.search.crossovers = 20
  config.search.mutate_prob = 0.1
  config.search.num_calibration = 2000  # carved from the training split (SPEC §5.3 suggestion)
  config.search.num_search = 1000
  config.search.calib_batch = 16  # official calibration batch
  config.search.seed = 0
  config.search.threads = 2  # LiteRT threads of latency budgets
  config.search.uniform_mults = (0.25, 0.5, 0.75, 1.0)  # the uniform-width reference nets
  config.search.latency_cache = ''  # '' = WORKDIR/search/latency
  config.search.fitness_widths = 'auto'  # sliced sub-nets on a CPU for long searches

  # The fixed-net recipe of the chosen nets; the pipeline sets model.arch, data.input_size (the
  # net's img_size) and init_from (its transferred weights) per net.
  config.finetune = litepose_xs.get_config(','.join(filter(None, (f'dataset={a.dataset}', 'fake'
                                                                   if a.fake else ''))))

  config.eval = ml_collections.ConfigDict()
  config.eval.split = common.eval_split(a.dataset)  # reported split: CrowdPose test, COCO val2017
  config.eval.ann_file = ''  # '' = the split's file under config.supernet.data.data_dir
  config.eval.image_dir = ''
  config.eval.num_images = 0  # > 0: the first N images only
  config.eval.flip = True  # official TEST.FLIP_TEST

  if a.synthetic:
    _synthetic(config)
  if a.runlocal:
    _runlocal(config)
  _share(config)
  return config


def _synthetic(config: ml_collections.ConfigDict) -> None:
  """`synthetic`: the shrinks of the module docstring."""
  config.supernet.total_steps = 200
  config.supernet.checkpoint_every = 100
  config.search.macs = (0.1, 0.25)
  config.search.population_size = 12
  config.search.iterations = 3
  config.search.parents = 4
  config.search.mutants = 6
  config.search.crossovers = 6
  config.search.num_calibration = 128
  config.search.num_search = 96
  config.search.calib_batch = 32
  # The quickstart's recipe and data (the super-net's too), shortened; fake stays fake.
  source = config.finetune.data.source
  config.finetune = quickstart.get_config('fake' if source == 'fake' else None)
  config.finetune.total_steps = 200
  config.finetune.checkpoint_every = 100
  config.finetune.eval_every = 0
  config.finetune.eval.enabled = False  # stage 5 scores every net on the whole val split
  config.eval.split = 'val'


def _runlocal(config: ml_collections.ConfigDict) -> None:
  """`runlocal`: every stage tiny (a smoke test of the chain)."""
  common.runlocal(config.supernet)
  common.runlocal(config.finetune)
  config.finetune.eval.enabled = False
  config.search.macs = config.search.macs[:1]
  config.search.latency_ms = config.search.latency_ms[:1]
  config.search.population_size = 2
  config.search.iterations = 1
  config.search.parents = 1
  config.search.mutants = 1
  config.search.crossovers = 1
  config.search.num_calibration = 4
  config.search.num_search = 4
  config.search.calib_batch = 2
  config.search.uniform_mults = (0.25, 1.0)
  config.eval.num_images = 4


def _share(config: ml_collections.ConfigDict) -> None:
  """The fine-tuning reads the super-net's data set and follows config.progress."""
  for key in _LOCATION:
    config.finetune.data[key] = config.supernet.data.get_ref(key)
  config.supernet.progress = config.get_ref('progress')
  config.finetune.progress = config.get_ref('progress')
