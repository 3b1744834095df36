"""Triplet and Siamese training with online mining, evaluated one-shot on held-out classes.

The slides (seed 002) learn a similarity ``d(x1, x2) = ||f(x1) - f(x2)||^2`` and use it
to recognise classes from one example. Story of a run: build the mesh -> split the classes
(training classes vs held-out classes) -> the set the PK batches draw from (the training
classes, optionally enlarged with their rotations / mirror images and with rendered letters
as extra classes: ``pk_batches.training_set``) -> build f (a small conv net or a ResNet, then a
dense layer to ``embedding_dim`` and L2 normalisation) -> initialise -> compile one
per-device step under the configured driver -> loop (shared ``train_loop``: logging,
held-out monitor, checkpoints, resume) -> N-way K-shot episodes, pair verification and
recall@k on the held-out classes (optionally after SimpleShot's centring + L2 normalisation),
next to raw pixels and the same network at random init -> ``<workdir>/results.json``.

One step: a PK batch (P classes x K images, ``rl_repr.data.pk_batches``) -> per-example
augmentation keyed by the *global* example index (two views per image when the instance term
is on) -> f on the batch (global batch norm across devices) -> embeddings and labels of the
*whole* global batch on every device -> mining and loss on the global batch (``metric_loss``,
or ``metric_and_instance_loss``: plus NT-Xent between the two views) -> gradients summed
across devices -> optimizer.

Mining sees the global batch on every driver. Under ``jit`` the batch is one global array
and XLA inserts the collectives. Under ``shard_map``/``pmap`` each device gathers every
device's embeddings with ``gather_global_batch`` and computes the same global loss; that
gather's backward pass hands each device d(loss)/d(its own rows), so summing the parameter
gradients over devices (``drivers.sum_gradients``) gives the single-device gradient.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl_repr import checkpoint, config_utils, evaluate, evaluate_few_shot, optim, parallel
from rl_repr.data import augment as augment_lib
from rl_repr.data.digits import ImageDataset
from rl_repr.data.pk_batches import ClassSplit, load_class_split, pk_batch_indices, training_set
from rl_repr.models import ResNet
from rl_repr.models.norm_choice import norm_factory
from rl_repr.train import results_io
from rl_repr.train.drivers import Driver, local_copy, sum_gradients
from rl_repr.train.loop import LoopConfig, train_loop
from rl_repr.train.metric_learning_config import validate_metric_learning_config
# The losses live in their own module; re-exported because recipes and tests reach them here.
from rl_repr.train.metric_learning_losses import (  # noqa: F401
    DEFAULT_DISTANCE, gather_global_batch, metric_and_instance_loss, metric_loss, sample_partners)
from rl_repr.train.metrics import MetricsWriter
from rl_repr.train.state import TrainState


# ============================================================================ model
class ConvTrunk(nn.Module):
    """A small conv net: 3x3 conv -> norm -> ReLU per width (stride 2 after the first), then
    global average pooling ``[N, H, W, C] -> [N, widths[-1]]``, or with ``global_pool=False``
    flattening, which keeps where each feature is (``[N, H' * W' * widths[-1]]``), float32."""

    widths: Sequence[int] = (32, 64, 128)
    global_pool: bool = True
    norm: str = "batch"
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    num_groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        norm = norm_factory(self.norm, train=train, dtype=self.dtype, bn_axis_name=self.bn_axis_name,
                            num_groups=self.num_groups)
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            x = nn.Conv(width, (3, 3), strides=1 if i == 0 else 2, padding=((1, 1), (1, 1)), use_bias=False,
                        dtype=self.dtype, param_dtype=jnp.float32, name=f"conv{i + 1}")(x)
            x = nn.relu(norm(name=f"norm{i + 1}")(x))
        x = x.astype(jnp.float32)
        return jnp.mean(x, axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)


class EmbeddingNet(nn.Module):
    """``f(x) = W trunk(x) / ||W trunk(x)||``: images ``[N, H, W, C]`` -> unit vectors
    ``[N, embedding_dim]`` float32 (FaceNet's L2-normalised embedding)."""

    trunk: nn.Module
    embedding_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"EmbeddingNet: x has shape {x.shape}; pass images [N, H, W, C].")
        z = nn.Dense(self.embedding_dim, name="embedding")(self.trunk(x, train=train))
        # rsqrt(max(|z|^2, eps)): finite value and gradient even for a zero vector.
        return z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), 1e-12))


