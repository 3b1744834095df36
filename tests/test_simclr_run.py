"""A SimCLR run end to end: one compilation, resume after a kill or a preemption."""
import os
import signal

import chex
import jax
import pytest

from rl_repr.core import checkpoint, drivers, runner
from rl_repr.simclr import trainer as simclr_trainer
from simclr_tiny import tiny_simclr_config


def _config():
    # 96 examples / batch 16 = 6 steps; checkpoints every 2 steps.
    return tiny_simclr_config(synthetic_examples=96, knn_k=5)


def _final_params(workdir):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=2)
    run = runner.build(_config())
    state, step = ckpt.restore_latest(run.state)
    ckpt.close()
    return jax.device_get(state.params), step


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    results = runner.run("simclr", _config(), workdir)
    return workdir, results


def test_run_writes_results_config_and_metrics(uninterrupted):
    workdir, results = uninterrupted
    for name in ("results.json", "config.json", "metrics.jsonl"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert os.path.isdir(os.path.join(workdir, "tensorboard"))
    assert results["steps"] == 6
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0 and 0.0 <= results["knn_accuracy"] <= 1.0


def _interrupt_at(monkeypatch, call_number, action):
    """Makes the compiled step run ``action`` instead of its ``call_number``-th call."""
    original = drivers.Driver.compile_step

    def compile_step(self, per_device_step):
        step_fn = original(self, per_device_step)
        calls = {"n": 0}

        def wrapped(state, batch):
            calls["n"] += 1
            if calls["n"] == call_number:
                action()
            return step_fn(state, batch)

        return wrapped

    monkeypatch.setattr(drivers.Driver, "compile_step", compile_step)


def test_preempted_then_killed_run_resumes_to_identical_parameters(uninterrupted, tmp_path, monkeypatch):
    reference_dir, reference_results = uninterrupted
    workdir = str(tmp_path)

    # 1) SIGTERM during step 3: the loop checkpoints step 3 and stops.
    _interrupt_at(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert runner.run("simclr", _config(), workdir) == {"stopped_at_step": 3}
    monkeypatch.undo()

    # 2) A hard crash in the second step after resuming (global step 5): checkpoint 4 survives.
    def crash():
        raise KeyboardInterrupt("killed")
    _interrupt_at(monkeypatch, 2, crash)
    with pytest.raises(KeyboardInterrupt):
        runner.run("simclr", _config(), workdir)
    monkeypatch.undo()

    # 3) Rerun the same command: resumes from step 4 and finishes.
    results = runner.run("simclr", _config(), workdir)
    params, step = _final_params(workdir)
    ref_params, ref_step = _final_params(reference_dir)
    assert step == ref_step == 6
    chex.assert_trees_all_equal(params, ref_params)
    assert results["linear_probe_accuracy"] == reference_results["linear_probe_accuracy"]


def test_whole_run_compiles_the_step_once(tmp_path, monkeypatch):
    original = simclr_trainer.make_per_device_step

    def counted(*args, **kwargs):
        return chex.assert_max_traces(original(*args, **kwargs), n=1)

    monkeypatch.setattr(simclr_trainer, "make_per_device_step", counted)
    config = _config()
    config.eval_every_steps = 2  # the kNN monitor between steps must not force a retrace
    runner.run("simclr", config, str(tmp_path))
