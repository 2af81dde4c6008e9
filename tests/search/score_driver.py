"""One process of the parallel-scoring test: `python -m tests.search.score_driver CKPT DATA_DIR
WORKDIR OUT.json [COORDINATOR NUM_PROCESSES PROCESS_ID]` scores five sub-nets with
search.score_many (AP + the sum of detection scores, see Checked) and writes {'scores', 'done',
'devices', 'processes', 'compiles'} to OUT.json."""
import json
import sys

import jax

from litepose_jax import nas
from litepose_jax.search import fitness
from litepose_jax.search import parallel
from litepose_jax.search import splits
from tests.search import helpers

# Seeds of the scored sub-nets (SPACE samples at 64 px: one resolution keeps the test short).
SEEDS = (0, 1, 2, 3, 4)


def main(argv: list[str]) -> int:
  ckpt, data_dir, workdir, out = argv[:4]
  if len(argv) > 4:  # before anything touches the devices
    parallel.initialize_distributed(argv[4], int(argv[5]), int(argv[6]))
  net, variables, _ = nas.load_supernet(ckpt, depthwise_impl='lax', conv_impl='lax')
  cfg = helpers.search_data_config(data_dir)
  split = splits.carve_splits(cfg, workdir, num_calibration=8, num_search=6)

  class Checked(fitness.Fitness):
    """AP plus the sum of every detection's score: a random super-net scores AP 0 everywhere,
    this tells the sub-nets apart and moves with the last bit of any map."""

    def score(self, arch, device=None):
      results = self.predict(arch, device)
      return self.ap(results) + sum(r['score'] for r in results)

  fit = Checked(net, variables, cfg, split, calib_batch=4, eval_batch=4)
  archs = []
  for seed in SEEDS:
    arch = nas.sample(helpers.SPACE, seed)
    arch['img_size'] = 64
    archs.append(arch)
  done = []
  scores = parallel.score_many(fit, archs, lambda i, s: done.append([i, s]))
  with open(out, 'w') as f:
    json.dump({'scores': scores, 'done': done, 'devices': jax.device_count(),
               'processes': jax.process_count(), 'compiles': fit.compiles}, f)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
