"""The metric-learning trainer: PK batches, mining on the gathered global batch, the instance
(NT-Xent) term on two views, drivers, runs.

References: numpy formulas for the random-triplet, Siamese, batch-hard and NT-Xent losses,
finite differences (float64) for their gradients, and the single-device value and gradient
for the sharded paths (8 fake CPU devices from conftest).
"""
import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from rl_repr import losses as ml
from rl_repr.core import checkpoint, optim, registry, runner
from rl_repr.core import config as cfg
from rl_repr.core import mesh as parallel
from rl_repr.core import recipes as config_utils
from rl_repr.data.images import pk_batches
from rl_repr.evaluation import few_shot as fs
from rl_repr.metric_learning import trainer
from rl_repr.metric_learning.config import LOSSES, metric_learning_defaults, metric_learning_rules
from rl_repr.metric_learning.model import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
    c = metric_learning_defaults()
    c.classes_per_batch, c.examples_per_class = 4, 4      # 16 rows: 2 per fake device
    c.model.update(conv_widths=(4, 8), embedding_dim=8)
    c.num_steps, c.warmup_steps = 4, 1
    c.checkpoint_every_steps, c.log_every_steps = 2, 1
    c.eval.update(num_episodes=40, num_queries=5, num_pairs=60, recall_ks=(1, 2))
    c.baselines = False
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return c


# ------------------------------------------------------------------ PK batches
def test_pk_batches_are_p_classes_times_k_images_and_a_function_of_the_step():
    labels = np.repeat(np.arange(6), [10, 10, 10, 10, 10, 3])
    rows = pk_batches.pk_batch_indices(labels, 4, 5, seed=1, step=7)
    assert rows.shape == (20,)
    blocks = labels[rows].reshape(4, 5)
    assert np.all(blocks == blocks[:, :1]) and len(set(blocks[:, 0])) == 4
    for block_rows, cls in zip(rows.reshape(4, 5), blocks[:, 0]):
        if cls != 5:  # a class with >= K images gives K distinct images
            assert len(set(block_rows)) == 5
    np.testing.assert_array_equal(rows, pk_batches.pk_batch_indices(labels, 4, 5, seed=1, step=7))
    assert not np.array_equal(rows, pk_batches.pk_batch_indices(labels, 4, 5, seed=1, step=8))
    drawn = {c for s in range(50) for c in labels[pk_batches.pk_batch_indices(labels, 2, 5, seed=0, step=s)]}
    assert drawn == set(range(6))
    with pytest.raises(ValueError, match="exceeds the 6 training classes"):
        pk_batches.pk_batch_indices(labels, 7, 2, seed=0, step=0)


def test_class_split_keeps_every_image_of_the_heldout_classes_out_of_training():
    split = pk_batches.load_class_split(tiny_config())
    assert set(np.unique(split.train.labels)) == {0, 1, 2, 3, 4}
    assert set(np.unique(split.heldout.labels)) == {5, 6, 7, 8, 9}
    assert set(np.unique(split.seen.labels)) == {0, 1, 2, 3, 4}
    # Held-out images are the held-out classes of both splits: 896 of the 1797 digits.
    assert split.heldout.num_examples + split.train.num_examples + split.seen.num_examples == 1797
    train_pixels = {image.tobytes() for image in split.train.images}
    assert not any(image.tobytes() in train_pixels for image in split.heldout.images)


