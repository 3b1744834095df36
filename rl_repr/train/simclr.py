"""SimCLR pretraining (Chen et al. 2020): the main job of rl_repr.

Story of a run: build the mesh -> load the data -> build encoder f and head g ->
initialise the state -> compile one per-device step under the configured driver ->
loop (shared ``train_loop``: logging, kNN monitor, checkpoints) -> evaluate the frozen
representation h = f(x) with a linear probe and kNN, next to baselines, and write
``<workdir>/results.json``.

One step, per device (``axis_name`` set) or on the global batch (``axis_name=None``):
  two augmented views of each image, drawn on device with a key per *global* example
  index (so every driver and device count sees the same views) -> both views through f
  and g in one batch (batch norm statistics over both views, over all devices when
  ``global_bn``) -> NT-Xent with negatives from every device -> gradients (``pmean``
  across devices) -> LARS.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl_repr import checkpoint, config_utils, evaluate, losses, optim, parallel
from rl_repr.data import augment as augment_lib
from rl_repr.models import ProjectionHead, ResNet
from rl_repr.train import finetune, gradient_cache, image_data, results_io
from rl_repr.train.drivers import Driver, local_copy, sum_gradients  # noqa: F401 (local_copy re-exported)
from rl_repr.train.loop import LoopConfig, train_loop
from rl_repr.train.metrics import MetricsWriter
from rl_repr.train.simclr_config import validate_simclr_config
from rl_repr.train.state import TrainState


# ============================================================================ model
class SimCLRModel(nn.Module):
    """Encoder f (a ResNet returning the pooled h) followed by projection head g.

    ``__call__(x, train) -> (h, z, head_layers)``: h [N, feature_dim], z [N, output_dim]
    and the outputs of every head layer (h first) for fine-tuning from a middle layer.
    """

    encoder: nn.Module
    head: nn.Module

    def __call__(self, x, train: bool):
        h = self.encoder(x, train=train)
        z, layers = self.head(h, train=train)
        return h, z, layers


def _explicit_conv_gradients(config: ml_collections.ConfigDict) -> bool:
    """``model.explicit_conv_gradients``: 'auto' turns them on for representation caching
    on a CPU, the one place measured to need them (``benchmarks/large_batch.py``)."""
    choice = config.model.explicit_conv_gradients
    if choice == "auto":
        return bool(config.gradient_cache_chunks) and jax.default_backend() == "cpu"
    return choice == "on"


def build_model(config: ml_collections.ConfigDict, bn_axis_name: str | None) -> SimCLRModel:
    dtype = jnp.bfloat16 if config.compute_dtype == "bfloat16" else jnp.float32
    m = config.model
    encoder = ResNet(depth=m.depth, num_classes=None, width_multiplier=m.width_multiplier,
                     small_image_stem=m.small_image_stem, norm=m.norm, residual=m.residual,
                     zero_init_last_norm=m.zero_init_last_norm, dtype=dtype,
                     bn_axis_name=bn_axis_name, num_groups=m.num_groups,
                     explicit_conv_gradients=_explicit_conv_gradients(config))
    head = ProjectionHead(num_layers=config.head.num_layers, hidden_dim=config.head.hidden_dim or None,
                          output_dim=config.head.output_dim, use_norm=config.head.norm != "none",
                          norm="batch" if config.head.norm == "none" else config.head.norm,
                          dtype=dtype, bn_axis_name=bn_axis_name)
    return SimCLRModel(encoder=encoder, head=head)


# ============================================================================ step
def make_per_device_step(config, optimizer, schedule, augment_config, base_key):
    """The SimCLR update as a per-device program (see ``rl_repr.train.drivers``)."""

    def per_device_step(state: TrainState, batch: dict, axis_name: str | None):
        bn_axis = axis_name if config.global_bn else None
        model = build_model(config, bn_axis)
        images = batch["image"]
        n = images.shape[0]
        offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        step_key = jax.random.fold_in(base_key, state.step)
        keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(step_key, i)))(offset + jnp.arange(n))
        augment = jax.vmap(functools.partial(augment_lib.augment_image, config=augment_config))
        pixels = images.astype(jnp.float32) / 255.0
        views = jnp.concatenate([augment(keys[:, 0], pixels), augment(keys[:, 1], pixels)])

        def embed(params, x):  # -> (z, updated batch_stats; {} for a model without batch norm)
            (_, z, _), updates = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                             train=True, mutable=["batch_stats"])
            return z, updates.get("batch_stats", {})

        def contrastive_loss(z1, z2):
            return losses.nt_xent(z1, z2, config.temperature, axis_name=axis_name,
                                  chunk_size=config.loss_chunk_size or None)

        def loss_fn(params):
            z, batch_stats = embed(params, views)
            return contrastive_loss(z[:n], z[n:]), batch_stats

        if config.gradient_cache_chunks:  # representation caching: activations of one chunk
            loss, batch_stats, grads = gradient_cache.two_view_value_and_grad(
                embed, contrastive_loss, state.params, views[:n], views[n:], config.gradient_cache_chunks)
        else:
            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None:
            if not config.global_bn:  # keep one copy of the running statistics
                batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        return new_state, {"loss": loss, "learning_rate": schedule(state.step)}

    return per_device_step


# ============================================================================ run
@dataclasses.dataclass
class SimCLRRun:
    """Everything a run needs before its first step (tests drive steps through this too)."""

    config: ml_collections.ConfigDict
    train_set: Any
    test_set: Any
    driver: Driver
    state: TrainState            # initial global state (the restore target)
    step_fn: Callable            # compiled (placed_state, placed_batch) -> (placed_state, metrics)
    total_steps: int
    init_key: jax.Array

    def batch_for_step(self, step: int) -> dict:
        rows = image_data.process_rows(self.config.seed, step, self.train_set.num_examples,
                                       self.config.batch_size,
                                       process_shard=image_data.is_process_shard(self.config))
        return self.driver.put_batch({"image": self.train_set.images[rows]})


def build_run(config: ml_collections.ConfigDict) -> SimCLRRun:
    """Validates the config, builds the mesh, data, model, optimizer and compiled step."""
    validate_simclr_config(config)
    parallel.maybe_initialize_distributed(config)
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_divisible(config.batch_size, mesh)
    train_set, test_set = image_data.load_train_test(config)
    steps_per_epoch = image_data.global_steps_per_epoch(config, train_set)
    if steps_per_epoch == 0:
        raise ValueError(f"config.batch_size={config.batch_size} exceeds the {train_set.num_examples} "
                         "training images; use a smaller batch size.")
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    augment_config = augment_lib.AugmentConfig(**config.augment.to_dict())
    optimizer, schedule = optim.make_optimizer(_optimizer_config(config, total_steps, warmup_steps))
    # Parameter init uses the 'rbg' generator: XLA compiles ResNet init ~7x faster than with
    # threefry on CPU, and init runs once on one device, so sharding invariance is moot. The
    # augmentation keys stay threefry, whose draws do not depend on how the batch is sharded.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    state = init_state(config, optimizer, init_key, train_set.image_shape)
    driver = Driver(config.parallel, mesh)
    step_fn = driver.compile_step(make_per_device_step(config, optimizer, schedule, augment_config, base_key))
    return SimCLRRun(config, train_set, test_set, driver, state, step_fn, total_steps, init_key)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_step: int | None = None) -> dict:
    """Pretrains SimCLR as configured, evaluates it, and returns (and writes) the results.

    ``stop_after_step`` ends the process's work early with a checkpoint, as a preempted job
    would; rerunning with the same ``workdir`` resumes (used by the resume test).
    """
    run = build_run(config)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        config_utils.config_to_json(config, os.path.join(workdir, "config.json"))
    train_set, test_set = run.train_set, run.test_set

    def knn_monitor(global_state, step):
        features = _features(config, global_state, (train_set, test_set))
        return {"knn_accuracy": evaluate.knn_accuracy(features[0]["h"], train_set.labels, features[1]["h"],
                                                      test_set.labels, k=config.knn_k)}

    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                   save_every_steps=config.checkpoint_every_steps)
    writer = MetricsWriter(workdir)
    loop = LoopConfig(total_steps=run.total_steps, log_every=config.log_every_steps,
                      eval_every=config.eval_every_steps, stop_after=stop_after_step)
    start = time.perf_counter()
    state, step = train_loop(state=run.state, driver=run.driver, step_fn=run.step_fn,
                             batch_for_step=run.batch_for_step, loop=loop, checkpointer=ckpt,
                             writer=writer, evaluate=knn_monitor)
    ckpt.close()
    if step < run.total_steps:  # stopped early (preemption): evaluate on the next run
        writer.close()
        return {"stopped_at_step": step}

    train_seconds = time.perf_counter() - start  # this process's share when resumed
    results = final_evaluation(config, state, run.init_key, train_set, test_set)
    results.update(steps=run.total_steps, epochs=config.epochs, batch_size=config.batch_size,
                   train_seconds=round(train_seconds, 1), devices=jax.device_count())
    writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    writer.close()
    results_io.write_results(workdir, results)
    return results


def _optimizer_config(config, total_steps: int, warmup_steps: int) -> ml_collections.ConfigDict:
    """The fields ``optim.make_optimizer`` reads, with the step counts derived from epochs."""
    keys = ("optimizer", "base_lr", "lr_scaling", "batch_size", "weight_decay", "momentum")
    return ml_collections.ConfigDict({**{k: config[k] for k in keys},
                                      "total_steps": total_steps, "warmup_steps": warmup_steps})


def init_state(config, optimizer, key, image_shape) -> TrainState:
    model = build_model(config, bn_axis_name=None)
    variables = jax.jit(functools.partial(model.init, train=False))(key, jnp.zeros((2, *image_shape)))
    return TrainState.create(variables["params"], variables.get("batch_stats", {}), optimizer)


# ============================================================================ evaluation
def _features(config, state: TrainState, datasets) -> list[dict[str, np.ndarray]]:
    """h (and g(h) when asked) of each dataset, eval-mode batch norm, on this process."""
    model = build_model(config, bn_axis_name=None)
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})

    @jax.jit
    def apply(images):
        h, z, _ = model.apply(variables, images.astype(jnp.float32) / 255.0, train=False)
        return jnp.concatenate([h, z], axis=-1).astype(jnp.float32)

    out = []
    for dataset in datasets:
        hz = evaluate.embed(apply, dataset.images, batch_size=config.eval_batch_size)
        # with no head (num_layers=0) z = h, as wide as h, not head.output_dim
        feature_dim = hz.shape[1] - (config.head.output_dim if config.head.num_layers else hz.shape[1] // 2)
        out.append({"h": hz[:, :feature_dim], "z": hz[:, feature_dim:]})
    return out


def final_evaluation(config, state, init_key, train_set, test_set) -> dict:
    """Linear probe and kNN of h (and g(h)), next to raw-pixel and random-init baselines."""
    results: dict[str, Any] = {}
    train_f, test_f = _features(config, state, (train_set, test_set))
    results.update(_probe("", train_f["h"], test_f["h"], train_set, test_set, config.knn_k))
    if config.evaluate_head:
        results.update(_probe("head_", train_f["z"], test_f["z"], train_set, test_set, config.knn_k))
    if config.baselines:
        flat = [d.images.reshape(d.num_examples, -1).astype(np.float32) for d in (train_set, test_set)]
        results.update(_probe("raw_pixels_", flat[0], flat[1], train_set, test_set, config.knn_k))
        random_state = init_state(config, optim.make_optimizer(_optimizer_config(config, 1, 0))[0],
                                  init_key, train_set.image_shape)
        rtrain, rtest = _features(config, random_state, (train_set, test_set))
        results.update(_probe("random_init_", rtrain["h"], rtest["h"], train_set, test_set, config.knn_k))
    for fraction in config.finetune_fractions:
        results.update(_finetune(config, state, train_set, test_set, fraction))
    return results


def _finetune(config, state, train_set, test_set, fraction: float) -> dict[str, float]:
    """Fine-tuned test accuracy with ``fraction`` of the labels, and the same recipe from scratch."""
    encoder = build_model(config, bn_axis_name=None).encoder
    pretrained = local_copy({"params": state.params["encoder"],
                             "batch_stats": state.batch_stats.get("encoder", {})})
    augment_config = augment_lib.AugmentConfig(**config.augment.to_dict())
    tune = functools.partial(finetune.finetune_accuracy, encoder, train_set=train_set, test_set=test_set,
                             fraction=fraction, augment_config=augment_config,
                             steps=config.finetune_steps, seed=config.seed)
    tag = f"{round(100 * fraction):d}pct"
    out = {f"finetune_{tag}_accuracy": tune(pretrained)}
    if config.baselines:
        out[f"supervised_{tag}_accuracy"] = tune(None)
    return out


def _probe(prefix, train_x, test_x, train_set, test_set, k) -> dict[str, float]:
    probe = evaluate.linear_probe(train_x, train_set.labels, test_x, test_set.labels)
    knn = evaluate.knn_accuracy(train_x, train_set.labels, test_x, test_set.labels, k=k,
                                num_classes=train_set.num_classes)
    return {f"{prefix}linear_probe_accuracy": probe["accuracy"], f"{prefix}knn_accuracy": knn}
