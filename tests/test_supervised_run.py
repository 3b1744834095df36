"""The supervised trainer end to end: results, resume, the three drivers and per-device batch
norm, distillation from a teacher's workdir, adversarial training."""
import json
import os

import chex
import jax
import numpy as np
import pytest

from rl_repr.core import checkpoint, runner
from rl_repr.core.config import ConfigError
from supervised_tiny import tiny_supervised_config


def _final_params(workdir, config):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=2)
    state, step = ckpt.restore_latest(runner.build(config).state)
    ckpt.close()
    return jax.device_get(state.params), step


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A finished run (6 steps): the reference for resume, and the teacher for distillation."""
    workdir = str(tmp_path_factory.mktemp("teacher"))
    config = tiny_supervised_config(eval_every_steps=3, label_smoothing=0.1, label_noise=0.25)
    return workdir, config, runner.run("supervised", config, workdir)


def test_run_reports_accuracy_calibration_and_curves(teacher_run):
    workdir, _, results = teacher_run
    assert results["steps"] == 6 and 0 <= results["test_accuracy"] <= 1
    assert 0 <= results["expected_calibration_error"] <= 1 and "clean_train_accuracy" in results
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [r["step"] for r in lines if "test_accuracy" in r] == [3, 6]  # the monitor, then the final report
    assert all("batch_accuracy" in r for r in lines if "loss" in r)


def test_stopped_run_resumes_to_identical_parameters(teacher_run, tmp_path):
    reference_dir, config, reference = teacher_run
    workdir = str(tmp_path)
    assert runner.run("supervised", config, workdir, stop_after_step=3) == {"stopped_at_step": 3}
    results = runner.run("supervised", config, workdir)
    params, step = _final_params(workdir, config)
    reference_params, reference_step = _final_params(reference_dir, config)
    assert step == reference_step == 6
    chex.assert_trees_all_equal(params, reference_params)
    assert results["test_accuracy"] == reference["test_accuracy"]


def _train(config, steps=2):
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append(float(metrics["loss"]))
    return np.array(losses), jax.device_get(run.driver.get_state(placed))


@pytest.fixture(scope="module")
def jit_reference():
    return _train(tiny_supervised_config(**{"adversarial.attack": "pgd", "adversarial.epsilon": 0.1,
                                            "adversarial.steps": 2, "adversarial.weight": 0.5}))


@pytest.mark.parametrize("driver", ["shard_map", "pmap"])
def test_per_device_drivers_with_global_batch_norm_match_jit(driver, jit_reference):
    """Adversarial (PGD, random start keyed per example) training with batch norm: same on 8 devices."""
    losses, state = _train(tiny_supervised_config(parallel=driver, **{
        "adversarial.attack": "pgd", "adversarial.epsilon": 0.1, "adversarial.steps": 2, "adversarial.weight": 0.5}))
    np.testing.assert_allclose(losses, jit_reference[0], rtol=1e-5)
    chex.assert_trees_all_close(state.params, jit_reference[1].params, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(state.batch_stats, jit_reference[1].batch_stats, rtol=1e-4, atol=1e-5)


def test_per_device_batch_norm_normalises_each_devices_rows():
    """global_bn=False: each of the 8 devices normalises its 4 rows; the step equals 8 one-device
    steps on those rows, gradients averaged and running statistics averaged."""
    config = tiny_supervised_config(parallel="shard_map", global_bn=False)
    _, state = _train(config, steps=1)
    run = runner.build(tiny_supervised_config(num_devices=1))
    batch = run.plan.batch_for_step(0)
    one_device_step = jax.jit(lambda state, rows: run.plan.per_device_step(state, rows, None)[0])
    shares = [one_device_step(run.state, {k: v[4 * d:4 * d + 4] for k, v in batch.items()}) for d in range(8)]
    mean_params = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *[s.params for s in shares])
    mean_stats = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *[s.batch_stats for s in shares])
    chex.assert_trees_all_close(state.params, mean_params, rtol=1e-4, atol=1e-6)  # SGD: mean of updates
    chex.assert_trees_all_close(state.batch_stats, mean_stats, rtol=1e-5, atol=1e-6)


def test_distillation_from_a_teacher_workdir(teacher_run, tmp_path):
    teacher_dir, _, teacher_results = teacher_run
    config = tiny_supervised_config(**{"teacher.workdir": teacher_dir, "teacher.temperature": 4.0,
                                       "model.hidden": (8,), "model.norm": "none"})
    run = runner.build(config)
    teacher_params, _ = _final_params(teacher_dir, tiny_supervised_config())
    chex.assert_trees_all_equal(jax.device_get(run.state.teacher["params"]), teacher_params)
    results = runner.run("supervised", config, str(tmp_path))
    assert results["teacher_test_accuracy"] == pytest.approx(teacher_results["test_accuracy"])
    with pytest.raises(ConfigError, match="no config.json"):
        runner.build(tiny_supervised_config(**{"teacher.workdir": str(tmp_path / "absent")}))


def test_adversarial_training_and_robust_accuracy_report(tmp_path):
    config = tiny_supervised_config(eval_attacks=("fgsm", "pgd"), eval_epsilons=(0.3,), eval_pgd_steps=3,
                                    **{"adversarial.attack": "fgsm", "adversarial.weight": 1.0})
    results = runner.run("supervised", config, str(tmp_path))
    assert results["fgsm_accuracy_eps0.3"] < results["test_accuracy"]
    assert results["pgd_accuracy_eps0.3"] < results["test_accuracy"]