# ------------------------------------------------------------------ losses of the trainer
def _batch(b=16, d=5, seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(b, d))
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), np.repeat(np.arange(b // 4), 4)


def test_sample_partners_draws_uniformly_among_allowed_columns():
    mask = jnp.array([[False, True, True, False, True], [True, False, False, False, False]])
    keys = jax.random.split(jax.random.PRNGKey(0), 3000)
    picks, has_any = jax.vmap(lambda k: ml.sample_partners(k, mask))(keys)
    assert bool(jnp.all(has_any))
    counts = np.bincount(np.asarray(picks[:, 0]), minlength=5) / 3000
    np.testing.assert_allclose(counts, [0, 1 / 3, 1 / 3, 0, 1 / 3], atol=0.04)
    assert np.all(np.asarray(picks[:, 1]) == 0)


@pytest.mark.parametrize("loss", ["random_triplets", "siamese_pairs"])
def test_random_triplet_and_siamese_losses_match_numpy(loss):
    emb, labels = _batch()
    key = jax.random.PRNGKey(3)
    value, diagnostics = ml.metric_loss(jnp.float32(emb), jnp.asarray(labels), key, loss=loss,
                                        margin=0.3, pair_margin=1.2)
    same = labels[:, None] == labels[None, :]
    positive_key, negative_key = jax.random.split(key)
    pos = np.asarray(ml.sample_partners(positive_key, jnp.asarray(same & ~np.eye(16, dtype=bool)))[0])
    neg = np.asarray(ml.sample_partners(negative_key, jnp.asarray(~same))[0])
    assert np.all(labels[pos] == labels) and np.all(pos != np.arange(16)) and np.all(labels[neg] != labels)
    d2 = lambda a, b: np.sum((a - b) ** 2, axis=1)  # noqa: E731
    if loss == "random_triplets":   # FaceNet's hinge on squared distances
        expected = np.mean(np.maximum(d2(emb, emb[pos]) - d2(emb, emb[neg]) + 0.3, 0))
    else:                           # Hadsell et al. on Euclidean distances (without the 1/2)
        expected = np.mean(np.concatenate([d2(emb, emb[pos]),
                                           np.maximum(1.2 - np.sqrt(d2(emb, emb[neg])), 0) ** 2]))
    assert float(value) == pytest.approx(expected, rel=1e-5)
    sq = np.sum((emb[:, None] - emb[None]) ** 2, -1)
    assert float(diagnostics["negative_distance"]) == pytest.approx(sq[~same].mean(), rel=1e-5)


@pytest.mark.parametrize("loss", ["random_triplets", "siamese_pairs"])
def test_random_triplet_and_siamese_gradients_match_finite_differences(loss):
    emb, labels = _batch(b=8, d=3, seed=1)
    with jax.enable_x64(True):
        fn = lambda e: ml.metric_loss(e, jnp.asarray(labels), jax.random.PRNGKey(0), loss=loss)[0]  # noqa: E731
        check_grads(jax.jit(fn), (jnp.float64(emb * 0.7),), order=1, modes=("rev",), eps=1e-6)


def numpy_batch_hard(emb, labels, margin):
    """Hermans et al. 2017 from the formula: mean_a max(max_p |a-p| - min_n |a-n| + margin, 0)."""
    dist = np.sqrt(np.maximum(np.sum((emb[:, None] - emb[None]) ** 2, -1), 0))
    same = labels[:, None] == labels[None]
    hardest_positive = np.where(same & ~np.eye(len(labels), dtype=bool), dist, -np.inf).max(1)
    hardest_negative = np.where(~same, dist, np.inf).min(1)
    return np.mean(np.maximum(hardest_positive - hardest_negative + margin, 0))


def numpy_nt_xent(z1, z2, tau):
    """Chen et al. 2020 eq. 1: mean over the 2N views of -log softmax of the partner among the others."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        logits = np.array([z[i] @ z[k] / tau for k in range(2 * n) if k != i])
        total += -(z[i] @ z[partner] / tau) + np.log(np.sum(np.exp(logits)))
    return total / (2 * n)


@pytest.mark.parametrize("metric_weight, instance_weight", [(1.0, 0.5), (0.0, 1.0)])
def test_metric_and_instance_loss_matches_numpy(metric_weight, instance_weight):
    emb, labels = _batch(b=12, d=5, seed=2)
    other, _ = _batch(b=12, d=5, seed=3)
    view_2 = (emb + 0.5 * other) / np.linalg.norm(emb + 0.5 * other, axis=1, keepdims=True)
    value, diagnostics = ml.metric_and_instance_loss(
        jnp.float32(emb), jnp.float32(view_2), jnp.asarray(labels), jax.random.PRNGKey(0),
        metric_weight=metric_weight, instance_weight=instance_weight, instance_temperature=0.3,
        loss="batch_hard", margin=0.4)
    metric = numpy_batch_hard(np.concatenate([emb, view_2]), np.concatenate([labels, labels]), 0.4)
    instance = numpy_nt_xent(emb, view_2, 0.3)
    assert float(value) == pytest.approx(metric_weight * metric + instance_weight * instance, rel=1e-5)
    assert float(diagnostics["metric_loss"]) == pytest.approx(metric, rel=1e-5)
    assert float(diagnostics["instance_loss"]) == pytest.approx(instance, rel=1e-5)
    with pytest.raises(ValueError, match="two \\[B, d\\] views"):
        ml.metric_and_instance_loss(jnp.float32(emb), jnp.float32(view_2[:4]), jnp.asarray(labels),
                                    jax.random.PRNGKey(0), metric_weight=1.0, instance_weight=1.0,
                                    instance_temperature=0.3, loss="batch_hard")


def test_metric_and_instance_loss_gradient_matches_finite_differences():
    emb, labels = _batch(b=8, d=3, seed=4)
    other, _ = _batch(b=8, d=3, seed=5)
    with jax.enable_x64(True):
        def fn(a, b):
            return ml.metric_and_instance_loss(a, b, jnp.asarray(labels), jax.random.PRNGKey(0), metric_weight=0.7,
                                               instance_weight=0.3, instance_temperature=0.5, loss="semi_hard")[0]
        check_grads(jax.jit(fn), (jnp.float64(emb * 0.8), jnp.float64(other * 0.9)), order=1, modes=("rev",),
                    eps=1e-6)


def _per_device_value_and_grad(gather, names=LOSSES):
    """Each strategy's value and parameter gradient, per device, mining the gathered batch."""
    def step(w, x, labels, key, axis_name):
        def f(w, loss):
            e = x @ w
            e = e / jnp.linalg.norm(e, axis=1, keepdims=True)
            all_labels = jax.lax.all_gather(labels, axis_name, tiled=True)
            return ml.metric_loss(gather(e, axis_name), all_labels, key, loss=loss)[0]
        out = {loss: jax.value_and_grad(f)(w, loss) for loss in names}
        return {loss: (value, jax.lax.psum(grad, axis_name)) for loss, (value, grad) in out.items()}
    return step


def test_mining_on_the_gathered_batch_matches_one_device():
    """Every strategy's value and gradient under shard_map and pmap (8 devices, 4 rows each)
    equal the single-device ones; a plain all_gather would multiply the gradient by 8."""
    rng = np.random.default_rng(0)
    x = jnp.float32(rng.normal(size=(32, 6)))
    w = jnp.float32(rng.normal(size=(6, 5)))
    labels = jnp.asarray(rng.permutation(np.repeat(np.arange(8), 4)))
    key = jax.random.PRNGKey(5)

    @jax.jit
    def reference(w):
        def global_loss(w, loss):
            e = x @ w
            return ml.metric_loss(e / jnp.linalg.norm(e, axis=1, keepdims=True), labels, key, loss=loss)[0]
        return {loss: jax.value_and_grad(global_loss)(w, loss) for loss in LOSSES}
    expected = reference(w)

    mesh = parallel.make_mesh(8)
    step = functools.partial(_per_device_value_and_grad(ml.gather_global_batch), axis_name="data")
    sharded = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data"), P("data"), P()),
                                    out_specs=P(), check_vma=False))(w, x, labels, key)
    pmapped = jax.pmap(step, axis_name="data", in_axes=(None, 0, 0, None))(
        w, x.reshape(8, 4, 6), labels.reshape(8, 4), key)
    for loss in LOSSES:
        ref_value, ref_grad = expected[loss]
        assert float(ref_value) > 0 and float(jnp.abs(ref_grad).max()) > 0, loss
        for value, grad in (sharded[loss], jax.tree.map(lambda t: t[0], pmapped[loss])):
            np.testing.assert_allclose(value, ref_value, rtol=1e-5, err_msg=loss)
            np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6, err_msg=loss)

    plain = functools.partial(_per_device_value_and_grad(lambda e, a: jax.lax.all_gather(e, a, tiled=True),
                                                         names=("semi_hard",)), axis_name="data")
    plain_out = jax.pmap(plain, axis_name="data", in_axes=(None, 0, 0, None))(
        w, x.reshape(8, 4, 6), labels.reshape(8, 4), key)
    np.testing.assert_allclose(plain_out["semi_hard"][1][0], 8 * expected["semi_hard"][1], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ model
def test_embedding_net_outputs_unit_vectors_of_the_configured_size():
    config = tiny_config()
    model = build_model(config, None)
    images = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
    z = jax.jit(lambda x: model.apply(model.init(jax.random.PRNGKey(1), x, train=False), x, train=False))(images)
    assert z.shape == (3, 8)
    np.testing.assert_allclose(jnp.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    resnet = build_model(tiny_config(**{"model.architecture": "resnet", "model.width_multiplier": 0.0625}), None)
    shapes = jax.eval_shape(lambda: resnet.apply(resnet.init(jax.random.PRNGKey(0), images, train=False),
                                                 images, train=False))
    assert shapes.shape == (3, 8)


# ------------------------------------------------------------------ drivers
def _train(config, num_steps=3):
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(num_steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append(float(metrics["loss"]))
    return np.array(losses), jax.device_get(run.driver.get_state(placed))


# Siamese pairs (random partners) plus the instance term (two views of each image, gathered
# view by view): the step's every global-batch dependency at once.
TWO_VIEW_SIAMESE = dict(loss="siamese_pairs", instance_weight=0.5, instance_temperature=0.3)


@pytest.fixture(scope="module")
def jit_8_devices():
    return _train(tiny_config(parallel="jit", **TWO_VIEW_SIAMESE))


@pytest.mark.parametrize("overrides", [dict(parallel="shard_map"), dict(parallel="pmap"),
                                       dict(parallel="jit", num_devices=1)])
def test_drivers_and_device_counts_train_identically(overrides, jit_8_devices):
    """Global batch norm, per-example augmentation keys, the random Siamese pairs and the
    NT-Xent negatives all see the global batch, so every driver takes the same steps."""
    ref_losses, ref_state = jit_8_devices
    losses, state = _train(tiny_config(**TWO_VIEW_SIAMESE, **overrides))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    chex.assert_trees_all_close(state.params, ref_state.params, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(state.batch_stats, ref_state.batch_stats, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ runs
def _params(workdir, target):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=2)
    state, step = ckpt.restore_latest(target)
    ckpt.close()
    return jax.device_get(state.params), step


def test_run_writes_results_and_resumes_to_identical_parameters(tmp_path):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    quick = functools.partial(tiny_config, augment_enabled=False,  # augmentation: see the driver tests
                              **{"eval.feature_transform": "center_and_normalize"})
    results = runner.run("metric_learning", quick(baselines=True), full)
    split = pk_batches.load_class_split(quick())
    pixels = lambda d: d.images.reshape(d.num_examples, -1) / 255.0  # noqa: E731
    centred = fs.center_and_normalize(pixels(split.heldout), pixels(split.train).mean(axis=0))
    expected = fs.few_shot_accuracy(centred, split.heldout.labels, n_way=5, k_shot=1, num_queries=5,
                                    num_episodes=40)
    assert results["raw_pixels_5way_1shot_accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
    for name in ("results.json", "config.json", "metrics.jsonl"):
        assert os.path.isfile(os.path.join(full, name)), name
    assert json.load(open(os.path.join(full, "results.json")))["steps"] == 4
    assert results["train_classes"] == [0, 1, 2, 3, 4] and results["heldout_classes"] == [5, 6, 7, 8, 9]
    for prefix in ("", "trunk_", "raw_pixels_", "random_init_", "seen_classes_"):
        for key in ("5way_1shot_accuracy", "5way_5shot_ci95", "verification_accuracy", "recall_at_2"):
            assert 0.0 <= results[prefix + key] <= 1.0, prefix + key
    assert runner.run("metric_learning", quick(), part, stop_after_step=2) == {"stopped_at_step": 2}
    resumed = runner.run("metric_learning", quick(), part)
    config = quick()
    target = trainer.init_state(config, optim.make_optimizer(trainer.optimizer_config(config))[0],
                                jax.random.key(0, impl="rbg"), (8, 8, 1))
    (params, step), (ref_params, ref_step) = _params(part, target), _params(full, target)
    assert step == ref_step == 4
    chex.assert_trees_all_equal(params, ref_params)
    assert resumed["5way_1shot_accuracy"] == results["5way_1shot_accuracy"]


# ------------------------------------------------------------------ configs
def test_bad_values_fail_naming_the_key():
    with pytest.raises(cfg.ConfigError) as error:
        runner.build(tiny_config(loss="hardest", examples_per_class=1, **{"eval.num_episodes": 0}))
    message = str(error.value)
    assert "'loss' has invalid value 'hardest'" in message
    assert "'examples_per_class' has invalid value 1" in message and "'eval.num_episodes'" in message
    with pytest.raises(cfg.ConfigError) as error:
        runner.build(tiny_config(metric_weight=0.0, instance_temperature=0.0))
    assert "'metric_weight' has invalid value 0.0" in str(error.value)
    assert "'instance_temperature' has invalid value 0.0" in str(error.value)
    with pytest.raises(cfg.ConfigError, match="'eval.feature_transform' has invalid value 'cl2n'"):
        runner.build(tiny_config(**{"eval.feature_transform": "cl2n"}))
    with pytest.raises(cfg.ConfigError, match="'instance_weight' has invalid value 1.0"):
        runner.build(tiny_config(instance_weight=1.0, augment_enabled=False))
    with pytest.raises(cfg.ConfigError) as error:
        runner.build(tiny_config(class_augmentation="rotate", extra_classes="fonts", glyph_characters="AB5"))
    message = str(error.value)
    assert "'class_augmentation' has invalid value 'rotate'" in message
    assert "'extra_classes' has invalid value 'fonts'" in message and "'glyph_characters'" in message
    with pytest.raises(ValueError, match="8 devices"):
        runner.build(tiny_config(classes_per_batch=3, examples_per_class=3))
    with pytest.raises(ValueError, match="only 2 held-out classes"):
        runner.build(tiny_config(eval_classes=(8, 9, 12)))
    with pytest.raises(ValueError, match="exceeds the 5 training classes"):
        runner.build(tiny_config(classes_per_batch=8, examples_per_class=2))


@pytest.mark.parametrize("loss", LOSSES)
def test_digits_recipe_selects_each_strategy(loss):
    config = config_utils.load_config_file(os.path.join(ROOT, "configs/metric_digits.py"), loss)
    assert config.loss == loss and config.eval.num_episodes >= 600 and config.baselines
    small = config_utils.load_config_file(os.path.join(ROOT, "configs/metric_digits.py"), f"{loss},runlocal")
    assert small.loss == loss and small.num_steps < config.num_steps
    cfg.validate_config(small, metric_learning_rules())


def test_digits_instance_recipes_add_the_nt_xent_term():
    digits = os.path.join(ROOT, "configs/metric_digits.py")
    mixed = config_utils.load_config_file(digits, "batch_hard,instance")
    alone = config_utils.load_config_file(digits, "instance_only,runlocal")
    assert mixed.loss == "batch_hard" and mixed.instance_weight > 0 and mixed.metric_weight > 0
    assert alone.instance_weight > 0 and alone.metric_weight == 0 and alone.num_steps < mixed.num_steps
    for config in (mixed, alone):
        runner.validate(config)
    with pytest.raises(ValueError, match=r"pick at most one of \('instance', 'instance_only'\)"):
        config_utils.load_config_file(digits, "instance,instance_only")


def test_digits_class_recipes_enlarge_the_training_classes():
    digits = os.path.join(ROOT, "configs/metric_digits.py")
    config = config_utils.load_config_file(digits, "semi_hard,instance,rotations_flips,glyphs")
    assert config.class_augmentation == "rotations_flips" and config.extra_classes == "glyphs"
    assert config.classes_per_batch > 5 and config.eval_classes == (5, 6, 7, 8, 9)
    runner.validate(config)
    flat = config_utils.load_config_file(digits, "semi_hard,rotations_flips,glyphs,flat")
    assert not flat.model.global_pool and flat.model.embedding_dim == 128
    strokes = config_utils.load_config_file(digits, "semi_hard,rotations_flips,glyphs,strokes,flat")
    assert strokes.extra_classes == "glyphs+strokes" and strokes.stroke_classes == 3000
    assert strokes.num_steps == 2000 and not strokes.augment_enabled and strokes.stroke_warp > 0
    assert tuple(strokes.model.conv_widths) == (64, 128, 256)
    runner.validate(strokes)
    with pytest.raises(ValueError, match=r"pick at most one of \('rotations', 'rotations_flips'\)"):
        config_utils.load_config_file(digits, "rotations,rotations_flips")


def test_run_batches_come_from_the_enlarged_training_set():
    run = runner.build(tiny_config(class_augmentation="rotations", extra_classes="glyphs", glyph_images_per_class=2,
                                   glyph_characters="AB", classes_per_batch=8, examples_per_class=2))
    train_set, data = run.plan.extras["train_set"], run.plan.extras["data"]
    assert set(np.unique(train_set.labels).tolist()) == {d + 10 * t for d in range(5) for t in range(4)} | {40, 41}
    np.testing.assert_array_equal(np.unique(data.train.labels), np.arange(5))  # centring data unchanged
    labels = np.asarray(run.batch_for_step(3)["label"])
    assert labels.shape == (16,) and not np.isin(labels, (5, 6, 7, 8, 9)).any()


def test_recipes_reject_unknown_arguments_and_lfw_recipe_is_valid():
    with pytest.raises(ValueError, match="one of"):
        config_utils.load_config_file(os.path.join(ROOT, "configs/metric_digits.py"), "hardest")
    lfw = config_utils.load_config_file(os.path.join(ROOT, "configs/metric_lfw.py"))
    assert lfw.dataset == "lfw" and lfw.model.architecture == "resnet"
    runner.validate(lfw)
    assert registry.get_method("metric_learning") is trainer.METHOD


def test_lfw_recipe_without_the_dataset_says_how_to_prepare_it(tmp_path):
    config = config_utils.load_config_file(os.path.join(ROOT, "configs/metric_lfw.py"), "runlocal")
    with config.unlocked():
        config.data_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="tfds build lfw"):
        runner.build(config)
