"""Tests for rl_repr.core.checkpoint: round trips, rotation, shardings, damaged checkpoints, checksums."""
import glob
import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from rl_repr.core import checkpoint, optim
from rl_repr.core import mesh as parallel

# After a failed tensorstore read (the damaged-checkpoint tests), a late callback hits
# orbax's already-closed asyncio loop and pytest reports it, at garbage-collection time,
# as an unraisable exception in whichever test runs then. It is orbax-internal noise.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@struct.dataclass
class TrainState:
    params: dict
    batch_stats: dict
    opt_state: optax.OptState
    step: np.int32
    rng: jax.Array


def _state(seed: int = 0, step: int = 0) -> TrainState:
    rng = np.random.default_rng(seed)
    params = {"encoder": {"conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 1, 8)), jnp.float32)},
                          "bn": {"scale": jnp.ones(8), "bias": jnp.asarray(rng.normal(size=8), jnp.float32)}},
              "head": {"kernel": jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)}}
    tx = optim.lars(0.1, weight_decay=1e-4)
    opt_state = tx.init(params)
    # Non-zero momentum so the optimizer state round trip is checked for real.
    opt_state = jax.tree.map(lambda x: x + 0.5 if isinstance(x, jax.Array) else x, opt_state)
    return TrainState(params=params,
                      batch_stats={"encoder": {"bn": {"mean": jnp.asarray(rng.normal(size=8), jnp.float32),
                                                      "var": jnp.ones(8)}}},
                      opt_state=opt_state, step=np.int32(step),
                      rng=jax.random.key(seed))


def _assert_states_equal(actual, expected):
    assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert type(a) is type(e) or (isinstance(a, jax.Array) and isinstance(e, jax.Array))
        if isinstance(e, jax.Array) and jax.dtypes.issubdtype(e.dtype, jax.dtypes.prng_key):
            a, e = jax.random.key_data(a), jax.random.key_data(e)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_round_trip(tmp_path):
    state = _state(seed=1, step=7)
    with checkpoint.Checkpointer(tmp_path, save_every_steps=7) as checkpointer:
        assert checkpointer.maybe_save(7, state)
    with checkpoint.Checkpointer(tmp_path, save_every_steps=7) as checkpointer:
        restored, step = checkpointer.restore_latest(_state(seed=2))
    assert step == 7
    _assert_states_equal(restored, state)
    assert isinstance(restored.step, np.int32) and restored.step == 7
    assert jax.dtypes.issubdtype(restored.rng.dtype, jax.dtypes.prng_key)


def test_no_checkpoint_returns_target_and_step_zero(tmp_path):
    target = _state()
    checkpointer = checkpoint.Checkpointer(tmp_path / "fresh", save_every_steps=5)
    restored, step = checkpointer.restore_latest(target)
    assert restored is target and step == 0 and checkpointer.latest_step() is None
    checkpointer.close()


def test_cadence_latest_and_max_to_keep(tmp_path):
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every_steps=3, max_to_keep=2)
    saved = [step for step in range(1, 11)
             if checkpointer.maybe_save(step, _state(seed=step, step=step), force=step == 10)]
    assert saved == [3, 6, 9, 10]
    assert not checkpointer.maybe_save(10, _state(), force=True)  # already written
    checkpointer.wait()
    assert checkpointer.all_steps() == [9, 10] and checkpointer.latest_step() == 10
    assert sorted(os.listdir(tmp_path)) == ["10", "9"]
    restored, step = checkpointer.restore_latest(_state())
    assert step == 10
    _assert_states_equal(restored, _state(seed=10, step=10))
    checkpointer.close()


def test_sharded_state_restores_with_target_shardings(tmp_path):
    mesh = parallel.make_mesh()
    data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    rows = jnp.arange(16 * 4, dtype=jnp.float32).reshape(16, 4)
    state = {"sharded": jax.device_put(rows, data), "replicated": jax.device_put(rows[0], replicated),
             "step": np.int64(3)}
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as checkpointer:
        checkpointer.maybe_save(3, state)

    # Same shardings as saved.
    target = jax.tree.map(jnp.zeros_like, {k: v for k, v in state.items() if k != "step"})
    target["step"] = np.int64(0)
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as checkpointer:
        restored, step = checkpointer.restore_latest(target)
    assert step == 3
    assert restored["sharded"].sharding == data and restored["replicated"].sharding == replicated
    np.testing.assert_array_equal(restored["sharded"], rows)
    for shard in restored["sharded"].addressable_shards:
        assert shard.data.shape == (2, 4)

    # Abstract target with different shardings: the restored arrays take the target's.
    abstract = {"sharded": jax.ShapeDtypeStruct((16, 4), jnp.float32, sharding=replicated),
                "replicated": jax.ShapeDtypeStruct((4,), jnp.float32,
                                                   sharding=NamedSharding(parallel.make_mesh(4), P())),
                "step": np.int64(0)}
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as checkpointer:
        restored, _ = checkpointer.restore_latest(abstract)
    assert restored["sharded"].sharding == replicated
    assert len(restored["replicated"].sharding.device_set) == 4
    np.testing.assert_array_equal(restored["sharded"], rows)
    chex.assert_trees_all_equal(restored["replicated"], rows[0])


