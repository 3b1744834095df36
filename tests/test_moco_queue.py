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

from rl_repr.losses import enqueue_ids, enqueue_keys, flat_queue, info_nce, queue_info_nce, update_queue_at_pointer
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


def own_image_ids():
    """Query ids and queue ids with many matches: every query's image is queued 0-3 times."""
    rng = np.random.default_rng(2)
    return rng.permutation(BATCH).astype(np.int32), rng.integers(-1, BATCH, size=(BATCH, SLOTS)).astype(np.int32)


def numpy_moco_loss_without_own_image(query, key, queue, query_ids, queue_ids, temperature):
    """``numpy_moco_loss`` with each query's negatives only the queued keys of other images."""
    keys, ids = flat_queue(queue).astype(np.float64), flat_queue(queue_ids[..., None])[:, 0]
    return np.mean([numpy_moco_loss(q[None], k[None], keys[ids != i], temperature)
                    for q, k, i in zip(query, key, query_ids)])


def test_own_image_keys_leave_the_negatives_on_one_device_and_sharded(mesh, batch):
    """query_ids/queue_ids: a queued key of the query's own image is no negative, on one device (numpy
    reference; gradient against dense masked logits) and with the queue and ids split over 8 devices."""
    query, key, queue = batch
    query_ids, queue_ids = own_image_ids()
    assert (flat_queue(queue_ids[..., None])[:, 0][None] == query_ids[:, None]).any(axis=1).mean() > 0.5

    def dense(q):  # [N, 1 + K] logits, a query's own image's keys at -inf
        unit = functools.partial(jnp.linalg.norm, axis=1, keepdims=True)
        q, k, negatives = q / unit(q), key / unit(key), flat_queue(queue) / unit(flat_queue(queue))
        own = query_ids[:, None] == flat_queue(queue_ids[..., None])[:, 0][None]
        logits = jnp.concatenate([jnp.sum(q * k, 1, keepdims=True), jnp.where(own, -jnp.inf, q @ negatives.T)], 1)
        return jnp.mean(jax.nn.logsumexp(logits / TAU, axis=1) - logits[:, 0] / TAU)

    expected_value, expected_grad = jax.value_and_grad(dense)(query)
    np.testing.assert_allclose(expected_value, numpy_moco_loss_without_own_image(
        query, key, queue, query_ids, queue_ids, TAU), rtol=1e-5)
    value, grad = jax.value_and_grad(lambda q: queue_info_nce(q, key, queue, TAU, query_ids=query_ids,
                                                              queue_ids=queue_ids))(query)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5)
    assert not np.isclose(value, queue_info_nce(query, key, queue, TAU))  # the ids do change the loss

    def local(q, k, qu, q_ids, qu_ids):
        return queue_info_nce(q, k, qu, TAU, axis_name="data", query_ids=q_ids, queue_ids=qu_ids)

    rows = P("data")
    inside = jax.jit(jax.shard_map(jax.value_and_grad(local), mesh=mesh, in_specs=(rows,) * 5,
                                   out_specs=(P(), rows), check_vma=False))
    pmapped = jax.pmap(jax.value_and_grad(local), axis_name="data", devices=jax.devices()[:DEVICES])
    arrays = (query, key, queue, query_ids, queue_ids)
    results = {"shard_map": inside(*arrays)}
    values, grads = pmapped(*(x.reshape(DEVICES, -1, *x.shape[1:]) for x in arrays))
    results["pmap"] = (values[0], grads.reshape(BATCH, DIM))
    placed = [jax.device_put(x, NamedSharding(mesh, rows)) for x in arrays]
    results["jit, queue sharded"] = jax.jit(jax.value_and_grad(
        lambda q, *rest: queue_info_nce(q, rest[0], rest[1], TAU, query_ids=rest[2], queue_ids=rest[3])))(*placed)
    for name, (value, grad) in results.items():
        np.testing.assert_allclose(value, expected_value, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(grad, expected_grad, atol=1e-6, rtol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="pass both query_ids and queue_ids"):
        queue_info_nce(query, key, queue, TAU, query_ids=query_ids)
    unknown = np.full(BATCH, -1, np.int32)  # an unknown image (-1) matches no key, the empty slots' -1 included
    np.testing.assert_allclose(queue_info_nce(query, key, queue, TAU, query_ids=unknown, queue_ids=np.full_like(
        queue_ids, -1)), queue_info_nce(query, key, queue, TAU), rtol=1e-6)


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
    ids = jnp.full((BATCH, SLOTS), -1, jnp.int32)  # the ids go to the keys' slot
    ids = enqueue_ids(ids, 2, jnp.arange(BATCH))
    np.testing.assert_array_equal(ids[:, 2], np.arange(BATCH))
    assert (np.delete(np.asarray(ids), 2, axis=1) == -1).all()


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
