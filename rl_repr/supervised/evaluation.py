"""Evaluating a supervised classifier: the train/test monitor and the final report.

Everything runs the model in evaluation mode (batch norm with its running statistics). The
final report holds test accuracy and cross-entropy, expected calibration error (15 bins, Guo
et al. 2017), accuracy on the training labels (and on the true labels when they were noised),
the teacher's test accuracy when distilling, and accuracy under FGSM / PGD at each of
``config.eval_epsilons`` (``rl_repr.adversarial``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rl_repr.adversarial import Attack, accuracy_under_attack
from rl_repr.core.drivers import local_copy
from rl_repr.core.extras import require
from rl_repr.evaluation.calibration import expected_calibration_error
from rl_repr.evaluation.features import embed
from rl_repr.supervised.data import SupervisedData
from rl_repr.supervised.model import build_model

ml_collections = require("ml_collections")


class Predictor:
    """Evaluation-mode logits of a model, compiled once per run (the variables are an argument).

    ``logits(variables, inputs)`` scores stored inputs in batches of ``config.eval_batch_size``;
    ``logits_fn(variables)`` is ``pixels -> logits`` with the variables bound (for attacks).
    """

    def __init__(self, config: ml_collections.ConfigDict, data: SupervisedData, model=None):
        self.config, self.data = config, data
        self.model = model or build_model(config, data.num_classes, bn_axis_name=None)
        self._apply = jax.jit(lambda variables, stored: self.logits_fn(variables)(data.pixels(stored)))

    def logits_fn(self, variables):
        return lambda pixels: self.model.apply(variables, self.data.standardize(pixels), train=False)

    def logits(self, variables, inputs: np.ndarray) -> np.ndarray:
        """``[N, k]`` logits of stored ``inputs``."""
        return embed(lambda stored: self._apply(variables, stored), inputs,
                     batch_size=min(self.config.eval_batch_size, len(inputs)))


def _variables(state) -> dict:
    return local_copy({"params": state.params, "batch_stats": state.batch_stats})


def _scores(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == labels))
    loss = float(np.mean(optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), jnp.asarray(labels))))
    return accuracy, loss


def monitor_rows(config, data: SupervisedData) -> np.ndarray:
    """The training rows the monitor scores: ``monitor_train_examples`` of a fixed permutation."""
    count = len(data.train_labels)
    if config.monitor_train_examples and config.monitor_train_examples < count:
        return np.sort(np.random.default_rng([config.seed, 16]).permutation(count)[:config.monitor_train_examples])
    return np.arange(count)


def monitor(predictor: Predictor, state, rows: np.ndarray) -> dict:
    """Training and test accuracy and cross-entropy now (the curves of the depth and scaling studies)."""
    data, variables = predictor.data, _variables(state)
    train_accuracy, train_loss = _scores(predictor.logits(variables, data.train_inputs[rows]), data.train_labels[rows])
    test_accuracy, test_loss = _scores(predictor.logits(variables, data.test_inputs), data.test_labels)
    return {"eval_train_accuracy": train_accuracy, "eval_train_loss": train_loss,
            "test_accuracy": test_accuracy, "test_loss": test_loss}


def final_evaluation(predictor: Predictor, state, teacher_model, rows: np.ndarray) -> dict:
    """The final report (module docstring); every value a float, keys flat."""
    config, data, variables = predictor.config, predictor.data, _variables(state)
    test_logits = predictor.logits(variables, data.test_inputs)
    results = monitor(predictor, state, rows)
    results["train_accuracy"] = results.pop("eval_train_accuracy")
    results["train_loss"] = results.pop("eval_train_loss")
    probabilities = np.asarray(jax.nn.softmax(jnp.asarray(test_logits), axis=-1))
    results["expected_calibration_error"] = expected_calibration_error(probabilities, data.test_labels,
                                                                       config.calibration_bins)
    results["test_confidence"] = float(np.mean(probabilities.max(axis=-1)))
    if config.label_noise > 0:
        train_logits = predictor.logits(variables, data.train_inputs)
        results["clean_train_accuracy"] = float(np.mean(np.argmax(train_logits, -1) == data.clean_train_labels))
        results["noisy_label_fit"] = float(np.mean((np.argmax(train_logits, -1) == data.train_labels)
                                                   [data.train_labels != data.clean_train_labels]))
    if teacher_model is not None:
        teacher = Predictor(config, data, teacher_model)
        teacher_logits = teacher.logits(local_copy(state.teacher), data.test_inputs)
        results["teacher_test_accuracy"] = _scores(teacher_logits, data.test_labels)[0]
    if config.eval_attacks:
        logits_fn = predictor.logits_fn(variables)
        pixels = np.asarray(data.pixels(data.test_inputs))
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 17)
        for kind in config.eval_attacks:
            for epsilon in config.eval_epsilons:
                attack = Attack(kind, float(epsilon), steps=config.eval_pgd_steps) if epsilon > 0 else None
                results[f"{kind}_accuracy_eps{epsilon:g}"] = accuracy_under_attack(
                    logits_fn, pixels, data.test_labels, attack, key, batch_size=config.eval_batch_size)
    return results
