"""One process of the 2-process SimCLR test (run by tests/test_simclr_multihost.py).

argv: process_id port num_steps out_path [parallel]. Each process owns 4 CPU devices; together
they form the 8-device mesh, read their halves of every global batch, and train a few steps.
"""
import sys

import jax
import numpy as np

from rl_repr.core.drivers import local_copy
from simclr_tiny import tiny_simclr_config
from two_processes import train_steps

process_id, port, num_steps, out_path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = tiny_simclr_config(parallel=sys.argv[5] if len(sys.argv) > 5 else "jit")
run, placed, losses = train_steps(config, process_id, port, num_steps)
params = local_copy(run.driver.get_state(placed).params)
if process_id == 0:
    flat = {"/".join(str(k.key) for k in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(out_path, losses=np.array(losses), **flat)
jax.distributed.shutdown()
