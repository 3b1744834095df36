"""FGSM and PGD: the step, the epsilon-ball, the pixel range, determinism; adversarial batches."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr import adversarial
from rl_repr.data.images.augment import example_keys

NUM_CLASSES, FEATURES = 4, 12


def _linear_model():
    weights = jax.random.normal(jax.random.key(0), (FEATURES, NUM_CLASSES))
    return weights, (lambda x: x.reshape(x.shape[0], -1) @ weights)


def _batch(n=16):
    x = jax.random.uniform(jax.random.key(1), (n, 3, 4))
    labels = jax.random.randint(jax.random.key(2), (n,), 0, NUM_CLASSES)
    return x, labels


def _softmax_gradient(weights, x, labels):
    """d CE / d x for a linear model, written out: W (softmax(x W) - onehot(y))."""
    logits = np.asarray(x).reshape(len(x), -1) @ np.asarray(weights)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), np.asarray(labels)] -= 1.0
    return (p @ np.asarray(weights).T).reshape(np.shape(x))


def test_fgsm_moves_by_epsilon_times_the_gradient_sign():
    weights, logits_fn = _linear_model()
    x, labels = _batch()
    x = 0.25 + 0.5 * x  # away from the pixel range's ends, so no clipping
    x_adv = jax.jit(lambda x, y: adversarial.fgsm(logits_fn, x, y, 0.1))(x, labels)
    np.testing.assert_allclose(x_adv - x, 0.1 * np.sign(_softmax_gradient(weights, x, labels)), atol=1e-6)
    # and the clip to [0, 1] near the ends
    clipped = jax.jit(lambda x, y: adversarial.fgsm(logits_fn, x, y, 0.5))(jnp.zeros_like(x), labels)
    assert float(clipped.min()) >= 0.0 and set(np.unique(np.asarray(clipped))) <= {0.0, 0.5}


def test_fgsm_raises_the_loss():
    _, logits_fn = _linear_model()
    x, labels = _batch()
    loss = lambda z: float(jnp.mean(jax.nn.logsumexp(logits_fn(z), -1) - logits_fn(z)[jnp.arange(16), labels]))  # noqa: E731
    assert loss(adversarial.fgsm(logits_fn, x, labels, 0.05)) > loss(x)


def test_pgd_stays_in_the_ball_and_the_range_and_beats_fgsm():
    _, logits_fn = _linear_model()
    x, labels = _batch()
    epsilon = 0.2
    x_adv = adversarial.pgd(logits_fn, x, labels, jax.random.key(3), epsilon=epsilon, step_size=0.05, steps=10)
    assert float(jnp.max(jnp.abs(x_adv - x))) <= epsilon + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0

    def accuracy(z):
        return float(jnp.mean(jnp.argmax(logits_fn(z), -1) == labels))
    assert accuracy(x_adv) <= accuracy(adversarial.fgsm(logits_fn, x, labels, epsilon))


def test_pgd_is_deterministic_given_a_key_and_one_step_without_start_is_fgsm():
    _, logits_fn = _linear_model()
    x, labels = _batch()

    @jax.jit
    def run(key):
        return adversarial.pgd(logits_fn, x, labels, key, epsilon=0.1, step_size=0.03, steps=3)
    np.testing.assert_array_equal(run(jax.random.key(5)), run(jax.random.key(5)))
    assert not np.array_equal(run(jax.random.key(5)), run(jax.random.key(6)))
    one_step = adversarial.pgd(logits_fn, x, labels, jax.random.key(0), epsilon=0.1, step_size=0.1, steps=1,
                               random_start=False)
    np.testing.assert_allclose(one_step, adversarial.fgsm(logits_fn, x, labels, 0.1), atol=1e-6)


def test_per_example_keys_make_the_random_start_independent_of_the_split():
    _, logits_fn = _linear_model()
    x, labels = _batch()
    key = jax.random.key(9)

    @jax.jit
    def attack(x, labels, first):
        return adversarial.pgd(logits_fn, x, labels, example_keys(key, len(x), first), epsilon=0.1, step_size=0.02,
                               steps=2)
    whole = attack(x, labels, 0)
    halves = [attack(x[i:i + 8], labels[i:i + 8], i) for i in (0, 8)]
    np.testing.assert_allclose(whole, jnp.concatenate(halves), atol=1e-6)


def test_adversarial_batch_weights_and_accuracy_under_attack():
    _, logits_fn = _linear_model()
    x, labels = _batch()
    attack = adversarial.Attack("fgsm", 0.1)
    inputs, ys, w = adversarial.adversarial_batch(attack, 0.5, logits_fn, x, labels, jax.random.key(0))
    assert inputs.shape == (32, 3, 4) and np.allclose(w, 0.5) and np.array_equal(ys[16:], labels)
    np.testing.assert_allclose(inputs[16:], adversarial.fgsm(logits_fn, x, labels, 0.1))
    inputs, _, w = adversarial.adversarial_batch(attack, 1.0, logits_fn, x, labels, jax.random.key(0))
    assert inputs.shape == x.shape and np.allclose(w, 1.0)
    clean = adversarial.accuracy_under_attack(logits_fn, np.asarray(x), np.asarray(labels), None,
                                              jax.random.key(0), batch_size=5)
    assert clean == pytest.approx(float(jnp.mean(jnp.argmax(logits_fn(x), -1) == labels)))
    attacked = adversarial.accuracy_under_attack(logits_fn, np.asarray(x), np.asarray(labels),
                                                 adversarial.Attack("pgd", 0.3, steps=5), jax.random.key(0))
    assert attacked < clean
    with pytest.raises(ValueError, match="attack"):
        adversarial.Attack("cw", 0.1)
