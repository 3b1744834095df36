"""CBOW and the next-word language model: updates against numpy references from the papers'
formulas, 8 devices against one, next-word batches, rules, and short runs on planted topics."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rl_repr.core import config as config_utils
from rl_repr.core import mesh as parallel
from rl_repr.core import runner
from rl_repr.core.drivers import Driver
from rl_repr.core.recipes import load_config_file
from rl_repr.data.text import batches as tb
from rl_repr.data.text import vocab as tv
from rl_repr.word2vec import language_model as lm
from rl_repr.word2vec import step as w2v
from rl_repr.word2vec.cbow import make_cbow_update
from test_word2vec import LENGTH, VOCAB, WINDOW, _batch, _sigmoid, _state


# ============================================================================ CBOW
def _numpy_cbow(state, batch, lr):
    """One SGD update on the summed CBOW loss, target by target in float64 (word2vec.c's update:
    each context vector gets the whole gradient with respect to the mean)."""
    inputs, outputs = np.float64(state.input_vectors), np.float64(state.output_vectors)
    grad_in, grad_out, total, examples = np.zeros_like(inputs), np.zeros_like(outputs), 0.0, 0
    owner = tb.pair_targets(WINDOW, LENGTH)
    for r in range(batch["targets"].shape[0]):
        for t in range(LENGTH):
            real = [p for p in range(len(owner)) if owner[p] == t and batch["pair_mask"][r, 0, p]]
            if not real:
                continue
            contexts = batch["contexts"][r, 0, real]
            h = inputs[contexts].mean(axis=0)
            words = [batch["targets"][r, 0, t], *batch["negatives"][r, 0, t]]
            work = np.zeros_like(h)
            for j, word in enumerate(words):
                label = 1.0 if j == 0 else 0.0
                score = h @ outputs[word]
                total -= np.log(_sigmoid(score if j == 0 else -score))
                g = _sigmoid(score) - label
                work += g * outputs[word]
                grad_out[word] += g * h
            for c in contexts:
                grad_in[c] += work
            examples += 1
    return inputs - lr * grad_in, outputs - lr * grad_out, total, examples


def _cbow_step():
    return w2v.make_per_device_step(update=make_cbow_update(window=WINDOW))


def test_cbow_update_matches_numpy_reference():
    batch, state = _batch("window", rows=2), _state()
    new_state, metrics = jax.jit(lambda s, b: _cbow_step()(s, b, None))(state, batch)
    inputs, outputs, total, examples = _numpy_cbow(state, batch, 0.05)
    np.testing.assert_allclose(new_state.input_vectors, inputs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_state.output_vectors, outputs, rtol=1e-4, atol=1e-5)
    assert int(metrics["pairs"]) == examples > 0
    np.testing.assert_allclose(metrics["loss"], total / examples, rtol=1e-5)


def test_cbow_on_8_devices_equals_one_device():
    batch, state = _batch("window", rows=jax.device_count(), seed=3), jax.device_get(_state(3))
    expected, expected_metrics = jax.device_get(jax.jit(lambda s, b: _cbow_step()(s, b, None))(state, batch))
    driver = Driver("shard_map", parallel.make_mesh(jax.device_count()))  # each device its rows, all-gathered
    placed, metrics = driver.compile_step(_cbow_step())(driver.put_state(state), driver.put_batch(batch))
    result = jax.device_get(driver.get_state(placed))
    np.testing.assert_allclose(result.input_vectors, expected.input_vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.output_vectors, expected.output_vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-5)


# ============================================================================ next-word language model
def _stream():
    corpus = tv.EncodedCorpus(ids=np.arange(100, 130, dtype=np.int32) % VOCAB,
                              sentence_ids=np.repeat([0, 1], [12, 18]).astype(np.int32), raw_word_count=30)
    return tb.epoch_stream(corpus, np.ones(VOCAB), seed=0, epoch=0)


def test_next_word_batch_holds_the_preceding_words_of_the_same_sentence():
    stream = _stream()  # positions 0-11: sentence 0, 12-29: sentence 1
    noise = tb.AliasTable.build(np.full(VOCAB, 1 / VOCAB))
    batch = lm.next_word_batch(stream, 8, rows=2, positions_per_row=14, context=3, noise=noise, negatives=2,
                               rng=np.random.default_rng(0))
    assert batch["history"].shape == batch["history_mask"].shape == (2, 14, 3)
    assert batch["negatives"].shape == (2, 14, 2)
    positions = 8 + np.arange(28).reshape(2, 14)
    for (r, t), position in np.ndenumerate(positions):
        inside = position < 30
        assert batch["target_mask"][r, t] == inside
        if not inside:
            assert not batch["history_mask"][r, t].any()
            continue
        assert batch["targets"][r, t] == stream.ids[position]
        sentence_start = 0 if position < 12 else 12
        for j, back in enumerate((3, 2, 1)):  # oldest first
            expected = position - back >= sentence_start
            assert batch["history_mask"][r, t, j] == expected
            if expected:
                assert batch["history"][r, t, j] == stream.ids[position - back]


def _lm_batch(rows=2, tokens=6, context=2, negatives=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"targets": jnp.asarray(rng.integers(0, VOCAB, (rows, tokens)), jnp.int32),
            "target_mask": jnp.asarray(rng.random((rows, tokens)) < 0.9),
            "history": jnp.asarray(rng.integers(0, VOCAB, (rows, tokens, context)), jnp.int32),
            "history_mask": jnp.asarray(rng.random((rows, tokens, context)) < 0.8),
            "negatives": jnp.asarray(rng.integers(0, VOCAB, (rows, tokens, negatives)), jnp.int32)}


def _lm_state(context=2, dim=4, hidden=5, seed=0):
    state = lm.init_language_model(jax.random.PRNGKey(seed), VOCAB, dim, context, hidden)
    rng = np.random.default_rng(seed)  # non-zero outputs and biases, so every term is exercised
    return state.replace(output_vectors=jnp.asarray(rng.normal(0, 0.5, (VOCAB, hidden)), jnp.float32),
                         params={**state.params, "output_bias": jnp.asarray(rng.normal(0, 0.3, VOCAB), jnp.float32)})


@pytest.mark.parametrize("loss", ["sgns", "full_softmax"])
def test_language_model_loss_matches_numpy(loss):
    state, batch = _lm_state(), _lm_batch()
    total, count = lm.language_model_loss(state.trainable(), batch, loss)
    p = {k: np.float64(v) for k, v in state.trainable().items()}
    b = {k: np.asarray(v) for k, v in batch.items()}
    expected = 0.0
    for (r, t), keep in np.ndenumerate(b["target_mask"]):
        if not keep:
            continue
        x = np.concatenate([p["input_vectors"][w] * m for w, m in zip(b["history"][r, t], b["history_mask"][r, t])])
        a = np.tanh(x @ p["hidden_kernel"] + p["hidden_bias"])
        scores = p["output_vectors"] @ a + p["output_bias"]
        target = b["targets"][r, t]
        if loss == "full_softmax":
            expected -= scores[target] - np.log(np.exp(scores).sum())
        else:
            expected -= np.log(_sigmoid(scores[target])) + sum(np.log(_sigmoid(-scores[n])) for n in b["negatives"][r, t])
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    assert int(count) == b["target_mask"].sum()


def test_language_model_step_is_adam_on_the_global_mean_on_1_or_8_devices():
    devices = jax.device_count()
    state, batch = _lm_state(), _lm_batch(rows=devices)
    batch = {name: array[:, None] for name, array in batch.items()}  # one update per step
    batch["learning_rate"] = np.full((devices, 1), 0.0125, np.float32)   # half of alpha
    step = lm.make_language_model_step(loss="sgns", learning_rate=0.01, alpha=0.025)
    single, metrics = jax.device_get(jax.jit(lambda s, b: step(s, b, None))(state, batch))
    # the reference: optax.adam at 0.01 * (0.0125 / 0.025) on the gradient of the mean loss
    one = {name: array[:, 0] for name, array in batch.items() if name != "learning_rate"}
    grads = jax.grad(lambda p: jnp.divide(*lm.language_model_loss(p, one, "sgns")))(state.trainable())
    adam = optax.adam(0.005)
    updates, _ = adam.update(grads, adam.init(state.trainable()))
    expected = optax.apply_updates(state.trainable(), updates)
    for name, value in single.trainable().items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    driver = Driver("shard_map", parallel.make_mesh(devices))
    placed, sharded_metrics = driver.compile_step(step)(driver.put_state(jax.device_get(state)), driver.put_batch(batch))
    sharded = jax.device_get(driver.get_state(placed))
    for name, value in sharded.trainable().items():
        np.testing.assert_allclose(value, single.trainable()[name], rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(sharded_metrics["loss"], metrics["loss"], rtol=1e-5)


# ============================================================================ configs and runs
def _tiny(context, **overrides):
    config = load_config_file("configs/word2vec_tiny.py")
    config.context = context
    config.epochs = 1
    config.language_model.learning_rate = 1e-2
    config.export.update(word2vec_text=False, word2vec_binary=False, projector=False)
    config.update_from_flattened_dict(overrides)
    return config


@pytest.mark.parametrize("context,overrides,message", [
    ("cbow", {"loss": "full_softmax"}, "'loss'.*cbow"),
    ("cbow", {"negative_sharing": "pair"}, "'negative_sharing'"),
    ("language_model", {"table_sync": "step"}, "'table_sync'.*language_model"),
    ("next_word", {}, "'context'"),
])
def test_config_errors_name_the_key(context, overrides, message):
    with pytest.raises(config_utils.ConfigError, match=message):
        runner.validate(_tiny(context, **overrides))


@pytest.mark.parametrize("context", ["cbow", "language_model"])
def test_short_run_recovers_planted_topics(context, tmp_path):
    results = runner.run("word2vec", _tiny(context), str(tmp_path))
    assert results["topic_neighbour_accuracy"] > 0.6  # chance: 1/8 (8 planted topics)
