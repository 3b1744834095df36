"""SimCLR on a dataset that streams: when it streams, its batches, its evaluation at scale.

A run streams (``rl_repr.data.images.streaming``) when its dataset is a folder
(``folder:DIR``) or a prepared tfds set and ``config.streaming`` says so: ``'on'``, or
``'auto'`` when the training split decoded at ``image_size`` would take more than
``config.stream_above_gb`` per process (ImageNet at 224 px: about 190 GB). Bundled and
generated sets (digits, made-up characters, synthetic) are always in memory.

Streaming changes three things of the run (:func:`streaming_plan`, SimCLR's and MoCo's):

* the batch: ``{'views': [n, 2, S, S, 3], 'id': [n]}``, the two random resized crops cut on
  the host from the full-resolution image, and its index; the step (``rl_repr.simclr.step``,
  ``rl_repr.moco.step``) adds colour, grayscale, blur and flip on the device, as for in-memory
  images;
* the position: the stream is a function of ``(seed, step)``, so a run resumed at step t
  reads what an uninterrupted one reads (:meth:`StreamingInput.batches_from`);
* the evaluation: the encoder output h of both splits (central crops, each process its
  part) becomes a :class:`~rl_repr.evaluation.feature_bank.FeatureBank` sharded over the
  devices, scored by the sharded kNN and by the SGD/LARS linear classifier (top-1 and
  top-5); every phase logs progress.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterator

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core.drivers import local_copy
from rl_repr.core.errors import ConfigError, DataError
from rl_repr.core.log import logger
from rl_repr.core.runner import Finished, Plan
from rl_repr.core.state import TrainState
from rl_repr.data.images import streaming
from rl_repr.data.images.folders import folder_root
from rl_repr.evaluation.feature_bank import FeatureBank, embed_batches, feature_bank
from rl_repr.evaluation.linear_classifier import linear_classifier_accuracy, train_linear_classifier
from rl_repr.evaluation.sharded_knn import sharded_knn_accuracy
from rl_repr.simclr.evaluation import encoder_output

IN_MEMORY_ONLY = ("digits", "synthetic", "characters")


def can_stream(dataset: str) -> bool:
    """Whether ``dataset`` is read from files (a folder or a tfds set) rather than generated."""
    return folder_root(dataset) is not None or dataset.split(":")[0] not in IN_MEMORY_ONLY


def streams(config) -> bool:
    """Whether this run streams its images (module docstring); ``'auto'`` opens the training split."""
    if config.streaming == "off" or not can_stream(config.dataset):
        return False
    if config.streaming == "on":
        return True
    source = streaming.open_source(config.dataset, config.train_split, config.data_dir or None)
    side = config.image_size
    gigabytes = source.num_examples * side * side * 3 / jax.process_count() / 1e9
    return gigabytes > config.stream_above_gb


@flax.struct.dataclass
class StreamingTrainState(TrainState):
    """A streaming run's state: ``data_position``, int32 ``[3]`` = (epoch, batch in the epoch,
    fingerprint of the training split) of the next batch, goes into every checkpoint with it."""

    data_position: jax.Array


@dataclasses.dataclass(frozen=True)
class StreamingInput:
    """The two splits of a streaming run and how they are read."""

    config: Any
    train: streaming.StreamSource
    evaluation: streaming.StreamSource
    settings: streaming.StreamSettings
    fingerprint: int

    @property
    def steps_per_epoch(self) -> int:
        return self.train.steps_per_epoch(self.config.batch_size, jax.process_count())

    def position(self, step: jax.Array) -> jax.Array:
        """``data_position`` before ``step`` (traceable: the step stores it after each update)."""
        per_epoch = self.steps_per_epoch
        return jnp.stack([step // per_epoch, step % per_epoch, jnp.asarray(self.fingerprint, step.dtype)]
                         ).astype(jnp.int32)

    def with_position(self, state: TrainState, state_class: type = StreamingTrainState) -> TrainState:
        """``state`` as ``state_class`` (its fields and ``data_position``) at the position of its step."""
        fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        return state_class(**fields, data_position=self.position(jnp.asarray(state.step)))

    def check_restored(self, state: StreamingTrainState, step: int) -> None:
        """Refuses a checkpoint whose stream is not this run's (another split, batch or process count)."""
        epoch, batch, fingerprint = (int(x) for x in np.asarray(local_copy(state.data_position)))
        where = f"{self.config.dataset!r} split {self.train.split!r}"
        if fingerprint != self.fingerprint:
            raise DataError(f"The checkpoint at step {step} was trained on another version of {where} (its files "
                            "or labels changed since); restore the split as it was, or pass a fresh --workdir.")
        if (epoch, batch) != divmod(step, self.steps_per_epoch):
            raise DataError(f"The checkpoint at step {step} stands at batch {batch} of epoch {epoch} of {where}, "
                            f"but this run would read step {step} as batch {step % self.steps_per_epoch} of epoch "
                            f"{step // self.steps_per_epoch}; rerun with the batch size and process count it was "
                            "trained with, or pass a fresh --workdir.")
        if step:
            logger.info(f"Resuming the stream at batch {batch} of epoch {epoch} ({self.steps_per_epoch} per epoch).")

    def batches_from(self, step: int) -> Iterator[dict[str, np.ndarray]]:
        """This process's rows of the training batches of steps ``step, step + 1, ...``: ``views``
        ``[n, 2, S, S, 3]`` uint8 and ``id`` ``[n]`` int32, each image's index in the split."""
        batches = streaming.train_batches(self.train, self.settings, seed=self.config.seed,
                                          global_batch_size=self.config.batch_size, start_step=step,
                                          process_index=jax.process_index(), process_count=jax.process_count())
        return ({"views": batch["views"], "id": batch["id"].astype(np.int32)} for batch in batches)

    def bank(self, source: streaming.StreamSource, apply: Callable[[np.ndarray], np.ndarray], mesh,
             what: str) -> FeatureBank:
        """Features (``apply`` of the central crops) of every example of ``source``, sharded."""
        batch_size = self.config.eval_batch_size
        count = math.ceil(math.ceil(source.num_examples / jax.process_count()) / batch_size)
        batches = streaming.eval_batches(source, self.settings, batch_size=batch_size,
                                         process_index=jax.process_index(), process_count=jax.process_count())
        features, labels, ids = embed_batches(apply, batches, num_batches=count, what=what)
        return feature_bank(features, labels, ids, mesh, num_examples=source.num_examples)


