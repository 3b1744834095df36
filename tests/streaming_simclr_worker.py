"""One process of a streaming SimCLR test (run by tests/test_streaming_simclr.py).

``multihost ROOT PORT PROCESS_ID STEPS OUT``: one of 2 processes x 4 CPU devices training the
tiny streaming config on ``folder:ROOT`` for STEPS steps; process 0 saves the losses and the
parameters, each process the example ids it reads in the first epoch (``OUT.ids<i>.npy``).
``memory ROOT WORKDIR EPOCHS``: a whole streaming run (training and evaluation), then prints the
process's peak resident memory in bytes.
"""
import resource
import sys

import jax
import numpy as np

from rl_repr.core import runner
from rl_repr.core.drivers import local_copy
from rl_repr.data.images import streaming
from streaming_images import tiny_streaming_config
from two_processes import train_steps

mode, root = sys.argv[1], sys.argv[2]
if mode == "memory":
    config = tiny_streaming_config(root, image_size=64, batch_size=32, epochs=float(sys.argv[4]), warmup_epochs=0.0,
                                   eval_batch_size=128, **{"model.small_image_stem": False})
    runner.run("simclr", config, sys.argv[3])
    print("peak_rss_bytes", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    sys.exit(0)

port, process_id, num_steps, out = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
config = tiny_streaming_config(root, epochs=2.0, **{"linear_eval.epochs": 1.0})  # the test's _config
run, placed, losses = train_steps(config, process_id, port, num_steps)
source = streaming.open_source(config.dataset, config.train_split)
settings = streaming.StreamSettings(image_size=config.image_size, workers=2)
read = streaming.train_batches(source, settings, seed=config.seed, global_batch_size=config.batch_size,
                               process_index=process_id, process_count=2)
epoch = source.steps_per_epoch(config.batch_size)
np.save(f"{out}.ids{process_id}.npy", np.stack([next(read)["id"] for _ in range(epoch)]))
params = local_copy(run.driver.get_state(placed).params)
if process_id == 0:
    flat = {"/".join(str(k.key) for k in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(out, losses=np.array(losses), **flat)
jax.distributed.shutdown()
