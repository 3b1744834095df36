"""One process of the 2-process MoCo test (run by tests/test_moco_run.py).

argv: process_id port num_steps out_path [parallel]. Each process owns 4 CPU devices; together they
form the 8-device mesh, read their halves of every global batch, hold their halves of the queue,
shuffle the key batch across both processes, and train a few steps.
"""
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

from moco_tiny import tiny_moco_config
from rl_repr.core.drivers import local_copy
from two_processes import train_steps

process_id, port, num_steps, out_path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = tiny_moco_config(parallel=sys.argv[5] if len(sys.argv) > 5 else "jit")
run, placed, losses = train_steps(config, process_id, port, num_steps)
state = run.driver.get_state(placed)
queue_rows = [shard.data.shape[0] for shard in state.queue.addressable_shards]
assert sum(queue_rows) == state.queue.shape[0] // 2, queue_rows  # each process holds half the queue
queue = multihost_utils.process_allgather(state.queue, tiled=True)
trees = {"params": local_copy(state.params), "key_params": local_copy(state.key_params)}
if process_id == 0:
    flat = {f"{name}/" + "/".join(str(k.key) for k in path): leaf for name, tree in trees.items()
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
    np.savez(out_path, losses=np.array(losses), queue=np.asarray(queue), **flat)
jax.distributed.shutdown()
