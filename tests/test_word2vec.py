"""The word2vec trainer: SGD updates against a float64 numpy reference, sharding, resume, recovery."""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.test_util import check_grads

from rl_repr import losses
from rl_repr.core import config as config_utils
from rl_repr.core import mesh as parallel
from rl_repr.core import runner
from rl_repr.core.drivers import Driver
from rl_repr.data.text import batches as tb
from rl_repr.data.text import vocab as tv
from rl_repr.word2vec import slots as w2v_slots
from rl_repr.word2vec import step as w2v
from rl_repr.word2vec.config import word2vec_defaults

VOCAB, DIM, WINDOW, K, LENGTH = 40, 6, 2, 3, 12


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch(sharing, rows, seed=0, shared=6):
    """One update's batch ``[rows, 1, ...]`` from a 3-sentence corpus."""
    rng = np.random.default_rng(seed)
    corpus = tv.EncodedCorpus(ids=rng.integers(0, VOCAB, 200).astype(np.int32),
                              sentence_ids=np.repeat([0, 1, 2], [70, 50, 80]).astype(np.int32), raw_word_count=200)
    stream = tb.epoch_stream(corpus, np.ones(VOCAB), seed=seed, epoch=0)
    shape = w2v.negatives_shape(sharing, window=WINDOW, positions_per_row=LENGTH, negatives_per_pair=K,
                                shared_negatives=shared)
    batch = tb.skipgram_batch(stream, 200 - rows * LENGTH + 5, rows=rows, positions_per_row=LENGTH, window=WINDOW,
                              noise=tb.AliasTable.build(np.full(VOCAB, 1 / VOCAB)), negatives_shape=shape,
                              rng=rng)
    batch = {name: array[:, None] for name, array in batch.items()}  # one update per step
    batch["learning_rate"] = np.full((rows, 1), 0.05, np.float32)
    return batch


def _state(seed=0):
    rng = np.random.default_rng(seed)
    return w2v.Word2VecState(step=jnp.zeros((), jnp.int32),
                             input_vectors=jnp.asarray(rng.normal(0, 0.5, (VOCAB, DIM)), jnp.float32),
                             output_vectors=jnp.asarray(rng.normal(0, 0.5, (VOCAB, DIM)), jnp.float32))


def _numpy_sgd(state, batch, lr, sharing):
    """One SGD step on the summed SGNS loss, pair by pair in float64, from the formula."""
    inputs, outputs = np.float64(state.input_vectors), np.float64(state.output_vectors)
    grad_in, grad_out, total = np.zeros_like(inputs), np.zeros_like(outputs), 0.0
    owner = tb.pair_targets(WINDOW, LENGTH)
    for r in range(batch["targets"].shape[0]):
        for p in np.nonzero(batch["pair_mask"][r, 0])[0]:
            c, t = batch["contexts"][r, 0, p], batch["targets"][r, 0, owner[p]]
            noise, weight = batch["negatives"][r, 0], 1.0
            if sharing == "window":
                noise = noise[owner[p]]  # the target's K, shared by its contexts
            elif sharing == "pair":
                noise = noise[p]
            else:
                weight = K / len(noise)  # S shared by the row, averaged in groups of K
            e = inputs[c]
            g = _sigmoid(e @ outputs[t]) - 1.0  # d/ds of -log sigma(s)
            total -= np.log(_sigmoid(e @ outputs[t]))
            grad_in[c] += g * outputs[t]
            grad_out[t] += g * e
            for n in noise:
                g = weight * _sigmoid(e @ outputs[n])  # d/ds of -w log sigma(-s)
                total -= weight * np.log(_sigmoid(-(e @ outputs[n])))
                grad_in[c] += g * outputs[n]
                grad_out[n] += g * e
    return inputs - lr * grad_in, outputs - lr * grad_out, total


