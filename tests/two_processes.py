"""Two processes x 4 CPU devices on loopback (gloo): the launcher the multi-host tests share,
and the start of each worker.

Test side: :func:`run_two_processes` starts ``script`` twice, process ``i`` with
``arguments(i, port)``, waits for both and fails with the end of a worker's log if one fails.
Worker side: :func:`train_steps` joins the 2-process cluster, builds the run and trains
``num_steps`` steps, returning what the worker saves.
"""
import os
import socket
import subprocess
import sys
from compilation import xla_flags

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_processes(script: str, arguments, log_dir, *, timeout: float = 600) -> None:
    """Runs ``tests/<script>`` as processes 0 and 1 of a 2 x 4-device cluster."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(4),
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    port = free_port()
    # Files, not pipes: a worker blocked on a full pipe would stall its peer's collectives.
    logs = [open(os.path.join(str(log_dir), f"log{i}"), "w+") for i in range(2)]
    workers = [subprocess.Popen([sys.executable, os.path.join(HERE, script), *map(str, arguments(i, port))],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
               for i, log in enumerate(logs)]
    try:
        codes = [w.wait(timeout=timeout) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for code, log in zip(codes, logs):
        log.seek(0)
        assert code == 0, log.read()[-3000:]


def train_steps(config, process_id: int, port, num_steps: int):
    """``(run, placed state, losses)`` of this process after ``num_steps`` steps of ``config``."""
    import jax
    import numpy as np

    from rl_repr.core import runner

    config.distributed.update(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    run = runner.build(config)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(num_steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append(float(np.asarray(metrics["loss"].addressable_data(0))))
    return run, placed, losses