def open_streaming_input(config) -> StreamingInput:
    """The training and evaluation splits of ``config.dataset`` and the stream settings."""
    if config.image_size <= 0:
        raise ConfigError(f"config.image_size is {config.image_size} but a streamed dataset needs the size its "
                          "crops are resized to; set config.image_size (224 for ImageNet).")
    if tuple(config.finetune_fractions):
        raise ConfigError("config.finetune_fractions needs the training images in memory, and this run streams "
                          "them; drop finetune_fractions or set config.streaming='off'.")
    data_dir = config.data_dir or None
    train = streaming.open_source(config.dataset, config.train_split, data_dir)
    classes = train.folder.class_names if train.folder is not None else None
    evaluation = streaming.open_source(config.dataset, config.eval_split, data_dir, classes)
    augment = config.augment
    settings = streaming.StreamSettings(
        image_size=config.image_size, crop_area=tuple(augment.crop_area), crop_aspect=tuple(augment.crop_aspect),
        workers=config.data_workers, prefetch=config.prefetch_batches, shuffle_buffer=config.shuffle_buffer)
    logger.info(f"Streaming {config.dataset!r}: split {train.split!r} ({train.num_examples} images) for training, "
                f"{evaluation.split!r} ({evaluation.num_examples}) for evaluation, {jax.process_count()} "
                "process(es) each reading its own part.")
    return StreamingInput(config, train, evaluation, settings, train.fingerprint())


