"""A pure batch norm in a hand-written training step, with its running statistics explicit.

``norms.batch_norm(x, scale, bias, running_mean, running_var, training=True)`` normalises with
the batch's statistics and returns the updated running statistics next to the output; nothing
is hidden in a module's mutable collection. The step carries them as a pytree of its own,
outside the gradient (``has_aux=True``); evaluation passes ``training=False`` and normalises
with them. (Inside ``shard_map``/``pmap`` pass ``axis_name`` for statistics over the global
batch.) The script trains a small classifier on inputs far from zero mean and unit scale, then
checks the running mean against the features' mean over the data and the test accuracy::

    python examples/batch_norm_explicit_stats.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rl_repr import norms

HIDDEN, CLASSES, BATCH, STEPS = 32, 3, 64, 300


def forward(params, stats, x, *, training):
    """``x: [N, 2] -> logits [N, 3]`` and the running statistics after this batch."""
    h = x @ params["w1"]  # no bias: batch norm's own bias replaces it
    h, (mean, var) = norms.batch_norm(h, params["scale"], params["bias"], stats["mean"], stats["var"],
                                      training=training, momentum=0.9)
    return jax.nn.relu(h) @ params["w2"] + params["b2"], {"mean": mean, "var": var}


optimizer = optax.adam(1e-2)


@jax.jit
def train_step(params, stats, opt_state, x, labels):
    def loss_fn(params):
        logits, new_stats = forward(params, stats, x, training=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new_stats

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss


def make_data(rng, n):
    """Three Gaussian blobs centred far from the origin, at a scale of hundreds."""
    labels = rng.integers(0, CLASSES, n)
    centres = np.array([[300.0, -200.0], [340.0, -160.0], [300.0, -150.0]])
    return (centres[labels] + 12.0 * rng.normal(size=(n, 2))).astype(np.float32), labels


def main():
    rng = np.random.default_rng(0)
    train_x, train_y = make_data(rng, 2048)
    test_x, test_y = make_data(rng, 1024)
    key1, key2 = jax.random.split(jax.random.key(0))
    params = {"w1": jax.random.normal(key1, (2, HIDDEN)) / np.sqrt(2), "scale": jnp.ones(HIDDEN),
              "bias": jnp.zeros(HIDDEN), "w2": jax.random.normal(key2, (HIDDEN, CLASSES)) / np.sqrt(HIDDEN),
              "b2": jnp.zeros(CLASSES)}
    stats = {"mean": jnp.zeros(HIDDEN), "var": jnp.ones(HIDDEN)}  # explicit, outside the params
    opt_state = optimizer.init(params)

    for step in range(STEPS):
        rows = rng.choice(len(train_x), BATCH, replace=False)
        params, stats, opt_state, loss = train_step(params, stats, opt_state, train_x[rows], train_y[rows])
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step:3d}  loss {float(loss):.4f}")

    # The running mean follows the batches' means of the features W1 x (momentum 0.9: about
    # the last 10 batches), so it ends close to their mean over the training set.
    feature_mean = np.asarray(train_x @ params["w1"]).mean(axis=0)
    relative = np.abs(np.asarray(stats["mean"]) - feature_mean).max() / np.abs(feature_mean).max()
    logits, unchanged = forward(params, stats, test_x, training=False)
    accuracy = float((np.asarray(logits).argmax(-1) == test_y).mean())
    print(f"running mean vs the features' mean over the data: largest difference {relative:.2%} of its scale")
    print(f"test accuracy with the running statistics: {accuracy:.1%}")
    assert relative < 0.05 and accuracy > 0.85
    assert all(np.array_equal(unchanged[k], stats[k]) for k in stats)  # eval mode leaves them as they are


if __name__ == "__main__":
    main()
