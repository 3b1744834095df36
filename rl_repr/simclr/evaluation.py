"""Evaluating a SimCLR encoder: the kNN monitor and the final frozen-representation report.

The representation is h = f(x), the encoder's pooled output (the paper's Section 4.2: h beats
g(h) for a linear probe). ``final_evaluation`` is ``rl_repr.evaluation.encoder_report`` with
SimCLR's features: h (and g(h)), next to raw pixels and the random-init encoder, and
fine-tuning on 1% / 10% of the labels (SimCLR Table 7).
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core.drivers import local_copy
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.evaluation.encoder_report import encoder_report
from rl_repr.evaluation.features import embed
from rl_repr.evaluation.knn import knn_accuracy
from rl_repr.simclr.model import build_model


def encoder_output(config, state: TrainState, *, with_head: bool = True):
    """The jitted eval-mode ``images [n, H, W, C] uint8 -> [n, d]`` float32: h, followed by z when
    ``with_head`` (split them with :func:`split_h_z`)."""
    model = build_model(config, bn_axis_name=None)
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})

    @jax.jit
    def apply(images):
        h, z, _ = model.apply(variables, images.astype(jnp.float32) / 255.0, train=False)
        return (jnp.concatenate([h, z], axis=-1) if with_head else h).astype(jnp.float32)

    return apply


def split_h_z(config, hz: np.ndarray) -> dict[str, np.ndarray]:
    """``encoder_output`` rows -> ``{'h': [N, feature_dim], 'z': [N, output_dim]}``."""
    # with no head (num_layers=0) z = h, as wide as h, not head.output_dim
    feature_dim = hz.shape[1] - (config.head.output_dim if config.head.num_layers else hz.shape[1] // 2)
    return {"h": hz[:, :feature_dim], "z": hz[:, feature_dim:]}


def features(config, state: TrainState, datasets) -> list[dict[str, np.ndarray]]:
    """``{'h': [N, feature_dim], 'z': [N, output_dim]}`` of each dataset, eval-mode batch norm."""
    apply = encoder_output(config, state)
    return [split_h_z(config, embed(apply, dataset.images, batch_size=config.eval_batch_size))
            for dataset in datasets]


def knn_monitor(config, state: TrainState, train_set, test_set) -> float:
    """kNN accuracy of h on the test set (the monitor logged during training)."""
    train_f, test_f = features(config, state, (train_set, test_set))
    return knn_accuracy(train_f["h"], train_set.labels, test_f["h"], test_set.labels, k=config.knn_k)


def final_evaluation(config, state: TrainState, random_state: TrainState, train_set, test_set, *,
                     subsets_dir: str | None = None) -> dict:
    """Linear probe and kNN of h (and g(h) with ``evaluate_head``), next to raw-pixel and
    random-init baselines, and fine-tuning with ``config.finetune_fractions`` of the labels."""
    def extract(model_state):
        def features_of(train, test):
            train_f, test_f = features(config, model_state, (train, test))
            return {name: (train_f[name], test_f[name]) for name in ("h", "z")}
        return features_of

    return encoder_report(
        extract=extract(state), random_extract=extract(random_state), train_set=train_set, test_set=test_set,
        knn_k=config.knn_k, baselines=config.baselines,
        prefixes={"h": "", **({"z": "head_"} if config.evaluate_head else {})},
        encoder=build_model(config, bn_axis_name=None).encoder,
        pretrained=local_copy({"params": state.params["encoder"],
                               "batch_stats": state.batch_stats.get("encoder", {})}),
        finetune_fractions=tuple(config.finetune_fractions), finetune_steps=config.finetune_steps,
        augment_config=augment.AugmentConfig(**config.augment.to_dict()), seed=config.seed, subsets_dir=subsets_dir)