@pytest.mark.parametrize("sharing", ["window", "pair", "row"])
@pytest.mark.parametrize("loss_impl", ["slots", "fused", "vmap"])
def test_sgd_update_matches_numpy_reference(sharing, loss_impl):
    batch, state = _batch(sharing, rows=2), _state()
    step = w2v.make_per_device_step(window=WINDOW, loss="sgns", negatives_per_pair=K, loss_impl=loss_impl)
    new_state, metrics = jax.jit(lambda s, b: step(s, b, None))(state, batch)
    inputs, outputs, total = _numpy_sgd(state, batch, 0.05, sharing)
    pairs = int(batch["pair_mask"].sum())
    np.testing.assert_allclose(new_state.input_vectors, inputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_state.output_vectors, outputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metrics["loss"], total / pairs, rtol=1e-5)
    assert int(metrics["pairs"]) == pairs and int(new_state.step) == 1


def test_fused_group_loss_gradients_by_finite_differences():
    rng = np.random.default_rng(1)
    context = rng.normal(size=(2, 5, 4))
    outputs = rng.normal(size=(2, 5, 3, 4))
    shared = rng.normal(size=(2, 6, 4))
    mask = rng.random((2, 5)) < 0.7
    loss = jax.jit(lambda c, o, s: w2v.sgns_group_loss(c, o, mask, s, 0.5))
    check_grads(loss, (context, outputs, shared), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_window_slots_hold_each_pair_once_at_its_target_and_offset():
    """Slot (t, column) <-> the pair of target t at offset -k / +k, for |offset| <= t's window."""
    for window, length in ((WINDOW, LENGTH), (5, 23), (3, 7)):
        index = w2v_slots.window_slot_index(window, length)
        pairs = tb.pairs_per_row(window, length)
        owner, offset, sizes = tb.pair_targets(window, length), tb.pair_offsets(window, length), tb.window_sizes(window, length)
        slot_offsets = np.array([sign * k for k in range(1, window + 1) for sign in (-1, 1)])
        real = np.abs(slot_offsets)[None, :] <= sizes[:, None]
        assert index.shape == (length, 2 * window)
        np.testing.assert_array_equal(index[~real], pairs)  # the masked dummy
        assert sorted(index[real]) == list(range(pairs))  # every pair exactly once
        targets, columns = np.nonzero(real)
        np.testing.assert_array_equal(owner[index[real]], targets)
        np.testing.assert_array_equal(offset[index[real]], slot_offsets[columns])
        values = np.arange(2 * pairs).reshape(2, pairs) + 1  # [R, P] -> slots -> back
        slotted = w2v_slots.to_window_slots(jnp.asarray(values), window, length, 0)
        np.testing.assert_array_equal(w2v_slots.from_window_slots(slotted, window, length), values)
        np.testing.assert_array_equal(np.asarray(slotted)[:, ~real], 0)


@pytest.mark.parametrize("sharing", ["window", "pair", "row"])
def test_slot_gradients_equal_autodiff_of_the_library_loss(sharing):
    """Closed-form loss and gradients vs jax.grad of rl_repr.losses.sgns_loss, pair by pair."""
    rng = np.random.default_rng(7)
    rows, length, slots, dim, k = 2, 5, 4, 6, 3
    context = jnp.asarray(rng.normal(0, 0.6, (rows, length, slots, dim)), jnp.float32)
    mask = jnp.asarray(rng.random((rows, length, slots)) < 0.7)
    outputs = jnp.asarray(rng.normal(0, 0.6, (rows, length, 1 + k if sharing == "window" else 1, dim)), jnp.float32)
    noise = {"pair": rng.normal(0, 0.6, (rows, length, slots, k, dim)), "row": rng.normal(0, 0.6, (rows, 2 * k, dim)),
             "window": None}[sharing]
    noise = None if noise is None else jnp.asarray(noise, jnp.float32)
    weight = k / (2 * k) if sharing == "row" else 1.0

    def reference(context, outputs, noise):
        def pair_loss(r, t, s):
            target = outputs[r, t, 0]
            if sharing == "window":
                return losses.sgns_loss(context[r, t, s], target, outputs[r, t, 1:])
            if sharing == "pair":
                return losses.sgns_loss(context[r, t, s], target, noise[r, t, s])
            groups = noise[r].reshape(-1, k, dim)  # row: the mean over groups of K
            return jnp.mean(jnp.stack([losses.sgns_loss(context[r, t, s], target, g) for g in groups]))
        return sum(jnp.where(mask[r, t, s], pair_loss(r, t, s), 0.0)
                   for r in range(rows) for t in range(length) for s in range(slots))

    kwargs = {"pair": {"slot_noise_vecs": noise}, "row": {"shared_noise_vecs": noise}, "window": {}}[sharing]
    loss, d_context, d_output, d_slot_noise, d_shared = w2v_slots.sgns_slot_gradients(
        context, outputs, mask, noise_weight=weight, **kwargs)
    argnums = (0, 1) if noise is None else (0, 1, 2)
    expected_loss, expected = jax.value_and_grad(reference, argnums=argnums)(context, outputs, noise)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(d_context, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_output, expected[1], rtol=1e-5, atol=1e-6)
    if noise is not None:
        np.testing.assert_allclose(d_slot_noise if sharing == "pair" else d_shared, expected[2], rtol=1e-5, atol=1e-6)


def test_slot_loss_stays_finite_for_extreme_scores():
    """The loss (a metric) is capped near 87 per term where the sigmoid saturates; gradients stay exact."""
    context = jnp.full((1, 1, 1, 2), 10.0)
    outputs = jnp.stack([-jnp.full((2,), 10.0), jnp.full((2,), 10.0)])[None, None]  # x = -200, +200
    loss, d_context, *_ = w2v_slots.sgns_slot_gradients(context, outputs, jnp.ones((1, 1, 1), bool))
    assert np.isfinite(loss) and 170 < float(loss) <= 2 * 87.4
    np.testing.assert_allclose(d_context[0, 0, 0], -outputs[0, 0, 0] + outputs[0, 0, 1], rtol=1e-6)
    nan_loss, *_ = w2v_slots.sgns_slot_gradients(context * np.nan, outputs, jnp.ones((1, 1, 1), bool))
    assert np.isnan(nan_loss)  # the trainer's NaN check still sees a diverged run


def test_updates_per_call_equal_single_updates_in_sequence():
    """One compiled call scanning M updates == M calls of one update each (word2vec's sequential SGD)."""
    updates = 3
    per_update = [_batch("window", rows=2, seed=seed) for seed in range(updates)]
    for m, batch in enumerate(per_update):
        batch["learning_rate"] = np.full((2, 1), 0.05 - 0.01 * m, np.float32)
    stacked = {name: np.concatenate([b[name] for b in per_update], axis=1) for name in per_update[0]}
    step = jax.jit(lambda s, b: w2v.make_per_device_step(window=WINDOW, loss="sgns", negatives_per_pair=K)(s, b, None))
    scanned, metrics = step(_state(), stacked)
    state = _state()
    for batch in per_update:
        state, _ = step(state, batch)
    np.testing.assert_array_equal(scanned.input_vectors, state.input_vectors)
    np.testing.assert_array_equal(scanned.output_vectors, state.output_vectors)
    assert int(scanned.step) == updates and float(metrics["learning_rate"]) == np.float32(0.03)


def test_full_softmax_update_matches_numpy_reference():
    batch, state = _batch("window", rows=1), _state()
    step = w2v.make_per_device_step(window=WINDOW, loss="full_softmax", negatives_per_pair=K)
    batch["learning_rate"] = np.full((1, 1), 0.1, np.float32)
    new_state, metrics = jax.jit(lambda s, b: step(s, b, None))(state, batch)
    inputs, outputs = np.float64(state.input_vectors), np.float64(state.output_vectors)
    grad_in, grad_out, total = np.zeros_like(inputs), np.zeros_like(outputs), 0.0
    owner = tb.pair_targets(WINDOW, LENGTH)
    for p in np.nonzero(batch["pair_mask"][0, 0])[0]:
        c, t = batch["contexts"][0, 0, p], batch["targets"][0, 0, owner[p]]
        logits = outputs @ inputs[c]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        total += -np.log(probs[t])
        error = probs - np.eye(VOCAB)[t]  # d loss / d logits
        grad_in[c] += error @ outputs
        grad_out += np.outer(error, inputs[c])
    np.testing.assert_allclose(new_state.input_vectors, inputs - 0.1 * grad_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_state.output_vectors, outputs - 0.1 * grad_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["loss"], total / batch["pair_mask"].sum(), rtol=1e-5)


def test_learning_rate_decays_linearly():
    rates = w2v.learning_rates(np.array([0, 50, 100, 150]), alpha=0.025, min_alpha=0.0001, total_updates=100)
    np.testing.assert_allclose(rates, [0.025, 0.01255, 0.0001, 0.0001], rtol=1e-5)


SHARDED_KWARGS = dict(window=WINDOW, loss="sgns", negatives_per_pair=K)


@pytest.fixture(scope="module")
def single_device_step():
    """One update of ``device_count`` rows on one device (``axis_name=None``): the reference."""
    batch, state = _batch("window", rows=jax.device_count(), seed=3), jax.device_get(_state(3))
    step = w2v.make_per_device_step(**SHARDED_KWARGS)
    # Host copies: the drivers donate the buffers they are given.
    return batch, state, jax.device_get(jax.jit(lambda s, b: step(s, b, None))(state, batch))


@pytest.mark.parametrize("driver_name", ["shard_map", "pmap", "jit"])
def test_sharded_step_equals_single_device_step(driver_name, single_device_step):
    batch, state, (expected, expected_metrics) = single_device_step
    driver = Driver(driver_name, parallel.make_mesh(jax.device_count()))
    step = driver.compile_step(w2v.make_per_device_step(**SHARDED_KWARGS))
    placed, metrics = step(driver.put_state(state), driver.put_batch(batch))
    result = jax.device_get(driver.get_state(placed))
    np.testing.assert_allclose(result.input_vectors, expected.input_vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.output_vectors, expected.output_vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-5)


def _two_update_batch(rows):
    """Two updates per step, ``[rows, 2, ...]``."""
    first, second = _batch("window", rows=rows, seed=4), _batch("window", rows=rows, seed=5)
    return {name: np.concatenate([first[name], second[name]], axis=1) for name in first}


@pytest.mark.parametrize("driver_name", ["shard_map", "pmap"])
def test_step_sync_adds_up_each_devices_local_updates(driver_name):
    """``table_sync='step'``: each device takes its own rows' updates on its own replica, then
    the replicas add up their changes -- Hogwild with the race made deterministic."""
    devices = jax.device_count()
    batch, state = _two_update_batch(devices), jax.device_get(_state(4))
    local = jax.jit(lambda s, b: w2v.make_per_device_step(**SHARDED_KWARGS)(s, b, None))
    changes, losses_and_pairs = [], []
    for row in range(devices):  # the reference: every device's updates alone, from the same start
        ended, metrics = jax.device_get(local(state, {name: array[row:row + 1] for name, array in batch.items()}))
        changes.append((ended.input_vectors - state.input_vectors, ended.output_vectors - state.output_vectors))
        losses_and_pairs.append((metrics["loss"] * metrics["pairs"], metrics["pairs"]))
    driver = Driver(driver_name, parallel.make_mesh(devices))
    step = driver.compile_step(w2v.make_per_device_step(table_sync="step", **SHARDED_KWARGS))
    placed, metrics = step(driver.put_state(state), driver.put_batch(batch))
    result = jax.device_get(driver.get_state(placed))
    np.testing.assert_allclose(result.input_vectors, state.input_vectors + sum(c[0] for c in changes),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.output_vectors, state.output_vectors + sum(c[1] for c in changes),
                               rtol=1e-5, atol=1e-6)
    loss_sum, pairs = np.sum(losses_and_pairs, axis=0)
    np.testing.assert_allclose(metrics["loss"], loss_sum / pairs, rtol=1e-5)
    assert int(result.step) == 2 and int(metrics["pairs"]) == int(pairs)


def test_step_sync_on_one_device_is_plain_sgd():
    batch, state = _two_update_batch(1), jax.device_get(_state(4))
    expected, _ = jax.device_get(jax.jit(lambda s, b: w2v.make_per_device_step(**SHARDED_KWARGS)(s, b, None))(
        state, batch))
    driver = Driver("shard_map", parallel.make_mesh(1))
    step = driver.compile_step(w2v.make_per_device_step(table_sync="step", **SHARDED_KWARGS))
    result = jax.device_get(driver.get_state(step(driver.put_state(state), driver.put_batch(batch))[0]))
    np.testing.assert_allclose(result.input_vectors, expected.input_vectors, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.output_vectors, expected.output_vectors, rtol=1e-6, atol=1e-6)


def test_cpu_devices_cannot_change_a_running_backend(caplog):
    jax.devices()  # the backend is running (8 fake CPU devices in the tests)
    assert parallel.request_cpu_devices(0) is False
    assert parallel.request_cpu_devices(jax.local_device_count("cpu")) is True  # already so: silent
    assert caplog.text == ""
    assert parallel.request_cpu_devices(3) is False
    assert "cpu_devices=3 not applied" in caplog.text


# ------------------------------------------------------------------------- the trainer
def _tiny_config(**overrides):
    config = word2vec_defaults()
    config.data.source = "topics"
    config.data.update(min_count=1, sample=0.0)
    config.data.topics.update(num_topics=4, words_per_topic=8, num_sentences=400, sentence_length=10)
    config.update(dim=12, window=3, epochs=2, positions_per_row=60, updates_per_step=4, num_devices=1,
                  log_every_steps=10, checkpoint_every_steps=1000, alpha=0.05)
    config.export.projector = False
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("w2v_full"))
    return workdir, runner.run("word2vec", _tiny_config(), workdir)


