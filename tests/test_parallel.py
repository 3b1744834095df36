"""Tests for the mesh and the drivers (rl_repr.core.mesh, .drivers) on the 8 fake CPU devices.

Every sharded result is compared with the same computation on one device.
"""
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

from rl_repr.core import mesh as parallel
from rl_repr.core.drivers import Driver
from compilation import xla_flags


# ------------------------------------------------------------------ mesh and shardings

def test_make_mesh_spans_all_devices_with_auto_axis():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == jax.device_count() == 8
    assert mesh.axis_types == (AxisType.Auto,)
    assert set(mesh.devices.flat) == set(jax.devices())


def test_make_mesh_subset_and_errors():
    assert parallel.make_mesh(4, axis_name="batch").shape == {"batch": 4}
    with pytest.raises(ValueError, match="16 devices but only 8 are available.*device_count=16"):
        parallel.make_mesh(16)
    with pytest.raises(ValueError, match="positive"):
        parallel.make_mesh(0)


def test_data_and_replicated_shardings_place_rows():
    mesh = parallel.make_mesh()
    driver = Driver("jit", mesh)
    x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    sharded = driver.put_batch({"x": x})["x"]
    for shard in sharded.addressable_shards:
        row = list(mesh.devices.flat).index(shard.device)
        np.testing.assert_array_equal(np.asarray(shard.data), x[2 * row:2 * row + 2])
    replicated = driver.put_state(x)
    assert len(replicated.addressable_shards) == 8
    for shard in replicated.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), x)


@pytest.mark.parametrize("batch, message", [
    (100, "batch size 100 does not divide across 8 devices; use a multiple of 8 (e.g. 96 or 104)."),
    (4, "batch size 4 does not divide across 8 devices; use a multiple of 8 (e.g. 8)."),
])
def test_check_batch_divisible(batch, message):
    mesh = parallel.make_mesh()
    parallel.check_batch_divisible(64, mesh)
    with pytest.raises(ValueError) as error:
        parallel.check_batch_divisible(batch, mesh)
    assert str(error.value) == message


# ------------------------------------------------------------------ shard_map gradients

def _global_loss(w, x):
    """A loss whose per-example terms see the whole batch, like a contrastive loss."""
    z = x * w
    return jnp.sum(jnp.tanh(z @ z.T))


def _per_device_loss(w, x_local):
    z = x_local * w
    z_all = jax.lax.all_gather(z, "data", tiled=True)
    return jnp.sum(jnp.tanh(z @ z_all.T))


def _data():
    w = jnp.array([1.0, -2.0, 0.5])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)), jnp.float32)
    return w, x


def _shard_map(f, mesh, in_specs, out_specs, check_vma=False):
    return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)


def test_shard_map_psum_matches_numpy():
    mesh = parallel.make_mesh()
    x = np.arange(16, dtype=np.float32)
    total = jax.jit(_shard_map(lambda v: jax.lax.psum(v.sum(), "data"), mesh,
                               in_specs=P("data"), out_specs=P()))(x)
    assert float(total) == x.sum()


def test_shard_map_gradient_has_pmap_semantics_without_check_vma():
    mesh = parallel.make_mesh()
    w, x = _data()
    expected = jax.grad(_global_loss)(w, x)

    def step(w, x_local):  # pmap style: per-device gradient, then psum.
        return jax.lax.psum(jax.grad(_per_device_loss)(w, x_local), "data")

    sharded = jax.jit(_shard_map(step, mesh, in_specs=(P(), P("data")), out_specs=P()))(w, x)
    np.testing.assert_allclose(sharded, expected, rtol=1e-5)
    pmapped = jax.pmap(step, axis_name="data", in_axes=(None, 0))(
        w, Driver("pmap", mesh).put_batch({"x": np.asarray(x)})["x"])
    np.testing.assert_allclose(pmapped[0], expected, rtol=1e-5)


def test_shard_map_with_check_vma_sums_replicated_gradients_itself():
    mesh = parallel.make_mesh()
    w, x = _data()
    expected = jax.grad(_global_loss)(w, x)
    grad = jax.jit(_shard_map(jax.grad(_per_device_loss), mesh, in_specs=(P(), P("data")), out_specs=P(),
                              check_vma=True))(w, x)
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


