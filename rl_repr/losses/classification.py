"""Classification losses: label-smoothed cross-entropy and knowledge distillation.

Label smoothing (Szegedy et al. 2016, "Rethinking the Inception
Architecture", arXiv:1512.00567): labels are assumed right with probability
``1 - eps``, so the target puts ``1 - eps`` on the labelled class and spreads
``eps`` evenly over the other ``k - 1`` classes.

Distillation (Hinton, Vinyals & Dean 2015, "Distilling the
Knowledge in a Neural Network", arXiv:1503.02531): the student matches the
teacher's temperature-softened distribution, mixed with the ordinary loss on
the hard labels.

Both accept logits ``[..., k]`` with integer labels ``[...]`` and average over
every leading axis; they are pure, so they jit and vmap as they are.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

__all__ = ["smooth_labels", "label_smoothing_cross_entropy", "distillation_loss"]

Array = jax.Array


def _check_logits_labels(fn: str, logits: Array, labels: Array) -> None:
    if jnp.ndim(logits) < 1 or jnp.shape(labels) != jnp.shape(logits)[:-1]:
        raise ValueError(
            f"{fn}: logits has shape {jnp.shape(logits)} and labels has shape "
            f"{jnp.shape(labels)}; pass logits [..., k] and integer labels of shape "
            f"{jnp.shape(logits)[:-1]} (class ids, not one-hot)."
        )
    if not jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
        raise ValueError(
            f"{fn}: labels has dtype {jnp.asarray(labels).dtype}; pass integer class ids."
        )


def smooth_labels(
    labels: Array, num_classes: int, epsilon: float = 0.1, dtype: DTypeLike = jnp.float32
) -> Array:
    """Smoothed targets: ``1 - eps`` on the label, ``eps / (k - 1)`` elsewhere.

    ``q[..., j] = (1 - eps) if j == labels[...] else eps / (k - 1)``; each row
    sums to 1, and ``eps = (k - 1) / k`` gives the uniform distribution.

    Relation to optax: ``optax.smooth_labels(one_hot, alpha)`` returns
    ``(1 - alpha) * one_hot + alpha / k``, i.e. ``1 - alpha + alpha / k`` on the
    label and ``alpha / k`` elsewhere (the spread includes the true class). The
    two agree when ``alpha = eps * k / (k - 1)``.

    Args:
      labels: integer class ids, any shape ``[...]``.
      num_classes: ``k >= 2``.
      epsilon: ``eps`` in ``[0, 1]``, the probability mass moved off the label.
      dtype: dtype of the result.

    Returns:
      ``[..., k]`` targets.

    Example::

      smooth_labels(jnp.array([2]), 4, 0.3)   # [[0.1, 0.1, 0.7, 0.1]]
    """
    if num_classes < 2:
        raise ValueError(
            f"smooth_labels: num_classes={num_classes}; label smoothing needs at least 2 classes."
        )
    if isinstance(epsilon, numbers.Real) and not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"smooth_labels: epsilon={epsilon}; pass a value in [0, 1].")
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    off_value = epsilon / (num_classes - 1)
    return one_hot * (1.0 - epsilon) + (1.0 - one_hot) * off_value


def label_smoothing_cross_entropy(
    logits: Array, labels: Array, epsilon: float = 0.1
) -> Array:
    """Cross-entropy against smoothed targets (see :func:`smooth_labels`).

    ``L = mean_i [ -sum_j q_ij log softmax(z_i)_j ]`` with
    ``q_ij = 1 - eps`` for ``j = y_i`` and ``eps / (k - 1)`` otherwise.

    This differs from ``optax.softmax_cross_entropy(z, optax.smooth_labels(one_hot,
    eps))`` (targets ``1 - eps + eps/k`` and ``eps/k``) at the same ``eps``; pass
    ``eps * k / (k - 1)`` to optax to get this loss. ``eps = 0`` is the plain
    cross-entropy.

    Args:
      logits: ``[..., k]`` unnormalised scores ``z``.
      labels: ``[...]`` integer class ids ``y``.
      epsilon: smoothing ``eps`` in ``[0, 1]`` (0.1 as in Inception-v3).

    Returns:
      Scalar: the mean over every leading axis.

    Example::

      loss = label_smoothing_cross_entropy(model(x), y, epsilon=0.1)
    """
    _check_logits_labels("label_smoothing_cross_entropy", logits, labels)
    logits = jnp.asarray(logits)
    # Softmax statistics in float32 even for bfloat16 logits.
    log_probs = jax.nn.log_softmax(
        logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1
    )
    targets = smooth_labels(labels, log_probs.shape[-1], epsilon, dtype=log_probs.dtype)
    return -jnp.mean(jnp.sum(targets * log_probs, axis=-1))


def distillation_loss(
    student_logits: Array,
    teacher_logits: Array,
    labels: Array,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> Array:
    """Knowledge-distillation loss (Hinton, Vinyals & Dean 2015).

    With ``p^T = softmax(z / T)``::

      L = mean_i [ alpha * T^2 * KL(p^T(t_i) || p^T(s_i)) + (1 - alpha) * CE(s_i, y_i) ]

    ``alpha`` weights the soft (teacher) term and ``1 - alpha`` the hard-label
    cross-entropy at ``T = 1``: the convention of Hinton et al.'s "weighted
    average of two objectives" with most weight on the soft one, and of the
    common PyTorch recipe ``KLDiv * alpha * T * T + CE * (1 - alpha)``. The
    teacher logits pass through ``stop_gradient``.

    Why ``T^2``: the gradient of the soft term with respect to a student logit
    is ``alpha * T * (p^T(s) - p^T(t))``, and for large ``T`` (zero-mean logits)
    ``p^T(z)_j ~ (1 + z_j / T) / k``, so it tends to ``alpha * (s - t) / k``,
    independent of ``T``. Without ``T^2`` the soft gradients would shrink as
    ``1 / T^2`` and changing ``T`` would silently reweight the two terms.

    KL rather than the paper's soft-target cross-entropy: they differ by the
    teacher's entropy, a constant for the student, so the gradients are equal
    and the KL is 0 when the student matches the teacher.

    Args:
      student_logits: ``[..., k]``.
      teacher_logits: ``[..., k]`` (no gradient flows into them).
      labels: ``[...]`` integer class ids.
      temperature: ``T > 0`` for the soft term.
      alpha: weight in ``[0, 1]`` of the soft term.

    Returns:
      Scalar: the mean over every leading axis.

    Example::

      loss = distillation_loss(student(x), teacher(x), y, temperature=4.0, alpha=0.9)
    """
    _check_logits_labels("distillation_loss", student_logits, labels)
    if jnp.shape(teacher_logits) != jnp.shape(student_logits):
        raise ValueError(
            f"distillation_loss: teacher_logits has shape {jnp.shape(teacher_logits)} but "
            f"student_logits has shape {jnp.shape(student_logits)}; pass logits over the "
            "same classes for the same examples."
        )
    if isinstance(temperature, numbers.Real) and temperature <= 0:
        raise ValueError(f"distillation_loss: temperature={temperature}; pass a value > 0.")
    compute = jnp.promote_types(jnp.asarray(student_logits).dtype, jnp.float32)
    student = jnp.asarray(student_logits).astype(compute)
    teacher = jax.lax.stop_gradient(jnp.asarray(teacher_logits).astype(compute))

    student_log_soft = jax.nn.log_softmax(student / temperature, axis=-1)
    teacher_log_soft = jax.nn.log_softmax(teacher / temperature, axis=-1)
    teacher_soft = jnp.exp(teacher_log_soft)
    # 0 * log 0 = 0: a class the teacher rules out (logit -inf) adds nothing.
    kl = jnp.sum(
        jnp.where(teacher_soft > 0, teacher_soft * (teacher_log_soft - student_log_soft), 0.0),
        axis=-1,
    )
    log_probs = jax.nn.log_softmax(student, axis=-1)
    hard = -jnp.take_along_axis(log_probs, jnp.asarray(labels)[..., None].astype(jnp.int32),
                                axis=-1)[..., 0]
    return jnp.mean(alpha * temperature**2 * kl + (1.0 - alpha) * hard)