def streaming_plan(data: StreamingInput, mesh, random_state: Callable[[], TrainState], total_steps: int,
                   per_device_step, *, state_class: type = StreamingTrainState, state_specs: Any = None) -> Plan:
    """The runner's plan of a run whose images stream (SimCLR's, MoCo's): the stream read from the
    step a run starts at, the checkpoint's position checked on restore, the kNN monitor and the
    final linear probe and kNN on the encoder output h (``random_state()``'s too with
    ``config.baselines``). ``per_device_step`` stores ``data.position`` in the state after each
    update; ``state_class`` is the method's state with a ``data_position`` field."""
    config = data.config

    def h(state):  # the eval-mode encoder output of a batch of images
        return encoder_output(config, state, with_head=False)

    def monitor(state, step):
        del step
        return {"knn_accuracy": streaming_knn(data, h(state), mesh)}

    def final_evaluation(state, finished: Finished) -> dict:
        del finished  # the runner adds the training's wall and CPU seconds
        results = streaming_report(data, h(state), mesh)
        if config.baselines:  # the random-init encoder (raw pixels at full resolution are left out)
            results.update(streaming_report(data, h(random_state()), mesh, "random_init_"))
        results.update(epochs=config.epochs, batch_size=config.batch_size, streamed=True)
        return results

    return Plan(state=data.with_position(random_state(), state_class), per_device_step=per_device_step,
                batch_for_step=lambda step: next(data.batches_from(step)), batches_from=data.batches_from,
                on_restored=data.check_restored, total_steps=total_steps, final_evaluation=final_evaluation,
                monitor=monitor, eval_every=config.eval_every_steps, state_specs=state_specs)


def streaming_knn(data: StreamingInput, apply, mesh) -> float:
    """kNN accuracy of h on the evaluation split, the training features sharded over the devices."""
    train = data.bank(data.train, apply, mesh, f"{data.train.split!r} for kNN")
    test = data.bank(data.evaluation, apply, mesh, f"{data.evaluation.split!r} for kNN")
    return _knn(data, train, test)


def streaming_report(data: StreamingInput, apply, mesh, prefix: str = "") -> dict[str, float]:
    """``{prefix}knn_accuracy`` and the linear classifier's ``{prefix}linear_probe_accuracy`` (top-1)
    and ``{prefix}linear_probe_top5_accuracy``, both on the banks of h."""
    train = data.bank(data.train, apply, mesh, f"{data.train.split!r}")
    test = data.bank(data.evaluation, apply, mesh, f"{data.evaluation.split!r}")
    linear = data.config.linear_eval
    classifier = train_linear_classifier(
        train, num_classes=data.train.num_classes, epochs=linear.epochs,
        batch_size=min(linear.batch_size, _largest_batch(train)), optimizer=linear.optimizer,
        base_lr=linear.base_lr, weight_decay=linear.weight_decay, seed=data.config.seed)
    accuracy = linear_classifier_accuracy(classifier, test)
    return {f"{prefix}linear_probe_accuracy": accuracy["top1"], f"{prefix}linear_probe_top5_accuracy": accuracy["top5"],
            f"{prefix}knn_accuracy": _knn(data, train, test)}


def _knn(data: StreamingInput, train: FeatureBank, test: FeatureBank) -> float:
    k = min(data.config.knn_k, train.num_examples)
    if jax.process_index() == 0:
        logger.info(f"kNN (k={k}): {test.num_examples} images against {train.num_examples} training features "
                    f"sharded over {train.mesh.devices.size} devices.")
    return sharded_knn_accuracy(train, test, k=k, num_classes=data.train.num_classes)


def _largest_batch(bank: FeatureBank) -> int:
    """The largest global batch the bank allows: at most its examples, a multiple of the devices."""
    devices = bank.mesh.devices.size
    return max(devices, bank.num_examples // devices * devices)
