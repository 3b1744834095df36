"""Tests for rl_repr.losses.word2vec against float64 numpy written from the formulas."""
import jax
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from rl_repr import losses


def _vectors(shape, seed=0, scale=0.7):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def np_log_sigmoid(x):
    x = np.float64(x)
    return -np.logaddexp(0.0, -x)


def np_sgns(v_c, u_o, u_neg):
    """-log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c), float64."""
    v_c, u_o, u_neg = np.float64(v_c), np.float64(u_o), np.float64(u_neg)
    return -np_log_sigmoid(u_o @ v_c) - np.sum(np_log_sigmoid(-(u_neg @ v_c)))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.float64(x)))


def test_sgns_loss_matches_formula_and_analytic_gradient():
    d, k = 8, 5
    v_c, u_o, u_neg = _vectors((d,), 1), _vectors((d,), 2), _vectors((k, d), 3)
    np.testing.assert_allclose(losses.sgns_loss(v_c, u_o, u_neg), np_sgns(v_c, u_o, u_neg),
                               rtol=1e-6)
    g_v, g_o, g_neg = jax.grad(losses.sgns_loss, argnums=(0, 1, 2))(v_c, u_o, u_neg)
    s_pos, s_neg = np_sigmoid(u_o @ v_c), np_sigmoid(u_neg @ v_c)
    np.testing.assert_allclose(g_v, -(1 - s_pos) * u_o + s_neg @ u_neg, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_o, -(1 - s_pos) * v_c, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_neg, s_neg[:, None] * v_c[None, :], rtol=1e-5, atol=1e-7)


def test_sgns_loss_is_finite_for_large_scores():
    v_c = np.full(4, 10.0, np.float32)  # scores of +-400: log(sigmoid) would underflow
    loss = losses.sgns_loss(v_c, -v_c, v_c[None, :].repeat(3, 0))
    np.testing.assert_allclose(loss, 4 * 400.0, rtol=1e-6)
    grad = jax.grad(losses.sgns_loss)(v_c, -v_c, v_c[None, :].repeat(3, 0))
    assert np.all(np.isfinite(grad))


def test_sgns_loss_batch_is_the_mean_of_per_example_losses():
    b, k, d = 6, 4, 5
    v, u, neg = _vectors((b, d), 4), _vectors((b, d), 5), _vectors((b, k, d), 6)
    expected = np.mean([np_sgns(v[i], u[i], neg[i]) for i in range(b)])
    np.testing.assert_allclose(losses.sgns_loss_batch(v, u, neg), expected, rtol=1e-6)
    np.testing.assert_allclose(losses.skipgram_negative_sampling_loss(v, u, neg), expected,
                               rtol=1e-6)
    with jax.enable_x64(True):
        check_grads(jax.jit(losses.sgns_loss_batch), tuple(np.float64(a) for a in (v, u, neg)),
                    order=1, modes=("rev",), eps=1e-5)


def test_shared_negatives_match_per_example_formula():
    b, k, d = 7, 3, 4
    v, u, neg = _vectors((b, d), 7), _vectors((b, d), 8), _vectors((k, d), 9)
    expected = np.mean([np_sgns(v[i], u[i], neg) for i in range(b)])
    np.testing.assert_allclose(losses.sgns_loss_shared_negatives(v, u, neg), expected, rtol=1e-6)
    np.testing.assert_allclose(losses.skipgram_negative_sampling_loss(v, u, neg), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.skipgram_negative_sampling_loss(v[0], u[0], neg),
                               np_sgns(v[0], u[0], neg), rtol=1e-6)
    with jax.enable_x64(True):
        check_grads(jax.jit(losses.sgns_loss_shared_negatives),
                    tuple(np.float64(a) for a in (v, u, neg)), order=1, modes=("rev",), eps=1e-5)


@pytest.mark.parametrize("with_bias", [False, True])
def test_full_softmax_matches_numpy_and_optax(with_bias):
    b, vocab, d = 5, 11, 6
    v, table = _vectors((b, d), 10), _vectors((vocab, d), 11)
    ids = np.random.default_rng(12).integers(0, vocab, size=b).astype(np.int32)
    bias = _vectors((vocab,), 13) if with_bias else None
    logits = np.float64(v) @ np.float64(table).T + (0.0 if bias is None else np.float64(bias))
    log_z = np.log(np.sum(np.exp(logits), axis=-1))
    expected = np.mean(log_z - logits[np.arange(b), ids])
    got = losses.skipgram_full_softmax_loss(v, table, ids, bias)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    via_optax = optax.softmax_cross_entropy_with_integer_labels(np.float32(logits), ids).mean()
    np.testing.assert_allclose(got, via_optax, rtol=1e-5)
    with jax.enable_x64(True):
        args = (np.float64(v), np.float64(table)) + ((np.float64(bias),) if with_bias else ())
        check_grads(jax.jit(lambda *a: losses.skipgram_full_softmax_loss(a[0], a[1], ids, *a[2:])),
                    args, order=1, modes=("rev",), eps=1e-5)


def test_jit_vmap_and_errors():
    groups, b, k, d = 3, 4, 2, 5
    v, u, neg = _vectors((groups, b, d), 14), _vectors((groups, b, d), 15), _vectors(
        (groups, b, k, d), 16)
    expected = [np.mean([np_sgns(v[g, i], u[g, i], neg[g, i]) for i in range(b)])
                for g in range(groups)]
    np.testing.assert_allclose(jax.jit(jax.vmap(losses.sgns_loss_batch))(v, u, neg), expected,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="negatives has shape"):
        losses.sgns_loss_batch(v[0], u[0], neg[0, :, :, :2])
    with pytest.raises(ValueError, match="center and context"):
        losses.sgns_loss(v[0, 0], u[0], neg[0, 0])
    with pytest.raises(ValueError, match="context_ids"):
        losses.skipgram_full_softmax_loss(v[0], _vectors((9, d)), np.zeros((b, 1), np.int32))
