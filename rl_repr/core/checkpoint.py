"""Orbax checkpoints of a training state: save every N steps, resume from the latest.

A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (orbax 0.12) that
fixes the choices a training loop should not have to make:

* the state is any pytree (a flax ``struct.dataclass`` of params, batch_stats,
  opt_state, step, rng; leaves may be jax arrays, typed PRNG keys, NumPy arrays
  or NumPy scalars) saved with ``StandardSave``;
* restoring takes the state *shape* from a target (concrete or abstract) and
  puts each array on the target's sharding, so a state sharded over a mesh comes
  back sharded the same way -- on any number of hosts;
* saves are asynchronous (the training step goes on while files are written)
  and complete after :meth:`Checkpointer.wait` or :meth:`Checkpointer.close`;
* every committed step gets a checksum file (SHA-256 of each of its files,
  ``<step>/rl_repr_checksums.json``), verified before the step is restored;
* a damaged checkpoint is moved aside to ``<directory>.damaged/<step>`` (never deleted)
  and the newest intact one is restored instead, with one log line saying so; nothing is
  ever deleted except by ``max_to_keep`` rotation after a new checkpoint has been written.

What is detected as damage: any file of a step changed, truncated or removed after it was
committed (the checksums; a single flipped byte inside an array file included), and anything
orbax cannot read (missing or garbled metadata, an emptied step). Not detected: damage to a
step committed by a version without checksums (it has no checksum file; such a step is
only checked by reading it), or files changed together with its checksum file. Checksums are
written and verified for a local directory of a single-process run; a multi-host run or a
remote directory (``gs://...``) relies on its storage's own integrity checks.

Layout: ``<directory>/<step>/`` per checkpoint, as orbax writes it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from rl_repr.core.errors import UserError
from rl_repr.core.files import write_json
from rl_repr.core.log import logger

CHECKSUM_FILE = "rl_repr_checksums.json"


class CheckpointRestoreError(UserError, RuntimeError):
    """A checkpoint exists but cannot be read into the target state."""


def abstract_state(target: Any) -> Any:
    """The restore target for orbax: ``jax.ShapeDtypeStruct`` per leaf.

    Jax arrays keep their sharding (so they are restored onto the same devices
    and layout); NumPy arrays, NumPy scalars and Python numbers get no sharding,
    which orbax restores as NumPy arrays. Leaves that already are
    ``ShapeDtypeStruct`` pass through.
    """
    def describe(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return leaf
        if isinstance(leaf, jax.Array):
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
        array = np.asarray(leaf)
        return jax.ShapeDtypeStruct(array.shape, array.dtype)

    return jax.tree.map(describe, target)


def _match_host_types(restored: Any, target: Any) -> Any:
    """Gives restored host leaves the target's Python/NumPy type back.

    Orbax returns NumPy *arrays*; a target leaf that was a NumPy scalar
    (``np.int32(5)``) or a Python number comes back as that type, so the
    restored state has the same pytree leaves' types as a fresh one.
    """
    def convert(new, old):
        if isinstance(old, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)):
            return new
        if isinstance(old, np.generic):
            return np.asarray(new, dtype=old.dtype)[()]
        if isinstance(old, (bool, int, float, complex)):
            return type(old)(np.asarray(new).item())
        return new

    return jax.tree.map(convert, restored, target)


def _stored_shape(leaf: jax.ShapeDtypeStruct) -> tuple[int, ...]:
    """The shape orbax stores for a leaf (a typed PRNG key is stored as its raw key data)."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
    return tuple(leaf.shape)