def build_model(config: ml_collections.ConfigDict, bn_axis_name: str | None) -> EmbeddingNet:
    dtype = jnp.bfloat16 if config.compute_dtype == "bfloat16" else jnp.float32
    m = config.model
    if m.architecture == "resnet":
        trunk = ResNet(depth=m.depth, num_classes=None, width_multiplier=m.width_multiplier,
                       small_image_stem=m.small_image_stem, norm=m.norm, dtype=dtype,
                       bn_axis_name=bn_axis_name, num_groups=m.num_groups)
    else:
        trunk = ConvTrunk(widths=tuple(m.conv_widths), global_pool=m.global_pool, norm=m.norm, dtype=dtype,
                          bn_axis_name=bn_axis_name, num_groups=m.num_groups)
    return EmbeddingNet(trunk=trunk, embedding_dim=m.embedding_dim)


# ============================================================================ step
def make_per_device_step(config, optimizer, schedule, augment_config, base_key) -> Callable:
    """The metric-learning update as a per-device program (see ``rl_repr.train.drivers``).

    With ``config.instance_weight > 0`` each image is augmented twice and the loss is
    ``metric_and_instance_loss`` of the two views' embeddings; otherwise one view and
    ``metric_loss``.
    """
    metric_kwargs = dict(loss=config.loss, margin=config.margin, pair_margin=config.pair_margin,
                         distance=config.distance)
    two_views = config.instance_weight > 0

    def per_device_step(state: TrainState, batch: dict, axis_name: str | None):
        model = build_model(config, axis_name if config.global_bn else None)
        images, labels = batch["image"], batch["label"]
        n = images.shape[0]
        offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        augment_key, mining_key = jax.random.split(jax.random.fold_in(base_key, state.step))
        pixels = augment_lib.to_float_images(images)
        if augment_config is not None:  # keys per global example: any sharding draws the same views
            keys = jax.vmap(lambda i: jax.random.fold_in(augment_key, i))(offset + jnp.arange(n))
            augment = jax.vmap(functools.partial(augment_lib.augment_image, config=augment_config))
            if two_views:
                view_keys = jax.vmap(jax.random.split)(keys)
                pixels = jnp.concatenate([augment(view_keys[:, 0], pixels), augment(view_keys[:, 1], pixels)])
            else:
                pixels = augment(keys, pixels)
        all_labels = labels if axis_name is None else jax.lax.all_gather(labels, axis_name, tiled=True)

        def global_rows(local):  # this device's rows -> the global batch's, in the global order
            return local if axis_name is None else gather_global_batch(local, axis_name)

        def loss_fn(params):
            embeddings, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, pixels,
                                              train=True, mutable=["batch_stats"])
            if two_views:
                value, diagnostics = metric_and_instance_loss(
                    global_rows(embeddings[:n]), global_rows(embeddings[n:]), all_labels, mining_key,
                    metric_weight=config.metric_weight, instance_weight=config.instance_weight,
                    instance_temperature=config.instance_temperature, **metric_kwargs)
            else:
                value, diagnostics = metric_loss(global_rows(embeddings), all_labels, mining_key, **metric_kwargs)
            return value, (diagnostics, updates.get("batch_stats", state.batch_stats))

        (loss, (diagnostics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None and not config.global_bn:  # keep one copy of the running statistics
            batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        return new_state, {"loss": loss, "learning_rate": schedule(state.step), **diagnostics}

    return per_device_step


# ============================================================================ run
@dataclasses.dataclass
class MetricLearningRun:
    """Everything a run needs before its first step (tests drive steps through this too)."""

    config: ml_collections.ConfigDict
    data: ClassSplit
    driver: Driver
    state: TrainState            # initial global state (the restore target)
    step_fn: Callable            # compiled (placed_state, placed_batch) -> (placed_state, metrics)
    init_key: jax.Array
    # What the PK batches draw from: data.train plus the configured extra classes
    # (pk_batches.training_set); centring and the seen-class scores keep using data.train.
    train_set: ImageDataset

    def batch_for_step(self, step: int) -> dict:
        rows = pk_batch_indices(self.train_set.labels, self.config.classes_per_batch,
                                self.config.examples_per_class, seed=self.config.seed, step=step)
        rows = np.array_split(rows, jax.process_count())[jax.process_index()]  # this process's rows
        return self.driver.put_batch({"image": self.train_set.images[rows],
                                      "label": self.train_set.labels[rows]})


def _optimizer_config(config) -> ml_collections.ConfigDict:
    keys = ("optimizer", "base_lr", "lr_scaling", "weight_decay", "momentum", "warmup_steps")
    return ml_collections.ConfigDict({**{k: config[k] for k in keys}, "total_steps": config.num_steps,
                                      "batch_size": config.classes_per_batch * config.examples_per_class})


def init_state(config, optimizer, key, image_shape) -> TrainState:
    model = build_model(config, bn_axis_name=None)
    variables = jax.jit(functools.partial(model.init, train=False))(key, jnp.zeros((2, *image_shape)))
    return TrainState.create(variables["params"], variables.get("batch_stats", {}), optimizer)


def _check_class_split(config, data: ClassSplit, train_set: ImageDataset) -> None:
    """Fails before compiling when the split cannot feed the PK batches or the episodes."""
    num_train = len(np.unique(train_set.labels))
    if num_train < config.classes_per_batch:
        raise ValueError(f"config.classes_per_batch={config.classes_per_batch} exceeds the {num_train} "
                         "training classes; lower it or hold out fewer classes.")
    num_heldout = len(np.unique(data.heldout.labels))
    if num_heldout < config.eval.n_way:
        raise ValueError(f"only {num_heldout} held-out classes of {config.dataset!r} have images but "
                         f"config.eval.n_way={config.eval.n_way}; hold out more classes (config.eval_classes "
                         "or config.eval_every_nth_class) or lower n_way.")


def build_run(config: ml_collections.ConfigDict) -> MetricLearningRun:
    """Validates the config, builds the mesh, the class split, the model and the compiled step."""
    validate_metric_learning_config(config)
    parallel.maybe_initialize_distributed(config)
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_divisible(config.classes_per_batch * config.examples_per_class, mesh)
    data = load_class_split(config)
    train_set = training_set(config, data.train)
    _check_class_split(config, data, train_set)
    augment_config = (augment_lib.AugmentConfig(**config.augment.to_dict())
                      if config.augment_enabled else None)
    optimizer, schedule = optim.make_optimizer(_optimizer_config(config))
    # 'rbg' keys compile parameter init ~7x faster on CPU (see simclr.build_run); augmentation
    # and mining keys stay threefry, whose draws do not depend on the sharding.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    state = init_state(config, optimizer, init_key, data.train.image_shape)
    driver = Driver(config.parallel, mesh)
    step_fn = driver.compile_step(make_per_device_step(config, optimizer, schedule, augment_config, base_key))
    return MetricLearningRun(config, data, driver, state, step_fn, init_key, train_set)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_step: int | None = None) -> dict:
    """Trains as configured, benchmarks the held-out classes, and returns (and writes) the results.

    ``stop_after_step`` stops early with a checkpoint, as a preempted job would; rerunning
    with the same ``workdir`` resumes.
    """
    run = build_run(config)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        config_utils.config_to_json(config, os.path.join(workdir, "config.json"))
    heldout = run.data.heldout

    def heldout_monitor(global_state, step):
        features = scored_features(config, functools.partial(embed_images, config, global_state),
                                   heldout.images, run.data.train.images)
        e = config.eval
        score = evaluate_few_shot.few_shot_accuracy(
            features, heldout.labels, n_way=e.n_way, k_shot=e.shots[0], num_queries=e.num_queries,
            num_episodes=e.num_episodes, seed=e.seed, classifier=e.classifier)
        return {f"heldout_{e.n_way}way_{e.shots[0]}shot_accuracy": score["accuracy"]}

    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                   save_every_steps=config.checkpoint_every_steps)
    writer = MetricsWriter(workdir)
    loop = LoopConfig(total_steps=config.num_steps, log_every=config.log_every_steps,
                      eval_every=config.eval_every_steps, stop_after=stop_after_step,
                      nan_fix="lower config.base_lr (or raise config.warmup_steps)")
    state, step = train_loop(state=run.state, driver=run.driver, step_fn=run.step_fn,
                             batch_for_step=run.batch_for_step, loop=loop, checkpointer=ckpt,
                             writer=writer, evaluate=heldout_monitor)
    ckpt.close()
    if step < config.num_steps:  # stopped early (preemption): evaluate on the next run
        writer.close()
        return {"stopped_at_step": step}

    results = final_evaluation(config, state, run.init_key, run.data)
    results.update(steps=config.num_steps, loss=config.loss, batch_size=config.classes_per_batch *
                   config.examples_per_class, train_classes=[int(c) for c in np.unique(run.data.train.labels)],
                   heldout_classes=[int(c) for c in np.unique(heldout.labels)],
                   num_train_images=run.data.train.num_examples, num_heldout_images=heldout.num_examples,
                   num_batch_classes=int(len(np.unique(run.train_set.labels))),
                   num_batch_images=run.train_set.num_examples)
    writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    writer.close()
    results_io.write_results(workdir, results)
    return results