def test_training_recovers_planted_topics(uninterrupted):
    workdir, results = uninterrupted
    assert results["topic_neighbour_accuracy"] >= 0.9, results
    for name in ("config.json", "metrics.jsonl", "results.json", "embeddings/vectors.txt", "embeddings/vectors.bin"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert results["raw_words"] == 4000 and results["vocabulary_size"] == 32


def test_hogwild_training_recovers_planted_topics(tmp_path):
    results = runner.run("word2vec", _tiny_config(num_devices=2, table_sync="step"), str(tmp_path))
    assert results["devices"] == 2 and results["topic_neighbour_accuracy"] >= 0.9, results


def test_resume_gives_the_tables_of_an_uninterrupted_run(uninterrupted, tmp_path):
    full_dir, full = uninterrupted
    workdir = str(tmp_path / "resumed")
    stopped = runner.run("word2vec", _tiny_config(), workdir, stop_after_step=3)
    assert stopped == {"stopped_at_step": 3}
    resumed = runner.run("word2vec", _tiny_config(), workdir)
    assert resumed["steps"] == full["steps"]
    with open(os.path.join(full_dir, "embeddings", "vectors.txt")) as a, \
            open(os.path.join(workdir, "embeddings", "vectors.txt")) as b:
        assert a.read() == b.read()


def test_config_errors_name_the_key():
    bad = _tiny_config()
    bad.negative_sharing = "everything"
    with pytest.raises(config_utils.ConfigError, match="negative_sharing"):
        runner.run("word2vec", bad, "/nonexistent/never-written")
    unknown = _tiny_config()
    unknown.data.windw = 3
    with pytest.raises(config_utils.ConfigError, match="data.windw"):
        runner.run("word2vec", unknown, "/nonexistent/never-written")
    with pytest.raises(ValueError, match="multiple"):
        w2v.negatives_shape("row", window=2, positions_per_row=8, negatives_per_pair=5, shared_negatives=7)
    jit_hogwild = _tiny_config(parallel="jit", table_sync="step")
    with pytest.raises(config_utils.ConfigError, match="table_sync.*shard_map"):
        runner.run("word2vec", jit_hogwild, "/nonexistent/never-written")
    assert isinstance(_tiny_config(), ml_collections.ConfigDict)
