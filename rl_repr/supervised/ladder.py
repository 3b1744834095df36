"""The optimisation ladder of the slides (001): fitting a linear classifier by random search,
by random local search and by following the gradient, all on the same loss.

The classifier scores ``s = W x`` for ``x`` with a constant 1 appended (the bias trick; CIFAR-10's
3,072 pixels + 1 = 3,073), ``W`` of shape ``[k, D + 1]``, and the loss is the multiclass SVM
(hinge) loss of CS231n, averaged over the N training examples::

    L(W) = 1/N sum_i sum_{j != y_i} max(0, s_ij - s_iy_i + 1)

(9.0 for W = 0 with 10 classes: the "loss 9.4" the slides print for a random W). The three
rungs, as the slides write them (1,000 tries each; ``numpy.random.randn`` draws):

* random search: ``W = randn(k, D+1) * 0.0001`` each try; keep the W of lowest loss
  (15.5% test accuracy on CIFAR-10 in the slides);
* random local search: start at ``W = randn * 0.001``; each try ``W_try = W + randn * 0.0001``
  and move there when the loss drops (21.4%);
* gradient descent: ``W <- W - lr * dL/dW`` (here with ``jax.grad``).

Inputs are raw pixel values (0..255), the scale the slides' constants were written for.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def with_bias(inputs: np.ndarray) -> np.ndarray:
    """``[N, ...]`` -> ``[N, D + 1]`` float32: flattened, with a constant 1 appended."""
    flat = np.asarray(inputs, np.float32).reshape(len(inputs), -1)
    return np.concatenate([flat, np.ones((len(flat), 1), np.float32)], axis=1)


def svm_loss(weights: jax.Array, x: jax.Array, labels: jax.Array) -> jax.Array:
    """The mean multiclass SVM loss of ``W [k, D+1]`` on ``x [N, D+1]``, ``labels [N]`` (module docstring)."""
    scores = x @ weights.T
    correct = jnp.take_along_axis(scores, labels[:, None], axis=1)
    margins = jnp.maximum(0.0, scores - correct + 1.0)
    return jnp.mean(jnp.sum(margins, axis=1) - 1.0)  # the j = y_i term is max(0, 1) = 1


def accuracy(weights: np.ndarray, x: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``argmax_j s_j`` equal to the label."""
    return float(np.mean(np.argmax(np.asarray(x) @ np.asarray(weights).T, axis=1) == labels))


def random_search(x, labels, num_classes: int, *, tries: int = 1000, scale: float = 1e-4,
                  seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """The best of ``tries`` random ``W = randn * scale``; returns ``(W, best loss after each try)``.
    (The draws are made up front and the tries scored in one compiled loop; same result.)"""
    draws = np.random.default_rng(seed).standard_normal((tries, num_classes, x.shape[1])).astype(np.float32) * scale
    losses = np.asarray(jax.lax.map(lambda w: svm_loss(w, jnp.asarray(x), jnp.asarray(labels)), jnp.asarray(draws)))
    return draws[int(np.argmin(losses))], np.minimum.accumulate(losses).tolist()


def random_local_search(x, labels, num_classes: int, *, tries: int = 1000, start_scale: float = 1e-3,
                        step_size: float = 1e-4, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Random steps of ``randn * step_size`` from ``randn * start_scale``, each kept when the loss
    drops; returns ``(W, loss after each try)`` (draws made up front, tries in a ``lax.scan``)."""
    rng = np.random.default_rng(seed)
    start = rng.standard_normal((num_classes, x.shape[1])).astype(np.float32) * start_scale
    steps = rng.standard_normal((tries, num_classes, x.shape[1])).astype(np.float32) * step_size
    x, labels = jnp.asarray(x), jnp.asarray(labels)

    def attempt(carry, step):
        weights, best = carry
        candidate = weights + step
        value = svm_loss(candidate, x, labels)
        better = value < best
        weights, best = jnp.where(better, candidate, weights), jnp.where(better, value, best)
        return (weights, best), best

    (weights, _), history = jax.jit(lambda w, s: jax.lax.scan(attempt, (w, jnp.inf), s))(start, steps)
    return np.asarray(weights), np.asarray(history).tolist()


def gradient_training(x, labels, num_classes: int, optimizer: optax.GradientTransformation, *, steps: int = 1000,
                      batch_size: int = 0, start_scale: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``steps`` updates of ``optimizer`` on the SVM loss from ``randn * start_scale``: full-batch
    gradient descent with ``batch_size=0``, else minibatches drawn with replacement. Returns
    ``(W, training loss on all of x after each step)``."""
    rng = np.random.default_rng(seed)
    weights = jnp.asarray(rng.standard_normal((num_classes, x.shape[1])).astype(np.float32) * start_scale)
    x, labels = jnp.asarray(x), jnp.asarray(labels)

    @jax.jit
    def run(weights, key):
        def step(carry, step_key):
            weights, state = carry
            rows = (jnp.arange(x.shape[0]) if not batch_size else
                    jax.random.randint(step_key, (batch_size,), 0, x.shape[0]))
            grads = jax.grad(svm_loss)(weights, x[rows], labels[rows])
            updates, state = optimizer.update(grads, state, weights)
            weights = optax.apply_updates(weights, updates)
            return (weights, state), svm_loss(weights, x, labels)

        (weights, _), losses = jax.lax.scan(step, (weights, optimizer.init(weights)), jax.random.split(key, steps))
        return weights, losses

    weights, losses = run(weights, jax.random.PRNGKey(seed))
    return np.asarray(weights), [float(v) for v in losses]