class Checkpointer:
    """Saves a training state every ``save_every_steps`` steps and restores the latest.

    Example::

        checkpointer = Checkpointer(workdir / "checkpoints", save_every_steps=1000)
        state, start_step = checkpointer.restore_latest(state)
        for step in range(start_step + 1, total_steps + 1):
            state = train_step(state, batch)
            checkpointer.maybe_save(step, state, force=step == total_steps)
            if checkpointer.reached_preemption(step):
                break  # saved above (orbax saves at a preemption notice); rerun to resume
        checkpointer.close()

    All processes of a multi-host run must make the same calls (orbax
    coordinates the writes; each process writes its own shards).
    """

    def __init__(self, directory: str | os.PathLike, *, save_every_steps: int,
                 max_to_keep: int = 3, asynchronous: bool = True) -> None:
        """Opens (creating if needed) the checkpoint directory.

        Args:
          directory: where the ``<step>/`` subdirectories live.
          save_every_steps: ``maybe_save`` writes when ``step % save_every_steps == 0``.
          max_to_keep: newest checkpoints kept; older ones are removed after a
            newer one is committed. None keeps all.
          asynchronous: write in a background thread (arrays are copied to host
            first, so the caller may donate the state's buffers right away).

        Raises:
          ValueError: ``save_every_steps <= 0`` or ``max_to_keep <= 0``.
        """
        if isinstance(save_every_steps, bool) or not isinstance(save_every_steps, int) \
                or save_every_steps <= 0:
            raise ValueError(f"save_every_steps must be a positive integer (steps between "
                             f"checkpoints), got {save_every_steps!r}.")
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(f"max_to_keep must be positive or None (keep all), got {max_to_keep!r}.")
        self.directory = os.path.abspath(os.fspath(directory))
        self.save_every_steps = save_every_steps
        # orbax makes the save decision: every save_every_steps steps, or at a preemption notice
        # (no save just for being the first call, orbax's default InitialSavePolicy).
        policy = ocp.checkpoint_managers.AnySavePolicy([
            ocp.checkpoint_managers.FixedIntervalPolicy(save_every_steps),
            ocp.checkpoint_managers.PreemptionCheckpointingPolicy()])
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, save_decision_policy=policy,
            enable_async_checkpointing=asynchronous, create=True)
        # The explicit handler lets item_metadata() read stored shapes for error messages.
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler())
        self._checksummed: set[int] = set()

    def maybe_save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves ``state`` as checkpoint ``step`` if it is due; returns whether it did.

        Due means ``step % save_every_steps == 0``, ``force``, or a preemption notice
        (:meth:`reached_preemption`), orbax's decision. A step that already has a checkpoint
        is not written again (e.g. the last periodic save and the forced final save at the
        same step).
        """
        step = int(step)
        if step in self._manager.all_steps():
            return False
        self._record_checksums()  # of the steps committed so far (saves are asynchronous)
        return bool(self._manager.save(step, args=ocp.args.StandardSave(state), force=force))

    def reached_preemption(self, step: int) -> bool:
        """True when the cluster has announced a preemption and all processes reached ``step``.

        Uses JAX's preemption sync point (active under ``jax.distributed`` on
        TPU/GPU clusters that send SIGTERM before preempting); always False in a
        single process. The loop should save (``maybe_save`` does) and then exit.
        Every process must call it at the same steps.
        """
        return bool(self._manager.reached_preemption(int(step)))

    def latest_step(self) -> int | None:
        """The newest committed checkpoint step, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All committed checkpoint steps, oldest first."""
        return sorted(self._manager.all_steps())

    def restore_latest(self, target: Any) -> tuple[Any, int]:
        """``(state, step)`` from the newest intact checkpoint, or ``(target, 0)`` if there is none.

        A damaged step (its checksums do not match, or orbax cannot read it) is moved aside to
        ``<directory>.damaged/<step>`` and the next newest is tried, with one log line each; when
        every step is damaged the run starts over from ``target`` (nothing is deleted).

        Args:
          target: a state with the structure, shapes and dtypes to restore
            into -- concrete arrays or ``jax.ShapeDtypeStruct`` leaves. Each jax
            array is restored with the target leaf's sharding (so pass the
            freshly initialised, already sharded state).

        Raises:
          CheckpointRestoreError: the newest checkpoint does not match ``target`` in paths
            or shapes (written for a different model or optimizer config; the message names
            the first difference). A mismatch is not damage: nothing is moved.
        """
        self.wait()  # A save still in flight would be read half-written.
        while (step := self.latest_step()) is not None:
            path = os.path.join(self.directory, str(step))
            problem = self._checksum_problem(step)
            if problem is None:
                try:
                    restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state(target)))
                    return _match_host_types(restored, target), step
                except Exception as error:  # Orbax/tensorstore raise many types; all end up here.
                    mismatch = self._describe_mismatch(step, target)
                    if mismatch is not None:
                        raise CheckpointRestoreError(
                            f"checkpoint {path} was written for a different model/optimizer config "
                            f"({mismatch}); rerun with the config it was trained with, or pass a "
                            f"fresh --workdir to start over.") from error
                    text = str(error).strip()
                    problem = f"{type(error).__name__}: {text.splitlines()[0][:200] if text else 'no message'}"
            self._move_aside(step, problem)
        return target, 0

    def _move_aside(self, step: int, problem: str) -> None:
        """Moves a damaged step to ``<directory>.damaged/<step>[-<time>]`` and says so."""
        source = os.path.join(self.directory, str(step))
        destination = os.path.join(f"{self.directory}.damaged", str(step))
        if os.path.exists(destination):
            destination += time.strftime("-%Y%m%d-%H%M%S")
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.move(source, destination)
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(f"rl_repr_move_aside_{step}")
        self._manager.reload()
        older = self.latest_step()
        then = f"resuming from the checkpoint at step {older}" if older is not None else "starting over"
        logger.warning(f"Checkpoint {source} is damaged ({problem}); moved it to {destination} and {then}.")

    # ----------------------------------------------------------------- checksums
    def _local(self) -> bool:
        return "://" not in self.directory and jax.process_count() == 1

    def _record_checksums(self) -> None:
        """Writes the checksum file of every committed step that has none yet (none while a save
        is in flight: its step is not committed)."""
        if not self._local() or self._manager.is_saving_in_progress():
            return
        for step in self._manager.all_steps():
            if step not in self._checksummed:
                step_dir = os.path.join(self.directory, str(step))
                if not os.path.exists(os.path.join(step_dir, CHECKSUM_FILE)):
                    write_json(os.path.join(step_dir, CHECKSUM_FILE), _file_digests(step_dir))
                self._checksummed.add(step)

    def _checksum_problem(self, step: int) -> str | None:
        """Why ``step``'s files do not match its checksum file, or None (also without one)."""
        step_dir = os.path.join(self.directory, str(step))
        path = os.path.join(step_dir, CHECKSUM_FILE)
        if not self._local() or not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                expected = json.load(f)
        except (OSError, ValueError):
            return f"its checksum file {path} is unreadable"
        actual = _file_digests(step_dir)
        changed = sorted(name for name, digest in expected.items() if actual.get(name) != digest)
        if changed:
            return f"{len(changed)} file(s) differ from their checksums, e.g. {changed[0]}"
        return None

    def _describe_mismatch(self, step: int, target: Any) -> str | None:
        """How the stored tree differs from ``target`` in paths or shapes; None if it does not
        (or if the stored metadata itself is unreadable, i.e. the checkpoint is damaged)."""
        try:
            stored = ocp.tree.to_flat_dict(self._manager.item_metadata(step).tree)
            stored = {key: tuple(meta.shape) for key, meta in stored.items()}
        except Exception:  # Unreadable metadata: damaged, not mismatched.
            return None
        wanted = {key: _stored_shape(leaf)
                  for key, leaf in ocp.tree.to_flat_dict(abstract_state(target)).items()}
        differences = [f"{'/'.join(map(str, key))} is missing there" for key in wanted
                       if key not in stored]
        differences += [f"{'/'.join(map(str, key))} is not in the current state" for key in stored
                        if key not in wanted]
        differences += [f"{'/'.join(map(str, key))} has shape {stored[key]} there but "
                        f"{shape} now" for key, shape in wanted.items()
                        if key in stored and stored[key] != shape]
        if not differences:
            return None
        more = f" and {len(differences) - 1} more difference(s)" if len(differences) > 1 else ""
        return differences[0] + more

    def wait(self) -> None:
        """Blocks until every started save is committed to disk (and checksummed)."""
        self._manager.wait_until_finished()
        self._record_checksums()

    def close(self) -> None:
        """Waits for pending saves and releases orbax's resources."""
        try:
            self.wait()
        finally:
            self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _file_digests(step_dir: str) -> dict[str, str]:
    """SHA-256 of every file under ``step_dir`` but the checksum file, by relative path."""
    digests = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, step_dir)
            if relative != CHECKSUM_FILE:
                with open(path, "rb") as f:
                    digests[relative] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests
