"""Two processes x 4 CPU devices (gloo collectives on loopback) train SimCLR exactly like
one process with 8 devices."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from rl_repr.core import runner
from simclr_tiny import tiny_simclr_config

NUM_STEPS = 3
HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_eight_devices(tmp_path):
    out = str(tmp_path / "params.npz")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    port = _free_port()
    # Files, not pipes: a worker blocked on a full pipe would stall its peer's collectives.
    logs = [open(tmp_path / f"log{i}", "w+") for i in range(2)]
    workers = [subprocess.Popen([sys.executable, os.path.join(HERE, "multihost_simclr_worker.py"),
                                 str(i), str(port), str(NUM_STEPS), out], env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True) for i, log in enumerate(logs)]
    try:
        codes = [w.wait(timeout=300) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for code, log in zip(codes, logs):
        log.seek(0)
        assert code == 0, log.read()[-3000:]

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
