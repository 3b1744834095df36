"""Two processes x 4 CPU devices (gloo collectives on loopback) train SimCLR exactly like
one process with 8 devices."""
import jax
import numpy as np
import pytest

from rl_repr.core import runner
from simclr_tiny import tiny_simclr_config
from two_processes import run_two_processes

NUM_STEPS = 3


@pytest.mark.slow
def test_two_processes_match_one_process_with_eight_devices(tmp_path):
    out = str(tmp_path / "params.npz")
    run_two_processes("multihost_simclr_worker.py", lambda i, port: [i, port, NUM_STEPS, out], tmp_path,
                      timeout=300)

    run = runner.build(tiny_simclr_config(parallel="jit"))
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(NUM_STEPS):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append(float(metrics["loss"]))
    params = jax.device_get(run.driver.get_state(placed).params)

    two_process = np.load(out)
    np.testing.assert_allclose(two_process["losses"], losses, rtol=1e-5)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(str(k.key) for k in path)
        np.testing.assert_allclose(two_process[name], leaf, rtol=1e-4, atol=1e-5, err_msg=name)
