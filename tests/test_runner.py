"""The runner and registry (rl_repr.core.runner, .registry): one way to find and run a method,
and the loop's stops that every method shares."""
import json
import logging

import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr.core import checkpoint, registry, runner
from rl_repr.core import mesh as parallel
from rl_repr.core.config import ConfigError
from rl_repr.core.drivers import Driver
from rl_repr.core.loop import LoopConfig, train_loop
from rl_repr.core.metrics import MetricsWriter
from simclr_tiny import tiny_simclr_config


def test_every_registered_method_has_a_spec_named_like_its_package():
    for name in registry.METHODS:
        method = registry.get_method(name)
        assert method.name == name
        defaults = method.defaults()
        assert defaults.method == name and "cpu_devices" in defaults and "seed" in defaults
    with pytest.raises(ConfigError, match=r"config.method='byol' is not a method; choose one of \("):
        registry.get_method("byol")


def test_validate_refuses_unknown_keys_and_a_run_of_another_method():
    config = tiny_simclr_config()
    config.batch_sze = 16
    with pytest.raises(ConfigError, match=r"config keys \['batch_sze'\] are not simclr settings.*rl_repr/simclr/config.py"):
        runner.validate(config)
    with pytest.raises(ConfigError, match="config.method is 'simclr' but the run was asked for 'word2vec'"):
        runner.run("word2vec", tiny_simclr_config(), "/nonexistent/never-written")


def _toy(tmp_path):
    driver = Driver("jit", parallel.make_mesh(1))

    def per_device_step(state, batch, axis_name):
        return {"w": state["w"] - 0.01 * batch["x"].mean()}, {"loss": state["w"] ** 2}

    return dict(state={"w": jnp.float32(1.0)}, driver=driver, step_fn=driver.compile_step(per_device_step),
                batch_for_step=lambda step: driver.put_batch({"x": np.ones((4,), np.float32)}),
                checkpointer=checkpoint.Checkpointer(tmp_path / "ckpt", save_every_steps=100, asynchronous=False),
                writer=MetricsWriter(str(tmp_path), tensorboard=False))


def test_a_preemption_notice_checkpoints_and_stops_the_loop(tmp_path, monkeypatch):
    parts = _toy(tmp_path)
    monkeypatch.setattr(parts["checkpointer"], "reached_preemption", lambda step: step == 3)
    state, step = train_loop(loop=LoopConfig(total_steps=10, log_every=5), **parts)
    assert step == 3 and parts["checkpointer"].latest_step() == 3


def test_a_failing_tensorboard_writer_is_said_once_and_metrics_still_written(tmp_path, caplog):
    writer = MetricsWriter(str(tmp_path), tensorboard=False)

    class Broken:
        def as_default(self, step):
            raise OSError("disk full")

    writer._tb, writer._tf = Broken(), None  # a summary writer whose writes fail
    writer.write(1, {"loss": 1.0})
    writer.write(2, {"loss": 0.5})
    assert caplog.text.count("TensorBoard summaries are off for this run (OSError: disk full)") == 1
    assert [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")] == [1, 2]


def test_library_messages_go_through_the_rl_repr_logger(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rl_repr")
    parts = _toy(tmp_path)
    train_loop(loop=LoopConfig(total_steps=2, log_every=1), **parts)
    assert "step 2/2" in caplog.text
