"""Evaluating frozen representations: kNN monitor, linear probe, and label-fraction subsets.

These work on feature matrices (numpy or jax arrays), so any encoder plugs in: extract
``h`` once with ``embed`` and hand the matrices to ``knn_accuracy`` / ``linear_probe``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


# ----------------------------------------------------------------------------- features
def embed(apply_fn: Callable[[jax.Array], jax.Array], images: np.ndarray, *,
          batch_size: int = 512) -> np.ndarray:
    """Runs ``apply_fn`` (a jitted, eval-mode encoder) over ``images`` in batches.

    The last batch is padded to ``batch_size`` so the function compiles once.
    Returns a float32 numpy array ``[N, ...]``.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out = np.asarray(apply_fn(chunk), dtype=np.float32)
        outputs.append(out[:batch_size - pad])
    return np.concatenate(outputs)


# ----------------------------------------------------------------------------- kNN
def knn_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, *, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, batch_size: int = 1024) -> float:
    """Weighted k-nearest-neighbour accuracy with cosine similarity (Wu et al. 2018).

    Each test point takes its ``k`` most cosine-similar training points; neighbour ``j``
    votes for its label with weight ``exp(s_j / temperature)``; the class with the largest
    total weight is the prediction. This is the kNN monitor of InstDisc/MoCo/solo-learn.

    Shapes: train_features [N, d], train_labels [N], test_features [M, d], test_labels [M].
    Returns the top-1 accuracy in [0, 1].
    """
    if k < 1 or k > len(train_features):
        raise ValueError(f"knn k={k} must be between 1 and the number of training points "
                         f"({len(train_features)}).")
    num_classes = int(num_classes or max(train_labels.max(), test_labels.max()) + 1)
    train = _l2_normalize(jnp.asarray(train_features, jnp.float32))
    train_onehot = jax.nn.one_hot(jnp.asarray(train_labels), num_classes)

    @jax.jit
    def predict(queries):
        sims = _l2_normalize(queries) @ train.T                 # [m, N]
        top_sims, top_idx = jax.lax.top_k(sims, k)              # [m, k]
        weights = jnp.exp(top_sims / temperature)[..., None]    # [m, k, 1]
        votes = jnp.sum(weights * train_onehot[top_idx], axis=1)
        return jnp.argmax(votes, axis=-1)

    preds = np.concatenate([np.asarray(predict(jnp.asarray(test_features[i:i + batch_size], jnp.float32)))
                            for i in range(0, len(test_features), batch_size)])
    return float(np.mean(preds == np.asarray(test_labels)))


def _l2_normalize(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


# ----------------------------------------------------------------------------- linear probe
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


# ----------------------------------------------------------------------------- label subsets
def label_fraction_subset(labels: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced ``fraction`` of the examples (at least one per class),
    as in SimCLR's 1% / 10% semi-supervised protocol (Table 7)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction {fraction} must be in (0, 1], e.g. 0.01 or 0.1.")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))
