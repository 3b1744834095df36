"""Evaluating a metric on classes it never saw: N-way K-shot episodes, pair verification and
recall@k (``rl_repr.evaluation.few_shot``), for the trained embedding, its trunk's features,
raw pixels and the network at random init, all through the same feature transform."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np

from rl_repr.core.drivers import local_copy
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.data.images.pk_batches import ClassSplit
from rl_repr.evaluation import few_shot, frozen
from rl_repr.evaluation.features import embed
from rl_repr.metric_learning.model import EmbeddingNet, build_model


def _trunk(module: EmbeddingNet, x: jax.Array, train: bool) -> jax.Array:
    return module.trunk(x, train=train)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply_eval(model: EmbeddingNet, layer: str, variables: dict, images: jax.Array) -> jax.Array:
    # Model and layer are static (flax modules hash by value) and the weights are arguments,
    # so every evaluation of a run reuses one compilation.
    method = _trunk if layer == "trunk" else None
    return model.apply(variables, augment.to_float_images(images), train=False, method=method)


def embed_images(config, state: TrainState, images: np.ndarray, *, layer: str = "embedding") -> np.ndarray:
    """``f(images)`` ``[N, embedding_dim]`` (or the trunk's ``h`` for ``layer='trunk'``) with
    eval-mode batch norm, on this process."""
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})
    apply = functools.partial(_apply_eval, build_model(config, bn_axis_name=None), layer, variables)
    return embed(apply, images, batch_size=config.eval_batch_size)


def _benchmark_kwargs(config) -> dict:
    """The ``benchmark_embeddings`` settings of ``config.eval``."""
    e = config.eval
    return dict(n_way=e.n_way, shots=tuple(e.shots), num_queries=e.num_queries, num_episodes=e.num_episodes,
                num_pairs=e.num_pairs, num_folds=e.num_folds, recall_ks=tuple(e.recall_ks), seed=e.seed,
                classifier=e.classifier)


def scored_features(config, extract: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                    train_images: np.ndarray) -> np.ndarray:
    """``extract(images) [M, d]``, then ``config.eval.feature_transform``; the centring mean
    is that of ``extract(train_images)``, the training classes' images."""
    features = extract(images)
    if config.eval.feature_transform == "center_and_normalize":
        features = few_shot.center_and_normalize(features, np.mean(extract(train_images), axis=0))
    return features


def heldout_monitor(config, state: TrainState, data: ClassSplit) -> dict[str, float]:
    """N-way first-shot accuracy on the held-out classes (the monitor logged during training)."""
    features = scored_features(config, functools.partial(embed_images, config, state),
                               data.heldout.images, data.train.images)
    e = config.eval
    score = few_shot.few_shot_accuracy(features, data.heldout.labels, n_way=e.n_way, k_shot=e.shots[0],
                                       num_queries=e.num_queries, num_episodes=e.num_episodes, seed=e.seed,
                                       classifier=e.classifier)
    return {f"heldout_{e.n_way}way_{e.shots[0]}shot_accuracy": score["accuracy"]}


def final_evaluation(config, state: TrainState, random_state: TrainState, data: ClassSplit) -> dict:
    """Few-shot, verification and recall@k of the held-out classes for the trained f, for its
    trunk's h (``config.eval.trunk_features``: what the last dense layer and the normalisation
    discard), and (``config.baselines``) for raw pixels and for f at its random initialisation;
    plus f on unseen images of the training classes (``config.eval.seen_classes``). Every
    representation goes through the same ``config.eval.feature_transform``."""
    results: dict[str, Any] = {}

    def score(prefix: str, extract: Callable, evaluated=data.heldout) -> None:
        features = scored_features(config, extract, evaluated.images, data.train.images)
        scores = few_shot.benchmark_embeddings(features, evaluated.labels, **_benchmark_kwargs(config))
        results.update({prefix + k: v for k, v in scores.items()})

    score("", functools.partial(embed_images, config, state))
    if config.eval.trunk_features:
        score("trunk_", functools.partial(embed_images, config, state, layer="trunk"))
    if config.baselines:
        score("raw_pixels_", frozen.raw_pixels)
        score("random_init_", functools.partial(embed_images, config, random_state))
    if config.eval.seen_classes and data.seen is not None:
        score("seen_classes_", functools.partial(embed_images, config, state), evaluated=data.seen)
    return results