def _corrupt_array_files(step_dir):
    files = [f for f in glob.glob(os.path.join(step_dir, "**", "*"), recursive=True)
             if os.path.isfile(f) and f"{os.sep}d{os.sep}" in f]
    assert files, "expected orbax array data files under <step>/.../d/"
    for f in files:
        with open(f, "wb") as handle:
            handle.write(b"garbage")


@pytest.mark.parametrize("damage", ["truncated_arrays", "garbage_metadata", "empty_step_dir", "flipped_byte"])
def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, damage, caplog):
    directory = tmp_path / "checkpoints"
    with checkpoint.Checkpointer(directory, save_every_steps=1) as checkpointer:
        checkpointer.maybe_save(1, _state(seed=1, step=1))
        checkpointer.maybe_save(2, _state(seed=2, step=2))
    latest = os.path.join(directory, "2")
    if damage == "truncated_arrays":
        _corrupt_array_files(latest)
    elif damage == "garbage_metadata":
        for f in glob.glob(os.path.join(latest, "**", "_METADATA"), recursive=True):
            with open(f, "w") as handle:
                handle.write("{not json")
    elif damage == "empty_step_dir":
        shutil.rmtree(latest)
        os.makedirs(latest)
    else:  # one byte inside an array file: orbax would restore it silently; the checksums catch it
        data = max((f for f in glob.glob(os.path.join(latest, "**", "*"), recursive=True)
                    if os.path.isfile(f) and f"{os.sep}d{os.sep}" in f), key=os.path.getsize)
        with open(data, "r+b") as handle:
            handle.seek(os.path.getsize(data) // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x01]))

    with checkpoint.Checkpointer(directory, save_every_steps=1) as checkpointer:
        restored, step = checkpointer.restore_latest(_state())
    assert step == 1
    _assert_states_equal(restored, _state(seed=1, step=1))
    assert sorted(os.listdir(directory)) == ["1"]
    assert os.listdir(str(directory) + ".damaged") == ["2"]  # moved aside, not deleted
    [line] = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert line.startswith(f"Checkpoint {latest} is damaged (") and "resuming from the checkpoint at step 1" in line


def test_every_step_damaged_starts_over_and_keeps_them(tmp_path):
    directory = tmp_path / "checkpoints"
    with checkpoint.Checkpointer(directory, save_every_steps=1) as checkpointer:
        checkpointer.maybe_save(1, _state(seed=1, step=1))
    _corrupt_array_files(os.path.join(directory, "1"))
    with checkpoint.Checkpointer(directory, save_every_steps=1) as checkpointer:
        restored, step = checkpointer.restore_latest(_state(seed=3))
    assert step == 0
    _assert_states_equal(restored, _state(seed=3))
    assert os.listdir(str(directory) + ".damaged") == ["1"]


@pytest.mark.parametrize("target, difference", [
    ({"w": jnp.ones((8, 4)), "b": jnp.ones(2)}, "w has shape (4, 4) there but (8, 4) now"),
    ({"w": jnp.ones((4, 4)), "b": jnp.ones(2), "extra": jnp.ones(3)}, "extra is missing there"),
])
def test_config_mismatch_is_reported_without_advising_deletion(tmp_path, target, difference):
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as checkpointer:
        checkpointer.maybe_save(1, {"w": jnp.ones((4, 4)), "b": jnp.ones(2)})
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as checkpointer:
        with pytest.raises(checkpoint.CheckpointRestoreError) as error:
            checkpointer.restore_latest(target)
    path = os.path.join(tmp_path, "1")
    assert str(error.value) == (
        f"checkpoint {path} was written for a different model/optimizer config ({difference}); "
        "rerun with the config it was trained with, or pass a fresh --workdir to start over.")


@pytest.mark.parametrize("every", [0, -5, 2.5])
def test_invalid_save_every_steps(tmp_path, every):
    with pytest.raises(ValueError, match=r"save_every_steps must be a positive integer.*got"):
        checkpoint.Checkpointer(tmp_path, save_every_steps=every)


def test_async_save_survives_donation_and_is_complete_after_wait(tmp_path):
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every_steps=1)
    weights = jnp.arange(100_000.0)
    checkpointer.maybe_save(1, {"w": weights})
    weights.delete()  # what a jitted step with donated state does right after the save call
    checkpointer.wait()
    assert os.path.isdir(tmp_path / "1") and checkpointer.all_steps() == [1]
    # A fresh reader (as after a crash right after wait) sees the finished checkpoint.
    with checkpoint.Checkpointer(tmp_path, save_every_steps=1) as reader:
        restored, step = reader.restore_latest({"w": jnp.zeros(100_000)})
    assert step == 1
    np.testing.assert_array_equal(restored["w"], np.arange(100_000.0))
    checkpointer.close()
