"""Representation caching (GradCache) against full-batch autodiff and a per-chunk reference."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr import losses, norms
from rl_repr.core import config as config_utils
from rl_repr.core import runner
from rl_repr.simclr import gradient_cache
from simclr_tiny import tiny_simclr_config

TEMPERATURE = 0.5


class _Encoder(nn.Module):
    """Conv -> group norm -> gelu -> pool -> dense -> layer norm -> gelu -> dense: no layer
    mixes examples (and gelu is smooth, for the finite-difference check)."""

    features: int = 4

    @nn.compact
    def __call__(self, x, train=True):
        a = nn.gelu(norms.GroupNorm(num_groups=2)(nn.Conv(self.features, (3, 3))(x)))
        a = nn.gelu(norms.GroupNorm(num_groups=2)(nn.Conv(self.features, (3, 3), strides=2)(a)))
        a = a.mean(axis=(1, 2))
        a = nn.gelu(norms.LayerNorm()(nn.Dense(16)(a)))
        return nn.Dense(8)(a)


class _DenseBatchNorm(nn.Module):
    """Dense -> batch norm (running statistics) -> relu -> dense: BN statistics we can check."""

    @nn.compact
    def __call__(self, x, train=True):
        a = nn.Dense(6)(x.reshape(x.shape[0], -1))
        a = norms.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(a)
        return nn.Dense(5)(nn.relu(a))


def _views(n, seed=0, shape=(8, 8, 3)):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.uniform(size=(n, *shape)), jnp.float32),
            jnp.asarray(rng.uniform(size=(n, *shape)), jnp.float32))


def _embed_fn(model, batch_stats):
    def embed(params, x):
        z, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                 mutable=["batch_stats"])
        return z, updates.get("batch_stats", {})
    return embed


def _pair_loss(z1, z2):
    return losses.nt_xent(z1, z2, TEMPERATURE)


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize("num_chunks", [1, 2, 4])
def test_two_view_layout_follows_its_formula_and_inverts(num_chunks):
    n, k = 8, num_chunks
    ids1, ids2 = np.arange(n), 100 + np.arange(n)   # view 1 of example j is j, view 2 is 100 + j
    chunks = np.asarray(gradient_cache.two_view_chunks(jnp.asarray(ids1), jnp.asarray(ids2), k))
    expected = np.empty((k, 2 * n // k), int)
    for c in range(k):
        for i in range(n // k):
            expected[c, 2 * i] = ids1[i * k + c]
            expected[c, 2 * i + 1] = ids2[(i * k + c + 1) % n]
    np.testing.assert_array_equal(chunks, expected)
    first, second = gradient_cache.two_view_unchunk(jnp.asarray(chunks), k)
    np.testing.assert_array_equal(first, ids1)
    np.testing.assert_array_equal(second, ids2)
    for chunk in chunks:  # no positive pair shares a chunk unless the chunk is the whole batch
        examples = [e % 100 for e in chunk]
        assert (len(set(examples)) == len(examples)) == (k > 1)


def test_chunk_count_that_does_not_divide_the_batch_is_a_clear_error():
    v1, v2 = _views(6)
    with pytest.raises(ValueError, match="num_chunks=4 must divide the 6 examples"):
        gradient_cache.two_view_chunks(v1, v2, 4)


# ----------------------------------------------------------------------------- exactness
@pytest.fixture(scope="module")
def group_norm_model():
    model = _Encoder()
    v1, v2 = _views(8)
    variables = model.init(jax.random.key(0, impl="rbg"), v1, train=False)
    return model, variables, v1, v2


@pytest.fixture(scope="module")
def full_batch_reference(group_norm_model):
    """Plain autodiff through the whole batch: the gradient caching must reproduce."""
    model, variables, v1, v2 = group_norm_model

    def loss(params):
        z = model.apply({"params": params}, jnp.concatenate([v1, v2]), train=True)
        return _pair_loss(z[:8], z[8:])

    return jax.jit(jax.value_and_grad(loss))(variables["params"])


@pytest.fixture(scope="module")
def cached_gradient(group_norm_model):
    """``num_chunks -> (loss, aux, grads)`` of the cached computation, each compiled once."""
    model, variables, v1, v2 = group_norm_model
    results = {}

    def get(num_chunks):
        if num_chunks not in results:
            results[num_chunks] = jax.jit(lambda p: gradient_cache.two_view_value_and_grad(
                _embed_fn(model, {}), _pair_loss, p, v1, v2, num_chunks))(variables["params"])
        return results[num_chunks]

    return get


@pytest.mark.parametrize("num_chunks", [2, 8])
def test_group_norm_gradient_equals_full_batch_gradient(full_batch_reference, cached_gradient, num_chunks):
    ref_loss, ref_grads = full_batch_reference
    loss, aux, grads = cached_gradient(num_chunks)
    assert aux == {}
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    chex.assert_trees_all_close(grads, ref_grads, rtol=2e-5, atol=2e-6)


def test_cached_gradient_matches_finite_differences(group_norm_model, cached_gradient):
    """A directional derivative of the loss, by central differences, against <grad, d>."""
    model, variables, v1, v2 = group_norm_model
    params = variables["params"]
    _, _, grads = cached_gradient(8)
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(1)
    noise = [rng.normal(size=x.shape) for x in leaves]
    norm = np.sqrt(sum(np.sum(x ** 2) for x in noise))
    direction = jax.tree.unflatten(treedef, [jnp.asarray(x / norm, jnp.float32) for x in noise])
    loss = jax.jit(lambda p: _pair_loss(*jnp.split(model.apply({"params": p}, jnp.concatenate([v1, v2])), 2)))
    eps = 1e-2
    shifted = [loss(jax.tree.map(lambda p, d, s=s: p + s * eps * d, params, direction)) for s in (1, -1)]
    numeric = float(shifted[0] - shifted[1]) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-5)


def test_compiled_memory_is_flat_in_batch_size():
    """With a fixed chunk (8 examples), the activation memory of the cached gradient does not
    grow with the batch: from 16 to 128 examples XLA's temporary buffers grow by less than a
    tenth of what plain autodiff's grow by (what remains is O(batch): the re-laid-out inputs,
    the embeddings and the loss's [2N, 2N] similarities)."""
    model = _Encoder(features=32)
    variables = model.init(jax.random.key(0, impl="rbg"), _views(2)[0], train=False)

    def temp_bytes(n, cached):
        v1, v2 = _views(n, seed=n)
        if cached:
            fn = lambda p: gradient_cache.two_view_value_and_grad(  # noqa: E731
                _embed_fn(model, {}), _pair_loss, p, v1, v2, n // 8)[2]
        else:
            fn = jax.grad(lambda p: _pair_loss(*jnp.split(model.apply({"params": p}, jnp.concatenate([v1, v2])), 2)))
        return jax.jit(fn).lower(variables["params"]).compile().memory_analysis().temp_size_in_bytes

    plain_small, plain_large = temp_bytes(16, False), temp_bytes(128, False)
    cached_small, cached_large = temp_bytes(16, True), temp_bytes(128, True)
    assert plain_large > 4 * plain_small                 # 8x the batch: activations grow
    assert cached_large - cached_small < 0.1 * (plain_large - plain_small)
    assert cached_large < plain_large / 4


# ----------------------------------------------------------------------------- batch norm
def test_batch_norm_gradient_is_that_of_per_chunk_statistics():
    """With batch norm the cached gradient is the exact gradient of the loss whose chunks are
    normalised separately (reference: each chunk through the model in one autodiff graph,
    chunks formed by index from the layout formula); the running mean matches the full batch
    and the running variance is the mean within-chunk variance."""
    n, k = 8, 4
    model = _DenseBatchNorm()
    v1, v2 = _views(n, seed=3)
    variables = model.init(jax.random.key(0, impl="rbg"), v1, train=False)
    params, stats = variables["params"], variables["batch_stats"]

    rows = [(np.array([i * k + c for i in range(n // k)]), np.array([(i * k + c + 1) % n for i in range(n // k)]))
            for c in range(k)]

    def per_chunk_loss(p):
        z1, z2 = jnp.zeros((n, 5)), jnp.zeros((n, 5))
        for first, second in rows:
            z = model.apply({"params": p, "batch_stats": stats}, jnp.concatenate([v1[first], v2[second]]),
                            train=True, mutable=["batch_stats"])[0]
            z1, z2 = z1.at[first].set(z[:n // k]), z2.at[second].set(z[n // k:])
        return _pair_loss(z1, z2)

    ref_loss, ref_grads = jax.jit(jax.value_and_grad(per_chunk_loss))(params)
    cached = jax.jit(lambda p, chunks: gradient_cache.two_view_value_and_grad(
        _embed_fn(model, stats), _pair_loss, p, v1, v2, chunks), static_argnums=1)
    loss, new_stats, grads = cached(params, k)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5, atol=1e-6)

    # Running statistics, from the formula in numpy: pre-norm activations a = x W + b.
    w, b = np.asarray(params["Dense_0"]["kernel"]), np.asarray(params["Dense_0"]["bias"])
    chunk_acts = [np.concatenate([np.asarray(v1)[f], np.asarray(v2)[s]]).reshape(2 * n // k, -1) @ w + b
                  for f, s in rows]
    all_acts = np.concatenate(chunk_acts)
    np.testing.assert_allclose(new_stats["bn"]["mean"], 0.1 * all_acts.mean(0), rtol=1e-5, atol=1e-6)
    within = np.mean([a.var(0) for a in chunk_acts], axis=0)
    np.testing.assert_allclose(new_stats["bn"]["var"], 0.9 + 0.1 * within, rtol=1e-5)
    assert np.all(within <= all_acts.var(0) + 1e-6)  # the between-chunk spread is missing

    # One chunk is the full batch: identical to plain autodiff, statistics included.
    def full_loss(p):
        z, updates = model.apply({"params": p, "batch_stats": stats}, jnp.concatenate([v1, v2]), train=True,
                                 mutable=["batch_stats"])
        return _pair_loss(z[:n], z[n:]), updates["batch_stats"]

    (full, full_stats), full_grads = jax.jit(jax.value_and_grad(full_loss, has_aux=True))(params)
    one_loss, one_stats, one_grads = cached(params, 1)
    np.testing.assert_allclose(one_loss, full, rtol=1e-6)
    chex.assert_trees_all_close((one_grads, one_stats), (full_grads, full_stats), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- trainer
def _two_steps(config):
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    losses_ = []
    for step in range(2):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses_.append(float(metrics["loss"]))
    return np.array(losses_), jax.device_get(run.driver.get_state(placed)).params


@pytest.mark.slow
def test_simclr_step_with_gradient_cache_matches_plain_step():
    """Group-norm ResNet, layer-norm head: the cached step under shard_map on 2 devices (4
    chunks of each device's 8 examples, negatives gathered across devices) trains exactly
    like the plain step on one device. (The jit path calls the same function on the global
    batch, tested above.)"""
    common = {"model.norm": "group", "model.num_groups": 2, "head.norm": "layer"}
    ref_losses, ref_params = _two_steps(tiny_simclr_config(**common, num_devices=1))
    cached_losses, params = _two_steps(tiny_simclr_config(**common, parallel="shard_map", num_devices=2,
                                                          gradient_cache_chunks=4))
    np.testing.assert_allclose(cached_losses, ref_losses, rtol=1e-5)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-4, atol=1e-5)


def test_gradient_cache_chunks_must_divide_the_batch():
    with pytest.raises(config_utils.ConfigError, match="gradient_cache_chunks"):
        runner.build(tiny_simclr_config(gradient_cache_chunks=3))
