"""Global batch-norm statistics on 8 fake CPU devices.

Each distributed path (jit over a batch-sharded array without axis_name,
shard_map with axis_name, pmap with axis_name) must give exactly the
single-device result on the full batch: outputs, running statistics and
gradients.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rl_repr import norms

NUM_DEVICES = 8
PER_DEVICE = 2
C = 4
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() >= NUM_DEVICES, "conftest.py should give 8 fake CPU devices"
    return Mesh(np.array(jax.devices()[:NUM_DEVICES]), ("data",))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_DEVICES * PER_DEVICE, 3, 3, C)).astype(np.float32)
    # A different offset per device, so local statistics differ from global ones.
    x += np.repeat(np.arange(NUM_DEVICES, dtype=np.float32), PER_DEVICE)[:, None, None, None]
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.normal(size=C).astype(np.float32)
    mean = rng.normal(size=C).astype(np.float32)
    var = rng.uniform(0.5, 2.0, C).astype(np.float32)
    return tuple(jnp.asarray(a) for a in (x, gamma, beta, mean, var))


def full_batch(x, gamma, beta, mean, var):
    """The single-device reference: batch norm over the whole global batch."""
    return norms.batch_norm(x, gamma, beta, mean, var, training=True)


def sharded_bn(mesh, axis_name):
    return jax.shard_map(
        functools.partial(norms.batch_norm, training=True, axis_name=axis_name),
        mesh=mesh,
        in_specs=(P("data"), P(), P(), P(), P()),
        out_specs=(P("data"), (P(), P())),
        check_vma=axis_name is not None,  # without axis_name the stats vary per device
    )


def test_jit_on_batch_sharded_input_gives_global_statistics(mesh, inputs):
    x, *rest = inputs
    expected = full_batch(x, *rest)
    x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
    step = jax.jit(functools.partial(norms.batch_norm, training=True))
    y, stats = step(x_sharded, *rest)
    chex.assert_trees_all_close((y, stats), expected, **TOL)
    assert y.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), y.ndim)
    # XLA really reduced across devices (the statistics were not computed on one device).
    assert "all-reduce" in step.lower(x_sharded, *rest).compile().as_text()


def test_shard_map_with_axis_name_equals_full_batch_with_one_collective(mesh, inputs):
    expected = full_batch(*inputs)
    step = jax.jit(sharded_bn(mesh, "data"))
    chex.assert_trees_all_close(step(*inputs), expected, **TOL)
    hlo = step.lower(*inputs).compile().as_text()
    assert hlo.count("all-reduce(") == 1, "mean and mean-of-squares should share one all-reduce"


def test_shard_map_without_axis_name_uses_local_statistics(mesh, inputs):
    # The control for the test above: without axis_name each device normalizes
    # its own 2 examples, which differs from the global result on this data.
    y_local, _ = jax.jit(sharded_bn(mesh, None))(*inputs)
    y_global, _ = full_batch(*inputs)
    assert not np.allclose(y_local, y_global, atol=1e-2)
    x, *rest = inputs
    y_first, _ = full_batch(x[:PER_DEVICE], *rest)
    chex.assert_trees_all_close(y_local[:PER_DEVICE], y_first, **TOL)


def test_pmap_with_axis_name_equals_full_batch(inputs):
    x, gamma, beta, mean, var = inputs
    expected_y, (expected_mean, expected_var) = full_batch(*inputs)
    step = jax.pmap(
        functools.partial(norms.batch_norm, training=True, axis_name="data"),
        axis_name="data", in_axes=(0, None, None, None, None),
        devices=jax.devices()[:NUM_DEVICES],
    )
    y, (new_mean, new_var) = step(x.reshape(NUM_DEVICES, PER_DEVICE, *x.shape[1:]),
                                  gamma, beta, mean, var)
    chex.assert_trees_all_close(y.reshape(x.shape), expected_y, **TOL)
    # Every device holds the same, global, running statistics.
    chex.assert_trees_all_close(new_mean, jnp.broadcast_to(expected_mean, (NUM_DEVICES, C)), **TOL)
    chex.assert_trees_all_close(new_var, jnp.broadcast_to(expected_var, (NUM_DEVICES, C)), **TOL)


def test_gradients_through_the_collective_equal_single_device(mesh, inputs):
    x, gamma, beta, mean, var = inputs
    weights = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
    sharded = sharded_bn(mesh, "data")

    def loss_full(x, gamma, beta):
        return jnp.sum(full_batch(x, gamma, beta, mean, var)[0] * weights)

    def loss_sharded(x, gamma, beta):
        return jnp.sum(sharded(x, gamma, beta, mean, var)[0] * weights)

    grads_full = jax.grad(loss_full, argnums=(0, 1, 2))(x, gamma, beta)
    grads_sharded = jax.jit(jax.grad(loss_sharded, argnums=(0, 1, 2)))(x, gamma, beta)
    chex.assert_trees_all_close(grads_sharded, grads_full, atol=1e-4, rtol=1e-4)


def test_linen_batch_norm_with_axis_name_under_shard_map(mesh, inputs):
    x, gamma, beta, mean, var = inputs
    variables = {"params": {"scale": gamma, "bias": beta},
                 "batch_stats": {"mean": mean, "var": var}}
    local_bn = norms.BatchNorm(use_running_average=False, axis_name="data")

    def local_step(variables, x):
        return local_bn.apply(variables, x, mutable=["batch_stats"])

    step = jax.jit(jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P("data")),
                                 out_specs=(P("data"), P())))
    y, updates = step(variables, x)
    expected_y, (expected_mean, expected_var) = full_batch(*inputs)
    chex.assert_trees_all_close(y, expected_y, **TOL)
    chex.assert_trees_all_close(updates["batch_stats"],
                                {"mean": expected_mean, "var": expected_var}, **TOL)


@pytest.mark.parametrize("name", ["layer", "instance", "group"])
def test_per_example_norms_under_jit_with_sharded_input(mesh, inputs, name):
    x, gamma, beta, _, _ = inputs
    fn = {"layer": norms.layer_norm, "instance": norms.instance_norm,
          "group": functools.partial(norms.group_norm, num_groups=2)}[name]
    x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
    chex.assert_trees_all_close(jax.jit(fn)(x_sharded, gamma, beta), fn(x, gamma, beta), **TOL)
