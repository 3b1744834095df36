"""Sharded contrastive losses on 8 fake CPU devices equal the single-device result.

The single-device reference is ``nt_xent``/``info_nce``/``update_queue`` on the
concatenated global batch, which tests/test_contrastive.py checks against the
paper formula, the official SimCLR semantics and optax. Gradients are those of
the *global* loss: ``jax.grad`` of a shard_map'ed function returning the global
scalar, and ``jax.grad`` inside shard_map/pmap, each gathered and compared.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rl_repr.losses import info_nce, nt_xent, update_queue, update_queue_at_pointer

NUM_DEVICES = 8
PER_DEVICE = 3
DIM = 5
TEMPERATURE = 0.2


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() >= NUM_DEVICES, "tests/conftest.py must give 8 CPU devices"
    return Mesh(np.array(jax.devices()[:NUM_DEVICES]), ("data",))


@pytest.fixture(scope="module")
def views():
    rng = np.random.default_rng(0)
    shape = (NUM_DEVICES * PER_DEVICE, DIM)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def per_device(x):
    """[N, ...] -> [devices, N / devices, ...] for pmap."""
    return x.reshape(NUM_DEVICES, -1, *x.shape[1:])


def single_device_nt_xent(z1, z2):
    return jax.jit(jax.value_and_grad(
        lambda a, b: nt_xent(a, b, TEMPERATURE), (0, 1)))(z1, z2)


# 2N = 48 global views: chunk 5 does not divide it, 48 is a single block.
CHUNKS = [None, 5, 48]


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_nt_xent_shard_map_global_value_and_grad_of_global_scalar(mesh, views, chunk_size):
    loss = functools.partial(nt_xent, temperature=TEMPERATURE, axis_name="data",
                             chunk_size=chunk_size)
    mapped = jax.shard_map(loss, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
    value, grads = jax.jit(jax.value_and_grad(mapped, (0, 1)))(*views)
    expected_value, expected_grads = single_device_nt_xent(*views)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_nt_xent_grad_inside_shard_map_is_each_shards_full_gradient(mesh, views, chunk_size):
    loss = functools.partial(nt_xent, temperature=TEMPERATURE, axis_name="data",
                             chunk_size=chunk_size)
    mapped = jax.shard_map(jax.value_and_grad(loss, (0, 1)), mesh=mesh,
                           in_specs=(P("data"), P("data")),
                           out_specs=(P(), (P("data"), P("data"))))
    value, grads = jax.jit(mapped)(*views)
    expected_value, expected_grads = single_device_nt_xent(*views)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_nt_xent_pmap_value_on_every_device_and_gathered_grads(views, chunk_size):
    loss = functools.partial(nt_xent, temperature=TEMPERATURE, axis_name="data",
                             chunk_size=chunk_size)
    mapped = jax.pmap(jax.value_and_grad(loss, (0, 1)), axis_name="data",
                      devices=jax.devices()[:NUM_DEVICES])
    values, (g1, g2) = mapped(per_device(views[0]), per_device(views[1]))
    expected_value, expected_grads = single_device_nt_xent(*views)
    np.testing.assert_allclose(values, np.full(NUM_DEVICES, expected_value), rtol=1e-6)
    chex.assert_trees_all_close((g1.reshape(-1, DIM), g2.reshape(-1, DIM)), expected_grads,
                                atol=1e-6, rtol=1e-5)


def test_replicated_parameter_grads_shard_map_global_and_pmap_psum(mesh, views):
    """The documented convention for parameters shared by all devices."""
    weights = np.random.default_rng(1).normal(size=(DIM, 4)).astype(np.float32)

    def loss(w, x1, x2, axis_name=None):
        return nt_xent(x1 @ w, x2 @ w, TEMPERATURE, axis_name=axis_name, chunk_size=7)

    expected = jax.jit(jax.grad(loss))(weights, *views)
    # shard_map: gradient of replicated parameters is already the global one.
    in_shard_map = jax.shard_map(
        jax.grad(functools.partial(loss, axis_name="data")), mesh=mesh,
        in_specs=(P(), P("data"), P("data")), out_specs=P())
    np.testing.assert_allclose(jax.jit(in_shard_map)(weights, *views), expected,
                               atol=1e-6, rtol=1e-5)

    # pmap: each device holds its share; psum (not pmean) gives the global gradient.
    def pmap_step(w, x1, x2):
        return jax.lax.psum(jax.grad(functools.partial(loss, axis_name="data"))(w, x1, x2),
                            "data")

    in_pmap = jax.pmap(pmap_step, axis_name="data", in_axes=(None, 0, 0),
                       devices=jax.devices()[:NUM_DEVICES])
    grads = in_pmap(weights, per_device(views[0]), per_device(views[1]))
    np.testing.assert_allclose(grads, np.broadcast_to(expected, grads.shape),
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_nt_xent_plain_jit_with_batch_sharded_inputs(mesh, views, chunk_size):
    sharding = NamedSharding(mesh, P("data"))
    z1, z2 = (jax.device_put(v, sharding) for v in views)
    value, grads = jax.jit(jax.value_and_grad(
        lambda a, b: nt_xent(a, b, TEMPERATURE, chunk_size=chunk_size), (0, 1)))(z1, z2)
    expected_value, expected_grads = single_device_nt_xent(*views)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------ MoCo InfoNCE
@pytest.fixture(scope="module")
def moco_batch():
    rng = np.random.default_rng(2)
    query, key = rng.normal(size=(2, NUM_DEVICES * PER_DEVICE, DIM)).astype(np.float32)
    queue = rng.normal(size=(NUM_DEVICES * PER_DEVICE * 2, DIM)).astype(np.float32)
    return query, key, queue


def test_info_nce_sharded_equals_single_device(mesh, moco_batch):
    query, key, queue = moco_batch

    def loss(q, k, negatives, axis_name=None):
        return info_nce(q, jax.lax.stop_gradient(k), negatives, 0.07, axis_name=axis_name)

    expected_value, expected_grad = jax.jit(jax.value_and_grad(loss))(query, key, queue)
    local = functools.partial(loss, axis_name="data")

    mapped = jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data"), P()),
                           out_specs=P())
    value, grad = jax.jit(jax.value_and_grad(mapped))(query, key, queue)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5)

    in_pmap = jax.pmap(jax.value_and_grad(local), axis_name="data", in_axes=(0, 0, None),
                       devices=jax.devices()[:NUM_DEVICES])
    values, grads = in_pmap(per_device(query), per_device(key), queue)
    np.testing.assert_allclose(values, np.full(NUM_DEVICES, expected_value), rtol=1e-6)
    np.testing.assert_allclose(grads.reshape(-1, DIM), expected_grad, atol=1e-6, rtol=1e-5)


def test_update_queue_sharded_enqueues_all_devices_keys_in_device_order(mesh, moco_batch):
    _, key, queue = moco_batch
    expected = update_queue(queue, key)
    expected_ring, expected_pointer = update_queue_at_pointer(queue, 8, key)

    def both_updates(q, k):
        return (update_queue(q, k, axis_name="data"),
                update_queue_at_pointer(q, 8, k, axis_name="data"))

    mapped = jax.shard_map(both_updates, mesh=mesh, in_specs=(P(), P("data")),
                           out_specs=P())  # a replicated queue type-checks as replicated
    fifo, (ring, pointer) = jax.jit(mapped)(queue, key)
    np.testing.assert_array_equal(fifo, expected)
    np.testing.assert_array_equal(ring, expected_ring)
    assert int(pointer) == int(expected_pointer)

    in_pmap = jax.pmap(both_updates, axis_name="data", in_axes=(None, 0),
                       devices=jax.devices()[:NUM_DEVICES])
    fifo, (ring, pointers) = in_pmap(queue, per_device(key))
    np.testing.assert_array_equal(fifo, np.broadcast_to(expected, fifo.shape))
    np.testing.assert_array_equal(ring, np.broadcast_to(expected_ring, ring.shape))
    np.testing.assert_array_equal(pointers, int(expected_pointer))


def test_update_queue_sharded_checks_the_global_batch(mesh):
    queue = jnp.zeros((20, DIM))  # a multiple of the local batch 2, not of the global 16
    mapped = jax.shard_map(functools.partial(update_queue, axis_name="data"), mesh=mesh,
                           in_specs=(P(), P("data")), out_specs=P())
    with pytest.raises(ValueError, match="K=20 is not a multiple of the global batch B=16"):
        mapped(queue, jnp.ones((NUM_DEVICES * 2, DIM)))
