"""The pretext method end to end: a short run learns its task and reports like SimCLR (and zero-shot);
the multi-task step on 8 devices equals one device; bad settings are one clear sentence."""
import chex
import jax
import numpy as np
import pytest

from rl_repr.core import runner
from rl_repr.core.config import ConfigError
from rl_repr.data.images.augment import to_float_images
from rl_repr.pretext import evaluation, tasks
from rl_repr.pretext.config import pretext_defaults
from rl_repr.pretext.model import build_model
from rl_repr.pretext.trainer import jigsaw_permutations


def _config(**overrides):
    c = pretext_defaults()
    c.update_from_flattened_dict({
        "dataset": "characters:classes=12,images=20,size=32", "model.width_multiplier": 0.0625, "batch_size": 32,
        "epochs": 1.0, "warmup_epochs": 0.0, "base_lr": 3e-3, "head_hidden_dim": 32, "inpainting.decoder_width": 8,
        "jigsaw.num_permutations": 10, "eval_batch_size": 64, "knn_k": 5, "log_every_steps": 10,
        "checkpoint_every_steps": 1000, "baselines": False, **overrides})
    return c


@pytest.fixture(scope="module")
def rotation_run(tmp_path_factory):
    # 8 seen classes x 16 training images = 128 images, 4 steps per epoch: 48 steps of batch 32.
    config = _config(epochs=12.0, **{"zero_shot.unseen_classes": 4, "zero_shot.episodes": 50})
    return runner.run("pretext", config, str(tmp_path_factory.mktemp("rotation")))


def test_short_rotation_run_beats_chance_and_reports_like_simclr(rotation_run):
    results = rotation_run
    assert results["steps"] == 48
    assert results["pretext_rotation_chance"] == 0.25
    # all four turns of the 32 test images of the 8 seen classes, never trained on
    assert results["pretext_rotation_accuracy"] > 0.45
    # SimCLR's report of the frozen h (its baselines are SimCLR's code, tested there)
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0 and 0.0 <= results["knn_accuracy"] <= 1.0


def test_zero_shot_keys_for_the_held_out_classes(rotation_run):
    results = rotation_run
    assert results["zero_shot_chance"] == 0.25  # 4 unseen classes, never trained on
    assert 0.0 <= results["zero_shot_accuracy"] <= 1.0 and 0.0 <= results["one_shot_accuracy"] <= 1.0
    assert results["distinct_unseen_descriptions"] >= 2


def _train(config, num_steps=1):
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(num_steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append({k: float(v) for k, v in metrics.items()})
    return losses, jax.device_get(run.driver.get_state(placed))


def test_multi_task_step_on_8_devices_equals_one_device():
    """Per-task means over the global batch (counts summed over devices) and global batch norm,
    with the two tasks whose batches are not one image per row: 9 tiles per image, masked pixels."""
    tasks = {"tasks": ("jigsaw", "inpainting"), "inpainting.mask": "random_block"}
    sharded_metrics, sharded = _train(_config(parallel="shard_map", **tasks))
    single_metrics, single = _train(_config(parallel="jit", num_devices=1, **tasks))
    for a, b in zip(sharded_metrics, single_metrics):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)
    chex.assert_trees_all_close(sharded.params, single.params, rtol=1e-3, atol=1e-5)
    chex.assert_trees_all_close(sharded.batch_stats, single.batch_stats, rtol=1e-3, atol=1e-5)


def test_each_task_is_scored_with_batch_norm_statistics_of_its_own_inputs():
    """Rotation reads whole images, the jigsaw 8x8 tiles: the shared encoder's running statistics
    blend the two, so each task is scored with statistics re-estimated on its own inputs. They must
    match the statistics of all the training images' inputs for that task (one batch, the
    reference) and differ between the tasks."""
    config = _config(tasks=("rotation", "jigsaw"))
    plan = runner.build(config).plan
    images = plan.extras["train_set"].images
    model = build_model(config, plan.extras["train_set"].image_shape, bn_axis_name=None)
    variables = jax.device_get({"params": plan.state.params, "batch_stats": plan.state.batch_stats})
    permutations, key = jigsaw_permutations(config), jax.random.PRNGKey(3)

    def relative_difference(a, b):
        leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
        return float(np.mean([np.abs(x - y).mean() / (np.abs(y).mean() + 1e-6) for x, y in leaves]))

    estimated = {}
    for task in config.tasks:
        estimated[task] = evaluation.task_statistics(config, model, variables, images, permutations, task, key)
        inputs, _ = tasks.task_inputs(tasks.single_task(config, task), key, to_float_images(images), permutations)
        _, new = model.apply(variables, inputs, train=True, mutable=["batch_stats"])  # momentum 0.9
        reference = jax.tree_util.tree_map(lambda n, o: (n - 0.9 * o) / 0.1, new["batch_stats"],
                                           variables["batch_stats"])
        assert relative_difference(estimated[task], reference) < 0.1, task
    assert relative_difference(estimated["rotation"], estimated["jigsaw"]) > 0.2


@pytest.mark.parametrize("overrides,message", [
    ({"tasks": ("rotation", "colorization")}, "'tasks'"),
    ({"tasks": ("jigsaw", "jigsaw")}, "each task at most once"),
    ({"task_weights": (1.0,), "tasks": ("rotation", "jigsaw")}, "'task_weights'"),
    ({"relative_position.gap": 2, "relative_position.jitter": 1}, "never touch"),
    ({"inpainting.mask": "square"}, "'inpainting.mask'"),
    ({"zero_shot.unseen_classes": 3, "dataset": "digits"}, "'zero_shot.unseen_classes'"),
])
def test_bad_settings_are_one_sentence_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        runner.validate(_config(**overrides))


def test_patches_that_do_not_fit_the_images_are_refused_before_training():
    with pytest.raises(ValueError, match="relative_position.patch_size"):
        runner.build(_config(tasks=("relative_position",), **{"relative_position.patch_size": 10}))
