"""One process of the 2-process SimCLR test (run by tests/test_simclr_multihost.py).

argv: process_id port num_steps out_path. Each process owns 4 CPU devices; together they
form the 8-device mesh, read their halves of every global batch, and train a few steps.
"""
import sys

import jax
import numpy as np

from rl_repr.core import runner
from rl_repr.core.drivers import local_copy
from simclr_tiny import tiny_simclr_config

process_id, port, num_steps, out_path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = tiny_simclr_config(parallel=sys.argv[5] if len(sys.argv) > 5 else "jit")
config.distributed.update(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
run = runner.build(config)
assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
placed = run.driver.put_state(run.state)
losses = []
for step in range(num_steps):
    placed, metrics = run.step_fn(placed, run.batch_for_step(step))
    losses.append(float(np.asarray(metrics["loss"].addressable_data(0))))
params = local_copy(run.driver.get_state(placed).params)
if process_id == 0:
    flat = {"/".join(str(k.key) for k in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(out_path, losses=np.array(losses), **flat)
jax.distributed.shutdown()
