"""The linear probe: multinomial logistic regression on frozen features, fitted with L-BFGS.

Works on feature matrices (numpy or jax arrays), so any encoder plugs in: extract ``h`` once
(``rl_repr.evaluation.features.embed``) and hand the matrices to :func:`linear_probe`.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, *, l2_grid: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
                 validation_fraction: float = 0.2, num_steps: int = 300, seed: int = 0) -> dict:
    """Multinomial logistic regression on frozen, standardised features.

    Minimises ``mean_i CE(W x_i + b, y_i) + λ ||W||²`` with L-BFGS (full batch). ``λ`` is chosen
    from ``l2_grid`` on a held-out ``validation_fraction`` of the training set, then the
    probe is refit on the whole training set and scored on the test set. Features are
    standardised with the training mean and standard deviation.

    Returns ``{'accuracy': test top-1, 'l2': chosen λ, 'validation_accuracy': ...}``.
    """
    x_train, x_test = _standardize(np.asarray(train_features, np.float32), np.asarray(test_features, np.float32))
    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    num_classes = int(max(y_train.max(), y_test.max()) + 1)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))
    n_val = max(1, int(round(validation_fraction * len(x_train))))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    val_scores = []
    for l2 in l2_grid:
        w = _fit_logistic(x_train[fit_idx], y_train[fit_idx], num_classes, l2, num_steps)
        val_scores.append(_accuracy(w, x_train[val_idx], y_train[val_idx]))
    best = int(np.argmax(val_scores))
    w = _fit_logistic(x_train, y_train, num_classes, l2_grid[best], num_steps)
    return {"accuracy": _accuracy(w, x_test, y_test), "l2": float(l2_grid[best]),
            "validation_accuracy": float(val_scores[best])}


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    train, test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def _fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, num_steps: int):
    return _lbfgs_logistic(jnp.asarray(x), jnp.asarray(y), num_classes, float(l2), int(num_steps))


@jax.jit(static_argnums=(2, 4))
def _lbfgs_logistic(x, y, num_classes, l2, num_steps):
    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
    onehot = jax.nn.one_hot(y, num_classes)

    def objective(p):
        logits = x @ p["w"] + p["b"]
        return optax.softmax_cross_entropy(logits, onehot).mean() + l2 * jnp.sum(p["w"] ** 2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def body(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, solver.init(params)), None, length=num_steps)
    return params


def _accuracy(params, x: np.ndarray, y: np.ndarray) -> float:
    logits = jnp.asarray(x) @ params["w"] + params["b"]
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))