# ============================================================================ evaluation
def _trunk(module: EmbeddingNet, x: jax.Array, train: bool) -> jax.Array:
    return module.trunk(x, train=train)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply_eval(model: EmbeddingNet, layer: str, variables: dict, images: jax.Array) -> jax.Array:
    # Model and layer are static (flax modules hash by value) and the weights are arguments,
    # so every evaluation of a run reuses one compilation.
    method = _trunk if layer == "trunk" else None
    return model.apply(variables, augment_lib.to_float_images(images), train=False, method=method)


def embed_images(config, state: TrainState, images: np.ndarray, *, layer: str = "embedding") -> np.ndarray:
    """``f(images)`` ``[N, embedding_dim]`` (or the trunk's ``h`` for ``layer='trunk'``) with
    eval-mode batch norm, on this process."""
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})
    apply = functools.partial(_apply_eval, build_model(config, bn_axis_name=None), layer, variables)
    return evaluate.embed(apply, images, batch_size=config.eval_batch_size)


def _benchmark_kwargs(config) -> dict:
    """The ``benchmark_embeddings`` settings of ``config.eval``."""
    e = config.eval
    return dict(n_way=e.n_way, shots=tuple(e.shots), num_queries=e.num_queries, num_episodes=e.num_episodes,
                num_pairs=e.num_pairs, num_folds=e.num_folds, recall_ks=tuple(e.recall_ks), seed=e.seed,
                classifier=e.classifier)


