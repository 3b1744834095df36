"""The shared loop on a toy problem: NaN losses stop the run without losing checkpoints."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr.core import checkpoint
from rl_repr.core import mesh as parallel
from rl_repr.core.drivers import Driver
from rl_repr.core.errors import NonFiniteError as NonFiniteLossError
from rl_repr.core.loop import LoopConfig, train_loop
from rl_repr.core.metrics import MetricsWriter


def _toy(tmp_path, lr):
    driver = Driver("jit", parallel.make_mesh(1))

    def per_device_step(state, batch, axis_name):
        loss = jnp.mean((state["w"] * batch["x"]) ** 2)
        grad = jnp.mean(2 * state["w"] * batch["x"] ** 2)
        return {"w": state["w"] - lr * grad}, {"loss": loss}

    step_fn = driver.compile_step(per_device_step)
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", save_every_steps=2, asynchronous=False)
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    batch = lambda step: driver.put_batch({"x": np.full((4,), 3.0, np.float32)})
    return dict(state={"w": jnp.float32(1.0)}, driver=driver, step_fn=step_fn, batch_for_step=batch,
                checkpointer=ckpt, writer=writer)


def test_loop_converges_logs_and_checkpoints(tmp_path):
    parts = _toy(tmp_path, lr=0.01)
    state, step = train_loop(loop=LoopConfig(total_steps=6, log_every=2), **parts)
    assert step == 6 and abs(float(state["w"])) < 1.0
    assert parts["checkpointer"].latest_step() == 6
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    assert [l["step"] for l in lines] == [2, 4, 6]


def test_nan_loss_stops_with_one_sentence_and_keeps_last_good_checkpoint(tmp_path):
    parts = _toy(tmp_path, lr=1.0)  # |w| grows 17x a step: the loss overflows near step 16
    with pytest.raises(NonFiniteLossError, match=r"lower config.base_lr .* rerun the same command"):
        train_loop(loop=LoopConfig(total_steps=50, log_every=1), **parts)
    last = parts["checkpointer"].latest_step()
    restored, _ = parts["checkpointer"].restore_latest({"w": jnp.float32(0.0)})
    assert last is not None and last >= 10
    assert np.isfinite(float(restored["w"]))
