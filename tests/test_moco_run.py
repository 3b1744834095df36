"""MoCo end to end on 8 fake devices: the runner's run, resume after a stop, the three drivers and
one device agree, the recipes run shrunk, and bad queue settings are one sentence each.

One uninterrupted jit run (4 steps; the queue of 2 batches wraps around; cosine key momentum) is
the reference every other run is compared with, leaf by leaf: parameters, optimizer state, key
encoder, queue and its slot.
"""
import json
import os

import chex
import jax
import numpy as np
import pytest

from rl_repr import losses
from rl_repr.core import checkpoint, runner
from rl_repr.core.config import ConfigError
from rl_repr.core.recipes import load_config_file
from rl_repr.data.images import augment, sources
from rl_repr.moco import trainer
from rl_repr.simclr.model import build_model
from two_processes import run_two_processes
from compilation import exclusive, session_directory
from moco_tiny import tiny_moco_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4


def _checkpointed_state(workdir, config):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=2)
    state, step = ckpt.restore_latest(runner.build(config).state)
    ckpt.close()
    return jax.device_get(state), step


def _reference_config():
    # the kNN monitor runs between steps too; f_k is scored next to f_q at the end
    return tiny_moco_config(eval_every_steps=2, evaluate_key_encoder=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run, trained once per session: an xdist worker that needs it while another
    trains it waits for it and reads it."""
    workdir = session_directory(tmp_path_factory) / "moco_uninterrupted"
    config = _reference_config()
    with exclusive(str(workdir) + ".lock"):
        if not (workdir / "results.json").exists():
            runner.run("moco", config, str(workdir))
    results = json.loads((workdir / "results.json").read_text())
    state, step = _checkpointed_state(str(workdir), config)
    return str(workdir), results, state, step


def test_run_writes_results_and_checkpoints_the_key_encoder_and_queue(uninterrupted):
    workdir, results, state, step = uninterrupted
    assert step == STEPS and results["steps"] == STEPS
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0 and 0.0 <= results["knn_accuracy"] <= 1.0
    assert json.load(open(os.path.join(workdir, "results.json")))["queue_size"] == 128
    assert int(state.queue_slot) == STEPS % 2 and state.queue.shape == (64, 2, 16)
    last_two = [sources.process_rows(0, step, 128, 64) for step in (STEPS - 2, STEPS - 1)]
    np.testing.assert_array_equal(state.queue_ids, np.stack(last_two, axis=1))  # each key's image index
    np.testing.assert_allclose(np.linalg.norm(state.queue, axis=-1), 1.0, rtol=1e-5)  # unit keys
    moved = [float(np.abs(k - q).max()) for k, q in zip(jax.tree.leaves(state.key_params),
                                                          jax.tree.leaves(state.params))]
    assert max(moved) > 0  # f_k trails f_q


def test_key_encoder_is_scored_by_the_query_encoders_protocol(uninterrupted):
    """``evaluate_key_encoder``: f_k's h goes through f_q's linear probe and kNN; an f_k set to f_q
    scores exactly what f_q scored."""
    _, results, state, _ = uninterrupted
    config = _reference_config()
    train_set, test_set = sources.load_train_test(config)
    as_query = trainer.key_encoder_report(config, state.replace(key_params=state.params,
                                                                key_batch_stats=state.batch_stats),
                                          train_set, test_set)
    assert as_query == pytest.approx({"key_encoder_linear_probe_accuracy": results["linear_probe_accuracy"],
                                      "key_encoder_knn_accuracy": results["knn_accuracy"]})
    assert 0.0 <= results["key_encoder_linear_probe_accuracy"] <= 1.0 and 0.0 <= results["key_encoder_knn_accuracy"] <= 1.0


def test_stopped_run_resumes_to_the_uninterrupted_state_exactly(uninterrupted, tmp_path):
    _, reference_results, reference, _ = uninterrupted
    config = _reference_config()
    assert runner.run("moco", config, str(tmp_path), stop_after_step=2) == {"stopped_at_step": 2}
    results = runner.run("moco", config, str(tmp_path))
    state, step = _checkpointed_state(str(tmp_path), config)
    assert step == STEPS
    chex.assert_trees_all_equal(state, reference)  # params, opt state, key encoder, queue, slot
    assert results["linear_probe_accuracy"] == reference_results["linear_probe_accuracy"]


@pytest.mark.parametrize("driver", ["shard_map", "pmap"])
def test_per_device_drivers_match_the_jit_run(uninterrupted, driver):
    _, _, reference, _ = uninterrupted
    run = runner.build(tiny_moco_config(parallel=driver))
    placed = run.driver.put_state(run.state)
    for step in range(STEPS):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
    state = jax.device_get(run.driver.get_state(placed))
    assert np.isfinite(float(metrics["loss"])) and int(state.queue_slot) == int(reference.queue_slot)
    for name in ("params", "batch_stats", "key_params", "key_batch_stats", "queue"):
        chex.assert_trees_all_close(getattr(state, name), getattr(reference, name), rtol=1e-3, atol=5e-5)


def _losses_of(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [next(r["loss"] for r in rows if r["step"] == step and "loss" in r) for step in range(1, STEPS + 1)]


def test_leaving_out_own_image_keys_changes_only_the_steps_whose_queue_holds_their_images(uninterrupted):
    """config.queue_excludes_own_image: 2 steps an epoch and a queue of 2 batches, so the first epoch's
    queries meet no key of their own images (losses as without the option) and the second epoch's
    meet one each (a smaller loss: fewer negatives)."""
    workdir, _, _, _ = uninterrupted
    run = runner.build(tiny_moco_config(queue_excludes_own_image=True))
    placed, losses_now = run.driver.put_state(run.state), []
    for step in range(STEPS):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses_now.append(float(metrics["loss"]))
    reference = _losses_of(workdir)
    np.testing.assert_allclose(losses_now[:2], reference[:2], rtol=1e-5)
    assert losses_now[2] < reference[2] - 1e-3


def _two_steps(config):
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    for step in range(2):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
    return jax.device_get(run.driver.get_state(placed)), metrics


def test_symmetric_loss_is_the_mean_of_both_directions_on_one_queue():
    """config.symmetric_loss, per device: loss = [L(f_q(x_q), f_k(x_k)) + L(f_q(x_k), f_k(x_q))] / 2
    against the same queue, recomputed here from the views with global batch norm (no shuffle to
    reproduce), and both key batches enqueued."""
    config = tiny_moco_config(symmetric_loss=True, key_bn="global", parallel="shard_map")
    run = runner.build(config)
    state, images = jax.device_get(run.state), run.batch_for_step(0)["image"]
    augment_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), 1))[0]  # the trainer's
    view_q, view_k = augment.two_views(jax.random.fold_in(augment_key, 0), images,
                                       augment.AugmentConfig(**config.augment.to_dict()))
    model = build_model(config, bn_axis_name=None)

    @jax.jit
    def embed(params, batch_stats, views):
        (_, z, _), _ = model.apply({"params": params, "batch_stats": batch_stats}, views, train=True,
                                   mutable=["batch_stats"])
        return z

    q, q2 = (embed(state.params, state.batch_stats, v) for v in (view_q, view_k))
    k, k2 = (embed(state.key_params, state.key_batch_stats, v) for v in (view_k, view_q))
    expected = (losses.queue_info_nce(q, k, state.queue, config.temperature)
                + losses.queue_info_nce(q2, k2, state.queue, config.temperature)) / 2
    placed, metrics = run.step_fn(run.driver.put_state(run.state), run.batch_for_step(0))
    np.testing.assert_allclose(float(metrics["loss"]), float(expected), rtol=2e-5)
    queue = jax.device_get(run.driver.get_state(placed)).queue  # both key batches, in the two oldest slots
    for slot, keys in enumerate((k, k2)):
        np.testing.assert_allclose(queue[:, slot], keys / np.linalg.norm(keys, axis=-1, keepdims=True), atol=5e-5)


def test_symmetric_loss_with_shuffled_batch_norm_matches_the_jit_run_per_device():
    jit_state, _ = _two_steps(tiny_moco_config(symmetric_loss=True))
    per_device, metrics = _two_steps(tiny_moco_config(symmetric_loss=True, parallel="shard_map"))
    assert np.isfinite(float(metrics["loss"]))
    for name in ("params", "batch_stats", "key_params", "key_batch_stats", "queue"):
        chex.assert_trees_all_close(getattr(per_device, name), getattr(jit_state, name), rtol=1e-3, atol=5e-5)


def test_v2_recipe_runs_shrunk_on_generated_images(tmp_path):
    config = load_config_file(os.path.join(ROOT, "configs/moco_v2_imagenet.py:runlocal"))
    results = runner.run("moco", config, str(tmp_path))
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0 and results["steps"] == 4


def test_v1_recipe_trains_shrunk_on_generated_images():
    # v1 is v2 with another head, temperature, schedule and augmentation: its steps are what differ
    # (the evaluation is v2's, run above)
    run = runner.build(load_config_file(os.path.join(ROOT, "configs/moco_v1_imagenet.py:runlocal")))
    placed = run.driver.put_state(run.state)
    for step in range(run.plan.total_steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
    assert np.isfinite(float(metrics["loss"])) and int(run.driver.get_state(placed).step) == 4


def test_digits_recipe_and_its_versions_are_valid():
    for arg in ("", "v1", "runlocal", "v1,runlocal"):
        config = load_config_file(os.path.join(ROOT, "configs/moco_digits.py"), arg or None)
        runner.validate(config)
        assert config.queue_size <= 1437 and config.queue_size % config.batch_size == 0
    assert load_config_file(os.path.join(ROOT, "configs/moco_digits.py"), "v1").lr_schedule == "steps"


def test_full_recipes_keep_the_papers_settings():
    v1 = load_config_file(os.path.join(ROOT, "configs/moco_v1_imagenet.py"))
    v2 = load_config_file(os.path.join(ROOT, "configs/moco_v2_imagenet.py"))
    for c in (v1, v2):
        assert (c.model.depth, c.queue_size, c.key_momentum, c.batch_size, c.base_lr, c.weight_decay, c.epochs) == (
            50, 65536, 0.999, 256, 0.03, 1e-4, 200.0)
        assert c.key_bn == "shuffle" and c.optimizer == "sgd" and c.momentum == 0.9
    assert (v1.head.num_layers, v1.temperature, v1.lr_schedule, v1.augment.blur_prob) == (1, 0.07, "steps", 0.0)
    assert (v2.head.num_layers, v2.head.norm, v2.temperature, v2.lr_schedule, v2.augment.blur_prob) == (
        2, "none", 0.2, "cosine", 0.5)


@pytest.mark.parametrize("overrides, message", [
    (dict(queue_size=96), "config key 'queue_size' has invalid value 96; it must be a positive multiple of "
                          "64, the keys each step enqueues (config.batch_size=64)"),
    (dict(queue_size=64, symmetric_loss=True), "it must be a positive multiple of 128, the keys each step "
                                               "enqueues (config.batch_size=64, both views)"),
    (dict(queue_size=192), "config.queue_size=192 exceeds the 128 training images"),
    (dict(key_bn_groups=4), "config.key_bn_groups=4 is not a multiple of the 8 devices"),
    (dict(key_bn="sync"), "config key 'key_bn' has invalid value 'sync'"),
])
def test_bad_queue_and_key_settings_are_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runner.build(tiny_moco_config(**overrides))


@pytest.mark.slow
def test_two_processes_match_one_process_with_eight_devices(uninterrupted, tmp_path):
    workdir, _, reference, _ = uninterrupted
    reference_losses = _losses_of(workdir)
    out = str(tmp_path / "state.npz")
    run_two_processes("multihost_moco_worker.py", lambda i, port: [i, port, STEPS, out], tmp_path)
    two_process = np.load(out)
    np.testing.assert_allclose(two_process["losses"], reference_losses, rtol=1e-4)
    np.testing.assert_allclose(two_process["queue"], reference.queue, rtol=2e-4, atol=2e-5)
    for name in ("params", "key_params"):
        for path, leaf in jax.tree_util.tree_flatten_with_path(getattr(reference, name))[0]:
            key = f"{name}/" + "/".join(str(k.key) for k in path)
            np.testing.assert_allclose(two_process[key], leaf, rtol=2e-4, atol=2e-5, err_msg=key)
