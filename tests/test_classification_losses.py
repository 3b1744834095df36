"""Tests for rl_repr.losses.classification against float64 numpy and optax."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from rl_repr import losses


def _logits(shape, seed=0, scale=2.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _labels(shape, k, seed=1):
    return np.random.default_rng(seed).integers(0, k, size=shape).astype(np.int32)


def np_log_softmax(z):
    z = np.float64(z)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_slide_targets(labels, k, eps):
    targets = np.full(labels.shape + (k,), eps / (k - 1))
    np.put_along_axis(targets, labels[..., None], 1.0 - eps, axis=-1)
    return targets


# --------------------------------------------------------------------------
# label smoothing
# --------------------------------------------------------------------------
def test_smooth_labels_are_the_slide_targets_and_map_to_optax():
    k, eps = 5, 0.2
    labels = _labels((7,), k)
    targets = np.asarray(losses.smooth_labels(labels, k, eps))
    np.testing.assert_allclose(targets, np_slide_targets(labels, k, eps), rtol=1e-6)
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    one_hot = jax.nn.one_hot(labels, k)
    # optax spreads alpha over all k classes: same targets iff alpha = eps * k / (k - 1).
    np.testing.assert_allclose(optax.smooth_labels(one_hot, eps * k / (k - 1)), targets,
                               rtol=1e-6)
    assert not np.allclose(optax.smooth_labels(one_hot, eps), targets)


def test_label_smoothing_cross_entropy_matches_numpy_and_optax():
    k, eps = 6, 0.1
    logits, labels = _logits((3, 4, k)), _labels((3, 4), k)
    expected = -np.mean(np.sum(np_slide_targets(labels, k, eps) * np_log_softmax(logits), -1))
    got = losses.label_smoothing_cross_entropy(logits, labels, eps)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    via_optax = optax.softmax_cross_entropy(
        logits, optax.smooth_labels(jax.nn.one_hot(labels, k), eps * k / (k - 1))).mean()
    np.testing.assert_allclose(got, via_optax, rtol=1e-5)
    plain = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    np.testing.assert_allclose(losses.label_smoothing_cross_entropy(logits, labels, 0.0), plain,
                               rtol=1e-5)


def test_label_smoothing_gradient_is_softmax_minus_targets():
    k, eps = 4, 0.3
    logits, labels = _logits((8, k), seed=2), _labels((8,), k, seed=3)
    grad = jax.grad(losses.label_smoothing_cross_entropy)(logits, labels, eps)
    expected = (np.exp(np_log_softmax(logits)) - np_slide_targets(labels, k, eps)) / 8
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda z: losses.label_smoothing_cross_entropy(z, labels, eps)),
                    (np.float64(logits),), order=1, modes=("rev",), eps=1e-5)


# --------------------------------------------------------------------------
# distillation
# --------------------------------------------------------------------------
def np_distillation(student, teacher, labels, temperature, alpha):
    log_ps, log_pt = np_log_softmax(student / temperature), np_log_softmax(teacher / temperature)
    kl = np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)
    ce = -np.take_along_axis(np_log_softmax(student), labels[..., None], axis=-1)[..., 0]
    return np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce)


@pytest.mark.parametrize("temperature,alpha", [(4.0, 0.9), (1.0, 0.5), (2.5, 0.0), (8.0, 1.0)])
def test_distillation_matches_numpy(temperature, alpha):
    k = 7
    student, teacher, labels = _logits((10, k), 4), _logits((10, k), 5), _labels((10,), k, 6)
    got = losses.distillation_loss(student, teacher, labels, temperature=temperature,
                                   alpha=alpha)
    np.testing.assert_allclose(
        got, np_distillation(student, teacher, labels, temperature, alpha), rtol=1e-5)


def test_distillation_limits():
    k = 5
    student, labels = _logits((6, k), 7), _labels((6,), k, 8)
    # alpha = 0: the hard-label cross-entropy alone (optax as the reference).
    plain = optax.softmax_cross_entropy_with_integer_labels(student, labels).mean()
    np.testing.assert_allclose(losses.distillation_loss(student, _logits((6, k), 9), labels,
                                                        alpha=0.0), plain, rtol=1e-5)
    # alpha = 1 and a student equal to its teacher: KL is 0.
    np.testing.assert_allclose(losses.distillation_loss(student, student, labels, alpha=1.0),
                               0.0, atol=1e-6)


def test_distillation_gradients():
    k, temperature, alpha, batch = 6, 3.0, 0.7, 5
    student, teacher, labels = _logits((batch, k), 10), _logits((batch, k), 11), _labels(
        (batch,), k, 12)
    grad_s, grad_t = jax.grad(losses.distillation_loss, argnums=(0, 1))(
        student, teacher, labels, temperature=temperature, alpha=alpha)
    # Soft term: alpha * T * (p_s^T - p_t^T); hard term: (1 - alpha) * (p_s - onehot).
    soft = alpha * temperature * (np.exp(np_log_softmax(student / temperature))
                                  - np.exp(np_log_softmax(teacher / temperature)))
    hard = (1 - alpha) * (np.exp(np_log_softmax(student)) - np.eye(k)[labels])
    np.testing.assert_allclose(grad_s, (soft + hard) / batch, rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(grad_t) == 0.0)  # the teacher is a constant
    with jax.enable_x64(True):
        soft_and_hard = jax.jit(lambda s: losses.distillation_loss(
            s, np.float64(teacher), labels, temperature=temperature, alpha=alpha))
        check_grads(soft_and_hard, (np.float64(student),), order=1, modes=("rev",), eps=1e-5)


def test_t_squared_keeps_soft_gradient_scale_constant():
    """Hinton et al.: for large T the soft gradient tends to alpha (s - t) / k, any T."""
    k, batch = 10, 4
    student, teacher = _logits((batch, k), 13, 1.0), _logits((batch, k), 14, 1.0)
    student -= student.mean(-1, keepdims=True)
    teacher -= teacher.mean(-1, keepdims=True)
    labels = _labels((batch,), k, 15)
    limit = (student - teacher) / (k * batch)
    for temperature in (20.0, 40.0, 80.0):
        grad = jax.grad(losses.distillation_loss)(student, teacher, labels,
                                                  temperature=temperature, alpha=1.0)
        np.testing.assert_allclose(grad, limit, atol=np.abs(limit).max() * 2 / temperature)


def test_jit_vmap_and_errors():
    k = 4
    logits, teacher, labels = _logits((3, 5, k), 16), _logits((3, 5, k), 17), _labels((3, 5), k)
    for fn in (lambda z, t, y: losses.label_smoothing_cross_entropy(z, y, 0.2),
               lambda z, t, y: losses.distillation_loss(z, t, y, temperature=2.0)):
        expected = np.array([fn(*args) for args in zip(logits, teacher, labels)])
        np.testing.assert_allclose(jax.jit(jax.vmap(fn))(logits, teacher, labels), expected,
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="integer"):
        losses.label_smoothing_cross_entropy(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match="labels has shape"):
        losses.label_smoothing_cross_entropy(logits, jax.nn.one_hot(labels, k).astype(jnp.int32))
    with pytest.raises(ValueError, match="teacher_logits"):
        losses.distillation_loss(logits, teacher[..., :2], labels)
    with pytest.raises(ValueError, match="temperature"):
        losses.distillation_loss(logits, teacher, labels, temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        losses.smooth_labels(labels, k, 1.5)
