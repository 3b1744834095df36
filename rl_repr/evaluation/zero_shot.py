"""Zero-shot recognition by direct attribute prediction (DAP; Lampert, Nickisch & Harmeling 2009,
"Learning To Detect Unseen Object Classes by Between-Class Attribute Transfer", CVPR; TPAMI 2014).

Classes are described by ``M`` binary attributes, ``a^z in {0, 1}^M`` for class ``z``. With images
of the *seen* classes only:

1. one probabilistic classifier per attribute, ``p(a_m = 1 | x)``, trained on the seen images
   with their class's attribute as the label (here L2-regularised logistic regression on frozen,
   standardised features: the linear probe's solver, ``rl_repr.evaluation.linear_probe``, with
   two classes; the paper used SVMs with Platt scaling);
2. an image ``x`` of an unseen class is given the unseen class ``z`` maximising

       sum_m  log p(a_m = a_m^z | x)  -  log p(a_m = a_m^z)

   (the paper's MAP rule with factorised attributes; ``p(a_m)`` is the attribute's frequency
   among the seen classes, clipped away from 0 and 1).

No image of an unseen class is ever labelled; the attribute descriptions are all the method
knows of them. The L2 strength is chosen by zero-shot accuracy on seen classes held out from the
fit (the same rule one level down), then the classifiers are refit on every seen class.
:func:`zero_shot_report` puts the accuracy next to chance (``1/U`` for ``U`` unseen classes) and
next to the one-shot baseline on the same features: ``U``-way 1-shot episodes of the unseen
classes (nearest neighbour after SimpleShot's centring on the seen classes' mean).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.evaluation import few_shot
from rl_repr.evaluation.linear_probe import _lbfgs_logistic

__all__ = ["fit_attribute_classifiers", "attribute_probabilities", "direct_attribute_prediction",
           "zero_shot_report"]

_PROBABILITY_FLOOR = 1e-3


def fit_attribute_classifiers(features: np.ndarray, attribute_labels: np.ndarray, *, l2: float,
                              num_steps: int = 200) -> dict:
    """Logistic regression per attribute: ``features [N, d]``, ``attribute_labels [N, M]`` (0/1).
    Returns ``{'w' [d, M], 'b' [M], 'mean' [d], 'std' [d]}`` (features standardised by their own
    mean and standard deviation, which the returned dict carries to new images)."""
    x = np.asarray(features, np.float32)
    mean, std = x.mean(0), x.std(0) + 1e-6
    # An attribute's classifier is the linear probe's L-BFGS logistic regression with two classes
    # (softmax over {0, 1} = a sigmoid of the logit difference), one per attribute, vmapped.
    fit = jax.vmap(lambda y: _lbfgs_logistic(jnp.asarray((x - mean) / std), y, 2, float(l2), int(num_steps)))
    params = fit(jnp.asarray(np.asarray(attribute_labels, np.int32).T))        # w [M, d, 2], b [M, 2]
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    return {"w": (w[..., 1] - w[..., 0]).T, "b": b[:, 1] - b[:, 0], "mean": mean, "std": std}


def attribute_probabilities(classifiers: dict, features: np.ndarray) -> np.ndarray:
    """``[N, M]``: ``p(a_m = 1 | x)`` for each image, clipped to ``[1e-3, 1 - 1e-3]``."""
    x = (np.asarray(features, np.float32) - classifiers["mean"]) / classifiers["std"]
    probability = 1.0 / (1.0 + np.exp(-(x @ classifiers["w"] + classifiers["b"])))
    return np.clip(probability, _PROBABILITY_FLOOR, 1.0 - _PROBABILITY_FLOOR)


def direct_attribute_prediction(probabilities: np.ndarray, candidate_attributes: np.ndarray,
                                attribute_prior: np.ndarray) -> np.ndarray:
    """``[N]`` index of the candidate class each image is given (DAP's rule, module docstring).

    Args:
      probabilities: ``[N, M]``, ``p(a_m = 1 | x)``.
      candidate_attributes: ``[Z, M]`` 0/1, the candidate (unseen) classes' descriptions.
      attribute_prior: ``[M]``, ``p(a_m = 1)`` (clipped to ``[1e-3, 1 - 1e-3]`` here).
    """
    a = np.asarray(candidate_attributes, np.float64)
    prior = np.clip(np.asarray(attribute_prior, np.float64), _PROBABILITY_FLOOR, 1.0 - _PROBABILITY_FLOOR)
    log_p1, log_p0 = np.log(probabilities), np.log1p(-probabilities)                    # [N, M]
    likelihood = log_p1 @ a.T + log_p0 @ (1.0 - a).T                                   # [N, Z]
    evidence = np.log(prior) @ a.T + np.log1p(-prior) @ (1.0 - a).T                    # [Z]
    return np.argmax(likelihood - evidence, axis=1)


def _zero_shot_accuracy(train_x, train_y, test_x, test_y, attributes, classes, l2) -> float:
    classifiers = fit_attribute_classifiers(train_x, attributes[train_y], l2=l2)
    prior = attributes[np.unique(train_y)].mean(0)
    predicted = np.asarray(classes)[direct_attribute_prediction(
        attribute_probabilities(classifiers, test_x), attributes[classes], prior)]
    return float(np.mean(predicted == test_y))


def zero_shot_report(seen_features: np.ndarray, seen_labels: np.ndarray, unseen_features: np.ndarray,
                     unseen_labels: np.ndarray, class_attributes: np.ndarray, *,
                     l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1), validation_fraction: float = 0.2,
                     episodes: int = 600, num_queries: int = 15, seed: int = 0) -> dict[str, float]:
    """DAP on the unseen classes, next to chance and a one-shot baseline on the same features.

    Args:
      seen_features, seen_labels: ``[N, d]`` features and class ids of the seen classes' images.
      unseen_features, unseen_labels: ``[K, d]`` and ``[K]`` of the unseen classes' images.
      class_attributes: ``[C, M]`` bool descriptions of every class id.
      l2_grid: the L2 strengths tried on a ``validation_fraction`` of the seen *classes*.
      episodes, num_queries: the ``U``-way 1-shot episodes of the baseline.

    Returns:
      ``zero_shot_accuracy`` (unseen images given the right class among the ``U`` unseen),
      ``zero_shot_chance`` (``1/U``), ``one_shot_accuracy`` (and ``one_shot_ci95``),
      ``attribute_accuracy`` (mean over attributes of ``p > 0.5`` matching the description on
      unseen images), ``zero_shot_l2`` and ``distinct_unseen_descriptions``.
    """
    attributes = np.asarray(class_attributes, np.float64)
    seen_classes, unseen_classes = np.unique(seen_labels), np.unique(unseen_labels)
    if len(unseen_classes) < 2 or len(seen_classes) < 5:
        raise ValueError(f"zero-shot needs at least 2 unseen and 5 seen classes (got {len(unseen_classes)} and "
                         f"{len(seen_classes)}); hold out more classes or use more.")
    rng = np.random.default_rng(seed)
    held = rng.choice(seen_classes, max(2, int(round(validation_fraction * len(seen_classes)))), replace=False)
    fit = ~np.isin(seen_labels, held)
    scores = [_zero_shot_accuracy(seen_features[fit], seen_labels[fit], seen_features[~fit], seen_labels[~fit],
                                  attributes, held, l2) for l2 in l2_grid]
    l2 = float(l2_grid[int(np.argmax(scores))])
    classifiers = fit_attribute_classifiers(seen_features, attributes[seen_labels], l2=l2)
    probabilities = attribute_probabilities(classifiers, unseen_features)
    predicted = unseen_classes[direct_attribute_prediction(probabilities, attributes[unseen_classes],
                                                           attributes[seen_classes].mean(0))]
    centred = few_shot.center_and_normalize(unseen_features, np.mean(seen_features, axis=0))
    one_shot = few_shot.few_shot_accuracy(centred, unseen_labels, n_way=len(unseen_classes), k_shot=1,
                                          num_queries=num_queries, num_episodes=episodes, seed=seed)
    return {"zero_shot_accuracy": float(np.mean(predicted == unseen_labels)),
            "zero_shot_chance": 1.0 / len(unseen_classes),
            "one_shot_accuracy": one_shot["accuracy"], "one_shot_ci95": one_shot["ci95"],
            "attribute_accuracy": float(np.mean((probabilities > 0.5) == (attributes[unseen_labels] > 0.5))),
            "zero_shot_l2": l2,
            "distinct_unseen_descriptions": len({tuple(row) for row in attributes[unseen_classes]})}