def _raw_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(images.shape[0], -1).astype(np.float32) / 255.0


def scored_features(config, extract: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                    train_images: np.ndarray) -> np.ndarray:
    """``extract(images) [M, d]``, then ``config.eval.feature_transform``; the centring mean
    is that of ``extract(train_images)``, the training classes' images."""
    features = extract(images)
    if config.eval.feature_transform == "center_and_normalize":
        features = evaluate_few_shot.center_and_normalize(features, np.mean(extract(train_images), axis=0))
    return features


def final_evaluation(config, state, init_key, data: ClassSplit) -> dict:
    """Few-shot, verification and recall@k of the held-out classes for the trained f, for its
    trunk's h (``config.eval.trunk_features``: what the last dense layer and the normalisation
    discard), and (``config.baselines``) for raw pixels and for f at its random initialisation;
    plus f on unseen images of the training classes (``config.eval.seen_classes``). Every
    representation goes through the same ``config.eval.feature_transform``."""
    results: dict[str, Any] = {}

    def score(prefix: str, extract: Callable, evaluated=data.heldout) -> None:
        features = scored_features(config, extract, evaluated.images, data.train.images)
        scores = evaluate_few_shot.benchmark_embeddings(features, evaluated.labels, **_benchmark_kwargs(config))
        results.update({prefix + k: v for k, v in scores.items()})

    score("", functools.partial(embed_images, config, state))
    if config.eval.trunk_features:
        score("trunk_", functools.partial(embed_images, config, state, layer="trunk"))
    if config.baselines:
        score("raw_pixels_", _raw_pixels)
        random_state = init_state(config, optim.make_optimizer(_optimizer_config(config))[0], init_key,
                                  data.heldout.image_shape)
        score("random_init_", functools.partial(embed_images, config, random_state))
    if config.eval.seen_classes and data.seen is not None:
        score("seen_classes_", functools.partial(embed_images, config, state), evaluated=data.seen)
    return results
