"""Shuffled batch norm for MoCo's keys on 8 fake devices.

The reference is numpy: permute the global batch explicitly, apply batch norm (the formula)
group by group of B / groups examples, and put the keys back in the original order. The
shuffle is checked under jit (global batch, groups placed on the devices), shard_map and pmap
(per device, through all-gathers), and on one device with the same number of groups.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rl_repr import norms
from rl_repr.moco import shuffle_bn

DEVICES, PER_DEVICE, FEATURES, DIM = 8, 8, 6, 4
BATCH = DEVICES * PER_DEVICE
EPS = 1e-5


class TinyKeyEncoder(nn.Module):
    """Dense -> batch norm (training mode): what makes keys depend on their group."""

    @nn.compact
    def __call__(self, x):
        return norms.BatchNorm(use_running_average=False, epsilon=EPS)(nn.Dense(DIM)(x))


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
    model = TinyKeyEncoder()
    variables = model.init(jax.random.PRNGKey(0), images)
    variables = {"params": jax.tree.map(lambda p: p + rng.normal(size=p.shape).astype(np.float32) * 0.1,
                                        variables["params"]), "batch_stats": variables["batch_stats"]}

    def encode(x):
        y, updates = model.apply(variables, x, mutable=["batch_stats"])
        return y, updates["batch_stats"]

    permutation = shuffle_bn.key_permutation(jax.random.PRNGKey(3), 7, BATCH)
    return images, variables, encode, np.asarray(permutation)


def numpy_shuffled_bn_keys(images, variables, permutation, groups):
    """Keys computed group by group on the explicitly permuted batch, then un-permuted."""
    params = variables["params"]
    kernel, bias = np.asarray(params["Dense_0"]["kernel"]), np.asarray(params["Dense_0"]["bias"])
    scale, shift = np.asarray(params["BatchNorm_0"]["scale"]), np.asarray(params["BatchNorm_0"]["bias"])
    permuted = images[permutation].astype(np.float64)
    keys_permuted = []
    for group in np.split(permuted, groups):
        h = group @ kernel + bias
        keys_permuted.append((h - h.mean(0)) / np.sqrt(h.var(0) + EPS) * scale + shift)
    keys = np.empty((len(images), kernel.shape[1]))
    keys[permutation] = np.concatenate(keys_permuted)  # row j of the permuted batch is example perm[j]
    return keys


def run_everywhere(fn, images, permutation, groups):
    """``fn(encode-free args)`` under jit on 8 devices, shard_map, pmap and jit on 1 device -> keys."""
    mesh = Mesh(np.array(jax.devices()[:DEVICES]), ("data",))
    sharded = NamedSharding(mesh, P("data"))

    def shard(x):
        return jax.lax.with_sharding_constraint(x, sharded)

    out = {"jit, 8 devices": jax.jit(lambda x, p: fn(x, p, groups, shard=shard)[0])(
        jax.device_put(images, sharded), permutation)}
    per_device = functools.partial(fn, groups=groups, axis_name="data")
    out["shard_map"] = jax.jit(jax.shard_map(lambda x, p: per_device(x, p)[0], mesh=mesh, in_specs=(P("data"), P()),
                                             out_specs=P("data"), check_vma=False))(images, permutation)
    pmapped = jax.pmap(lambda x, p: per_device(x, p)[0], axis_name="data", in_axes=(0, None),
                       devices=jax.devices()[:DEVICES])
    out["pmap"] = pmapped(images.reshape(DEVICES, PER_DEVICE, -1), permutation).reshape(BATCH, -1)
    out["jit, 1 device"] = jax.jit(lambda x, p: fn(x, p, groups)[0])(images, permutation)
    return out


def test_keys_equal_batch_norm_per_group_of_the_permuted_batch_under_every_driver(setup):
    images, variables, encode, permutation = setup
    expected = numpy_shuffled_bn_keys(images, variables, permutation, DEVICES)
    for name, keys in run_everywhere(functools.partial(shuffle_bn.shuffled_keys, encode), images, permutation,
                                     DEVICES).items():
        np.testing.assert_allclose(keys, expected, atol=1e-5, rtol=1e-5, err_msg=name)
    # 16 groups (2 per device) too
    keys = jax.jit(lambda x, p: shuffle_bn.shuffled_keys(encode, x, p, 16)[0])(images, permutation)
    np.testing.assert_allclose(keys, numpy_shuffled_bn_keys(images, variables, permutation, 16), atol=1e-5, rtol=1e-5)


def test_the_permutation_crosses_devices_and_is_exactly_undone(setup):
    images, _, _, permutation = setup
    source_device = permutation // PER_DEVICE  # where each example of device g's group comes from
    groups = source_device.reshape(DEVICES, PER_DEVICE)
    assert all(len(set(row)) >= 4 for row in groups), groups  # every group mixes >= 4 devices' examples
    stays = np.mean(groups == np.arange(DEVICES)[:, None])
    assert stays < 0.3, stays  # about 1/8 of the examples stay on their own device

    def identity(x):  # keys = the images themselves: any mix-up would show
        return x, {}

    for name, keys in run_everywhere(functools.partial(shuffle_bn.shuffled_keys, identity), images, permutation,
                                     DEVICES).items():
        np.testing.assert_array_equal(keys, images, err_msg=name)


def test_the_permutation_is_a_pure_function_of_seed_and_step():
    key = jax.random.PRNGKey(3)
    first = np.asarray(shuffle_bn.key_permutation(key, 7, BATCH))
    np.testing.assert_array_equal(np.sort(first), np.arange(BATCH))
    np.testing.assert_array_equal(shuffle_bn.key_permutation(key, 7, BATCH), first)
    assert not np.array_equal(shuffle_bn.key_permutation(key, 8, BATCH), first)


def test_local_keys_are_batch_norm_per_device_without_permutation(setup):
    images, variables, encode, _ = setup
    expected = numpy_shuffled_bn_keys(images, variables, np.arange(BATCH), DEVICES)

    def local(x, _, groups, **kwargs):
        return shuffle_bn.local_keys(encode, x, groups, **kwargs)

    for name, keys in run_everywhere(local, images, np.arange(BATCH), DEVICES).items():
        np.testing.assert_allclose(keys, expected, atol=1e-5, rtol=1e-5, err_msg=name)


def test_groups_that_do_not_split_the_batch_are_refused(setup):
    images, _, encode, permutation = setup
    with pytest.raises(ValueError, match="do not split into 3 equal groups; choose config.key_bn_groups"):
        shuffle_bn.shuffled_keys(encode, jnp.asarray(images), permutation, 3)
