"""Single-device tests of rl_repr.losses' contrastive losses.

References are independent of our code: numpy written from the SimCLR paper's
formula, a numpy re-implementation of the official google-research/simclr
``add_contrastive_loss`` semantics, ``optax.ntxent``, numpy MoCo InfoNCE and
a ``collections.deque`` FIFO. Gradients are checked against central finite
differences of the numpy references (float64).
"""
import collections
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rl_repr.losses import info_nce, nt_xent, update_queue, update_queue_at_pointer


# ----------------------------------------------------------------- references
def official_simclr_loss(hidden1, hidden2, temperature):
    """google-research/simclr (tf2) add_contrastive_loss, re-implemented in numpy.

    hidden_norm=True (tf.math.l2_normalize), labels = one_hot(arange(B), 2B),
    logits_aa/bb self-masked with LARGE_NUM=1e9, loss_a + loss_b each the mean
    softmax cross-entropy against [logits_ab, logits_aa] / [logits_ba, logits_bb].
    """
    large_num = 1e9

    def l2_normalize(x):
        return x / np.sqrt(np.maximum(np.sum(x * x, -1, keepdims=True), 1e-12))

    def softmax_cross_entropy(onehot, logits):
        shifted = logits - logits.max(1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        return np.mean(-np.sum(onehot * log_softmax, axis=1))

    h1, h2 = l2_normalize(hidden1), l2_normalize(hidden2)
    batch = h1.shape[0]
    labels = np.eye(batch * 2)[np.arange(batch)]
    masks = np.eye(batch)
    logits_aa = h1 @ h1.T / temperature - masks * large_num
    logits_bb = h2 @ h2.T / temperature - masks * large_num
    logits_ab = h1 @ h2.T / temperature
    logits_ba = h2 @ h1.T / temperature
    loss_a = softmax_cross_entropy(labels, np.concatenate([logits_ab, logits_aa], 1))
    loss_b = softmax_cross_entropy(labels, np.concatenate([logits_ba, logits_bb], 1))
    return loss_a + loss_b


def paper_simclr_loss(z1, z2, temperature):
    """SimCLR Algorithm 1 literally: views 2k-1, 2k interleaved, l(i, j) per pair."""
    n = z1.shape[0]
    z = np.empty((2 * n, z1.shape[1]))
    z[0::2], z[1::2] = z1, z2
    norms = np.linalg.norm(z, axis=1)
    s = (z @ z.T) / np.outer(norms, norms)

    def ell(i, j):
        denominator = sum(np.exp(s[i, k] / temperature) for k in range(2 * n) if k != i)
        return -np.log(np.exp(s[i, j] / temperature) / denominator)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def moco_info_nce(query, key, queue, temperature, normalize):
    """MoCo Algorithm 1 with explicit per-query loops."""
    if normalize:
        query, key, queue = (x / np.linalg.norm(x, axis=1, keepdims=True)
                             for x in (query, key, queue))
    losses = []
    for q, k in zip(query, key):
        logits = np.concatenate([[q @ k], queue @ q]) / temperature
        losses.append(-logits[0] + np.log(np.sum(np.exp(logits))))
    return np.mean(losses)


def finite_difference_gradient(f, arrays, step=1e-6):
    """Central differences of scalar f(*arrays) w.r.t. every entry, float64."""
    arrays = [np.array(a, np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            saved = a[idx]
            a[idx] = saved + step
            up = f(*arrays)
            a[idx] = saved - step
            down = f(*arrays)
            a[idx] = saved
            g[idx] = (up - down) / (2 * step)
        grads.append(g)
    return grads


def random_views(n, d, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)).astype(dtype), rng.normal(size=(n, d)).astype(dtype))


# ------------------------------------------------------------------- nt_xent
@pytest.mark.parametrize("n,d,temperature", [(1, 3, 0.5), (4, 8, 0.5), (13, 16, 0.1),
                                             (32, 5, 0.07)])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_nt_xent_equals_paper_formula_and_half_the_official_loss(n, d, temperature, chunk_size):
    z1, z2 = random_views(n, d, seed=n)
    ours = jax.jit(nt_xent, static_argnums=2, static_argnames="chunk_size")(
        z1, z2, temperature, chunk_size=chunk_size)
    chex.assert_shape(ours, ())
    assert ours.dtype == jnp.float32
    paper = paper_simclr_loss(z1.astype(np.float64), z2.astype(np.float64), temperature)
    official = official_simclr_loss(z1.astype(np.float64), z2.astype(np.float64), temperature)
    np.testing.assert_allclose(ours, paper, rtol=1e-5, atol=1e-6)
    # The official code returns loss_a + loss_b = 2 L.
    np.testing.assert_allclose(2 * ours, official, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,d,temperature", [(4, 8, 0.5), (33, 7, 0.07)])
def test_nt_xent_equals_optax_ntxent_on_stacked_views(n, d, temperature):
    """Measured relation: optax.ntxent on [z1; z2] with pair labels == L (not 2L)."""
    z1, z2 = random_views(n, d, seed=1)
    labels = jnp.concatenate([jnp.arange(n), jnp.arange(n)])

    def peer(a, b):
        return optax.ntxent(jnp.concatenate([a, b]), labels, temperature)

    peer_value, peer_grads = jax.jit(jax.value_and_grad(peer, (0, 1)))(z1, z2)
    value, grads = jax.jit(jax.value_and_grad(nt_xent, (0, 1)), static_argnums=2)(
        z1, z2, temperature)
    np.testing.assert_allclose(value, peer_value, rtol=2e-6)
    chex.assert_trees_all_close(grads, peer_grads, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_nt_xent_gradient_matches_finite_differences(chunk_size):
    z1, z2 = random_views(5, 4, seed=2)
    expected = finite_difference_gradient(lambda a, b: paper_simclr_loss(a, b, 0.3), (z1, z2))
    ours = jax.jit(jax.grad(lambda a, b: nt_xent(a, b, 0.3, chunk_size=chunk_size), (0, 1)))(
        z1, z2)
    chex.assert_trees_all_close(ours, tuple(expected), atol=2e-5)


def test_nt_xent_chunked_passes_check_grads_in_float64():
    with jax.enable_x64(True):
        z1, z2 = random_views(6, 3, seed=3, dtype=np.float64)
        loss = jax.jit(lambda a, b: nt_xent(a, b, 0.2, chunk_size=4))
        jax.test_util.check_grads(loss, (z1, z2), order=1, modes=["rev"])


@pytest.mark.parametrize("n,chunk_size", [(16, 8), (16, 32), (13, 5), (13, 7), (13, 26),
                                          (13, 1000), (2, 1)])
def test_nt_xent_chunked_equals_dense_value_and_gradient(n, chunk_size):
    """Chunk sizes that divide 2N, do not divide it, equal it and exceed it."""
    z1, z2 = random_views(n, 6, seed=n + chunk_size)
    dense = jax.jit(jax.value_and_grad(lambda a, b: nt_xent(a, b, 0.1), (0, 1)))(z1, z2)
    chunked = jax.jit(jax.value_and_grad(
        lambda a, b: nt_xent(a, b, 0.1, chunk_size=chunk_size), (0, 1)))(z1, z2)
    chex.assert_trees_all_close(chunked, dense, atol=1e-6, rtol=1e-5)


def test_nt_xent_chunked_never_builds_the_full_similarity_matrix():
    n, chunk = 24, 8
    z1, z2 = random_views(n, 4)
    full = re.compile(rf"\[{2 * n},{2 * n}\]")

    def program(chunk_size):
        return str(jax.make_jaxpr(jax.value_and_grad(
            lambda a, b: nt_xent(a, b, 0.5, chunk_size=chunk_size), (0, 1)))(z1, z2))

    assert full.search(program(None)), "the probe must see the dense form's [2N, 2N] matrix"
    assert not full.search(program(chunk)), "chunked form materialised a [2N, 2N] array"
    assert re.search(rf"\[{2 * n},{chunk}\]", program(chunk))


def test_nt_xent_bfloat16_inputs_compute_in_float32():
    z1, z2 = random_views(8, 16, seed=4)
    z1_bf16, z2_bf16 = z1.astype(jnp.bfloat16), z2.astype(jnp.bfloat16)
    for chunk_size in (None, 4):
        loss, grads = jax.jit(jax.value_and_grad(
            lambda a, b: nt_xent(a, b, 0.1, chunk_size=chunk_size), (0, 1)))(z1_bf16, z2_bf16)
        assert loss.dtype == jnp.float32
        assert grads[0].dtype == jnp.bfloat16
        # Same as float32 on the bf16-rounded inputs: no bf16 arithmetic inside.
        np.testing.assert_allclose(
            loss, paper_simclr_loss(np.float64(z1_bf16), np.float64(z2_bf16), 0.1), rtol=1e-5)


def test_nt_xent_is_jit_and_vmap_safe():
    rng = np.random.default_rng(5)
    z1s, z2s = rng.normal(size=(2, 3, 6, 4)).astype(np.float32)
    for chunk_size in (None, 5):
        batched = jax.jit(jax.vmap(lambda a, b: nt_xent(a, b, 0.2, chunk_size=chunk_size)))
        expected = [paper_simclr_loss(np.float64(a), np.float64(b), 0.2) for a, b in zip(z1s, z2s)]
        np.testing.assert_allclose(batched(z1s, z2s), expected, rtol=1e-5)
    # Per-example gradients under vmap (custom VJP included) equal one-by-one gradients.
    grad_fn = jax.grad(lambda a, b: nt_xent(a, b, 0.2, chunk_size=5), (0, 1))
    batched_grads = jax.jit(jax.vmap(grad_fn))(z1s, z2s)
    one_by_one = [jax.jit(grad_fn)(a, b) for a, b in zip(z1s, z2s)]
    chex.assert_trees_all_close(batched_grads, jax.tree.map(lambda *g: jnp.stack(g), *one_by_one),
                                atol=1e-6)


def test_nt_xent_temperature_can_be_traced_and_differentiated():
    z1, z2 = random_views(5, 4, seed=6)
    grad_t = jax.jit(jax.grad(lambda t: nt_xent(z1, z2, t)))(0.3)
    step = 1e-6
    expected = (paper_simclr_loss(np.float64(z1), np.float64(z2), 0.3 + step)
                - paper_simclr_loss(np.float64(z1), np.float64(z2), 0.3 - step)) / (2 * step)
    np.testing.assert_allclose(grad_t, expected, rtol=1e-4)


def test_nt_xent_rejects_bad_inputs_with_clear_messages():
    z1, z2 = random_views(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z1, z2[:3])
    with pytest.raises(ValueError, match=r"z1 must be a floating \[batch, dim\]"):
        nt_xent(z1[None], z2[None])
    with pytest.raises(ValueError, match="chunk_size must be None or a positive int"):
        nt_xent(z1, z2, chunk_size=0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        nt_xent(z1, z2, temperature=0.0)


# ------------------------------------------------------------------ info_nce
@pytest.mark.parametrize("normalize", [True, False])
def test_info_nce_matches_moco_reference_value_and_gradient(normalize):
    rng = np.random.default_rng(7)
    query, key = rng.normal(size=(2, 5, 4)).astype(np.float32)
    queue = rng.normal(size=(12, 4)).astype(np.float32)
    scale = 1.0 if normalize else 0.3  # keeps raw dot products / 0.07 in a sane range

    def reference(q, k, negatives):
        return moco_info_nce(q, k, negatives, 0.07, normalize)

    ours = info_nce(query * scale, key * scale, queue * scale, 0.07, normalize=normalize)
    np.testing.assert_allclose(ours, reference(query * scale, key * scale, queue * scale),
                               rtol=1e-5)
    grads = jax.jit(jax.grad(lambda *a: info_nce(*a, 0.07, normalize=normalize), (0, 1, 2)))(
        query * scale, key * scale, queue * scale)
    expected = finite_difference_gradient(reference, (query * scale, key * scale, queue * scale))
    chex.assert_trees_all_close(grads, tuple(expected), atol=5e-5, rtol=1e-4)


def test_info_nce_is_vmap_safe_and_rejects_bad_shapes():
    rng = np.random.default_rng(8)
    query, key = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
    queue = rng.normal(size=(10, 6)).astype(np.float32)
    batched = jax.vmap(lambda q, k: info_nce(q, k, queue, 0.2))(query, key)
    np.testing.assert_allclose(
        batched, [moco_info_nce(q, k, queue, 0.2, True) for q, k in zip(query, key)], rtol=1e-5)
    with pytest.raises(ValueError, match="positive_key must have the query's shape"):
        info_nce(query[0], key[0, :3], queue)
    with pytest.raises(ValueError, match="negative_keys must be"):
        info_nce(query[0], key[0], queue[:, :5])


# --------------------------------------------------------------------- queue
def test_update_queue_is_a_fifo_with_newest_keys_last():
    rng = np.random.default_rng(9)
    queue = rng.normal(size=(6, 2)).astype(np.float32)
    reference = collections.deque(list(queue), maxlen=6)  # oldest first
    step = jax.jit(update_queue)
    for _ in range(4):
        keys = rng.normal(size=(2, 2)).astype(np.float32)
        queue = step(queue, keys)
        reference.extend(keys)
        np.testing.assert_array_equal(queue, np.stack(reference))


def test_update_queue_at_pointer_is_moco_ring_buffer():
    rng = np.random.default_rng(10)
    queue = np.zeros((6, 2), np.float32)
    reference, pointer = queue.copy(), 0
    ptr = jnp.int32(0)
    for _ in range(5):
        keys = rng.normal(size=(3, 2)).astype(np.float32)
        queue, ptr = update_queue_at_pointer(queue, ptr, keys)
        reference[pointer:pointer + 3] = keys
        pointer = (pointer + 3) % 6
        np.testing.assert_array_equal(queue, reference)
        assert int(ptr) == pointer


def test_update_queue_stops_gradients_into_the_queue():
    keys = jnp.ones((2, 3))
    grad = jax.grad(lambda k: jnp.sum(update_queue(jnp.zeros((4, 3)), k)))(keys)
    np.testing.assert_array_equal(grad, 0.0)


def test_queue_length_not_a_multiple_of_batch_is_a_clear_error():
    message = r"queue length K=10 is not a multiple of the global batch B=4; choose K"
    with pytest.raises(ValueError, match=message):
        update_queue(jnp.zeros((10, 3)), jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=message):
        update_queue_at_pointer(jnp.zeros((10, 3)), 0, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"keys must be \[batch, 3\]"):
        update_queue(jnp.zeros((8, 3)), jnp.ones((4, 2)))