# ------------------------------------------------------------------ the pmap driver's placement

def test_pmap_driver_state_round_trip():
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.array(3)}
    driver = Driver("pmap", parallel.make_mesh())
    replicated = driver.put_state(tree)
    assert replicated["w"].shape == (8, 2, 3) and replicated["step"].shape == (8,)
    devices = {shard.device for shard in replicated["w"].addressable_shards}
    assert devices == set(jax.local_devices())
    for shard in replicated["w"].addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data)[0], tree["w"])
    back = driver.get_state(replicated)
    np.testing.assert_array_equal(back["w"], tree["w"])
    assert int(back["step"]) == 3


def test_pmap_over_replicated_state_matches_single_device():
    w, x = _data()
    expected = jax.grad(_global_loss)(w, x)
    driver = Driver("pmap", parallel.make_mesh())
    step = jax.pmap(lambda w, xl: jax.lax.psum(jax.grad(_per_device_loss)(w, xl), "data"),
                    axis_name="data")
    grads = step(driver.put_state(w), driver.put_batch({"x": np.asarray(x)})["x"])
    np.testing.assert_allclose(driver.get_state(grads), expected, rtol=1e-5)
    np.testing.assert_allclose(grads, np.broadcast_to(expected, (8, 3)), rtol=1e-5)


def test_pmap_batches_use_the_same_split_as_the_jit_driver():
    mesh = parallel.make_mesh()
    batch = {"image": np.arange(16 * 2).reshape(16, 2), "label": np.arange(16)}
    split = Driver("pmap", mesh).put_batch(batch)
    assert split["image"].shape == (8, 2, 2) and split["label"].shape == (8, 2)
    sharded = Driver("jit", mesh).put_batch(batch)["label"]
    devices = list(mesh.devices.flat)
    for shard in sharded.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), split["label"][devices.index(shard.device)])
    with pytest.raises(ValueError, match="runs on all 8 local devices.*num_devices at 0"):
        Driver("pmap", parallel.make_mesh(4))


# ------------------------------------------------------------------ multi-host

def test_maybe_initialize_distributed_is_a_no_op_without_settings():
    assert parallel.maybe_initialize_distributed(ml_collections.ConfigDict({"batch_size": 8})) is False
    config = ml_collections.ConfigDict({"distributed": {"coordinator_address": ""}})
    assert parallel.maybe_initialize_distributed(config) is False
    assert not jax.distributed.is_initialized()


_WORKER = textwrap.dedent("""
    import sys
    import ml_collections
    from rl_repr.core import mesh as parallel

    process_id, port = int(sys.argv[1]), sys.argv[2]
    config = ml_collections.ConfigDict({"distributed": {
        "coordinator_address": f"127.0.0.1:{port}", "num_processes": 2,
        "process_id": process_id, "local_device_ids": None}})
    assert parallel.maybe_initialize_distributed(config)
    assert parallel.maybe_initialize_distributed(config)  # idempotent

    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
    mesh = parallel.make_mesh()
    local = np.arange(4 * 2, dtype=np.float32).reshape(4, 2) + 8 * process_id  # rows of 0..15
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local)
    psum = jax.jit(jax.shard_map(lambda v: jax.lax.psum(v.sum(), "data"), mesh=mesh,
                                 in_specs=P("data"), out_specs=P(), check_vma=False))(x)
    jit_sum = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    print("RESULT", process_id, float(psum.addressable_data(0)), float(jit_sum.addressable_data(0)))
    jax.distributed.shutdown()
""")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_psum(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=xla_flags(4))
    port = _free_port()
    # Files, not pipes: a worker blocked on a full pipe would stall its peer's collectives.
    logs = [(open(tmp_path / f"out{i}", "w+"), open(tmp_path / f"err{i}", "w+")) for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(i), str(port)], env=env,
                                stdout=out, stderr=err, text=True)
               for i, (out, err) in enumerate(logs)]
    try:
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    expected = float(np.arange(16).sum())  # 120
    for process_id, (code, (out, err)) in enumerate(zip(codes, logs)):
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
        assert code == 0, stderr[-2000:]
        assert f"RESULT {process_id} {expected} {expected}" in stdout, stdout + stderr[-2000:]
