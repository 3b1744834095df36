"""MoCo's queue split over 8 fake devices equals one device holding the whole queue.

References: numpy MoCo InfoNCE with per-query loops (He et al. 2020, Algorithm 1) on the whole
queue, ``info_nce`` on the flattened queue (itself checked against numpy and finite differences
in tests/test_contrastive.py), and ``update_queue_at_pointer`` (MoCo's ring buffer) on the
single-device view. The sharded loss is checked under jit with the queue sharded, under
shard_map (gradient inside, pmap semantics; and gradient of the mapped global scalar) and pmap.
"""
import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rl_repr.losses import enqueue_keys, flat_queue, info_nce, queue_info_nce, update_queue_at_pointer
from rl_repr.moco import state as moco_state

DEVICES, PER_DEVICE, SLOTS, DIM, TAU = 8, 3, 4, 5, 0.2
BATCH = DEVICES * PER_DEVICE


@pytest.fixture(scope="module")
def mesh():
    return Mesh(np.array(jax.devices()[:DEVICES]), ("data",))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    query, key = rng.normal(size=(2, BATCH, DIM)).astype(np.float32)
    queue = rng.normal(size=(BATCH, SLOTS, DIM)).astype(np.float32)
    return query, key, queue


def numpy_moco_loss(query, key, queue_keys, temperature):
    """Algorithm 1: logits [q.k+, q.k_1..q.k_K] / tau, cross-entropy with label 0, per query."""
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    query, key, queue_keys = map(unit, (query.astype(np.float64), key.astype(np.float64), queue_keys))
    losses = []
    for q, k in zip(query, key):
        logits = np.concatenate([[q @ k], queue_keys @ q]) / temperature
        losses.append(np.log(np.sum(np.exp(logits))) - logits[0])
    return np.mean(losses)


def single_device(query, key, queue):
    """Value and query gradient with the whole queue on one device (``info_nce`` on MoCo's ring buffer)."""
    return jax.jit(jax.value_and_grad(lambda q: info_nce(q, key, flat_queue(queue), TAU)))(query)


def test_queue_loss_is_moco_infonce_on_the_whole_queue(batch):
    query, key, queue = batch
    value = queue_info_nce(query, key, queue, TAU)
    np.testing.assert_allclose(value, numpy_moco_loss(query, key, flat_queue(queue).astype(np.float64), TAU),
                               rtol=1e-5)
    expected_value, expected_grad = single_device(query, key, queue)
    grad = jax.grad(lambda q: queue_info_nce(q, key, queue, TAU))(query)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5)


def test_sharded_queue_loss_equals_one_device_under_every_driver(mesh, batch):
    query, key, queue = batch
    expected_value, expected_grad = single_device(query, key, queue)
    local = functools.partial(queue_info_nce, temperature=TAU, axis_name="data")
    rows = P("data")

    # gradient inside the per-device program (pmap semantics, as rl_repr's drivers run it)
    inside = jax.shard_map(lambda q, k, qu: jax.value_and_grad(local)(q, k, qu), mesh=mesh,
                           in_specs=(rows, rows, rows), out_specs=(P(), rows), check_vma=False)
    # gradient of the mapped global scalar (type-checked shard_map)
    outside = jax.value_and_grad(jax.shard_map(local, mesh=mesh, in_specs=(rows, rows, rows), out_specs=P()))
    pmapped = jax.pmap(jax.value_and_grad(local), axis_name="data", devices=jax.devices()[:DEVICES])

    def per_device(x):
        return x.reshape(DEVICES, -1, *x.shape[1:])

    results = {"shard_map": jax.jit(inside)(query, key, queue), "shard_map, outer grad": jax.jit(outside)(
        query, key, queue)}
    values, grads = pmapped(per_device(query), per_device(key), per_device(queue))
    results["pmap"] = (values[0], grads.reshape(BATCH, DIM))
    np.testing.assert_allclose(values, expected_value, rtol=1e-6)
    for name, (value, grad) in results.items():
        np.testing.assert_allclose(value, expected_value, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5, err_msg=name)


def test_jit_with_the_queue_sharded_never_gathers_the_queue(mesh, batch):
    query, key, queue = batch
    expected_value, expected_grad = single_device(query, key, queue)
    sharded = NamedSharding(mesh, P("data"))
    placed = [jax.device_put(x, sharded) for x in batch]
    loss = jax.jit(jax.value_and_grad(lambda q, k, qu: queue_info_nce(q, k, qu, TAU)))
    value, grad = loss(*placed)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5)
    program = loss.lower(*placed).compile().as_text()
    gathered = re.findall(r"= f32\[([\d,]+)\]\{[^}]*\} all-gather\(", program)
    assert f"{BATCH},{DIM}" in gathered, gathered  # the queries travel, [N, d] ...
    assert not {f"{BATCH},{SLOTS},{DIM}", f"{BATCH * SLOTS},{DIM}"} & set(gathered), gathered  # ... the queue never


def test_enqueue_on_each_device_equals_moco_ring_buffer_on_one_device(mesh):
    rng = np.random.default_rng(1)
    queue = rng.normal(size=(BATCH, SLOTS, DIM)).astype(np.float32)
    ring, pointer = flat_queue(queue), 0
    enqueue = jax.jit(jax.shard_map(enqueue_keys, mesh=mesh, in_specs=(P("data"), P(), P("data")),
                                    out_specs=(P("data"), P()), check_vma=False))
    slot = jnp.zeros((), jnp.int32)
    for step in range(SLOTS + 2):  # wraps around: the oldest batch is the one replaced
        keys = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        queue, slot = enqueue(queue, slot, keys)
        unit_keys = keys / np.linalg.norm(keys, axis=1, keepdims=True)
        ring, pointer = update_queue_at_pointer(ring, pointer, unit_keys)
        np.testing.assert_allclose(flat_queue(queue), ring, rtol=1e-6, err_msg=f"step {step}")
        assert int(slot) * BATCH == int(pointer)
    # the keys of the last S global batches, each once
    assert int(slot) == 2


def test_enqueue_stops_gradients_and_checks_shapes():
    grad = jax.grad(lambda k: jnp.sum(enqueue_keys(jnp.zeros((4, 2, 3)), 0, k)[0]))(jnp.ones((4, 3)))
    np.testing.assert_array_equal(grad, 0.0)
    with pytest.raises(ValueError, match="keys has 2 rows but the queue shard 4"):
        enqueue_keys(jnp.zeros((4, 2, 3)), 0, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"queue must be \[batch, slots, 3\]"):
        queue_info_nce(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.zeros((8, 3)))


def test_key_encoder_momentum_update_and_schedules():
    rng = np.random.default_rng(2)
    key_params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    query_params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    updated = moco_state.momentum_update(key_params, query_params, 0.99)
    chex.assert_trees_all_close(updated, {k: 0.99 * key_params[k] + 0.01 * query_params[k] for k in key_params})
    constant = moco_state.key_momentum(moco_state_config("constant"), total_steps=100)
    cosine = moco_state.key_momentum(moco_state_config("cosine"), total_steps=100)
    np.testing.assert_allclose([constant(0), constant(99)], [0.99, 0.99], rtol=1e-6)
    # BYOL: 1 - (1 - m)(cos(pi t / T) + 1) / 2: m at the start, 1 at the end
    np.testing.assert_allclose([cosine(0), cosine(50), cosine(100)], [0.99, 0.995, 1.0], rtol=1e-6)


def moco_state_config(schedule):
    from rl_repr.moco.config import moco_defaults
    c = moco_defaults()
    c.update(key_momentum=0.99, key_momentum_schedule=schedule)
    return c
