"""The supervised trainer's parts: config rules, label noise, the per-example losses, data
scaling and label fractions, greedy layer-wise pretraining, and the optimisation ladder."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rl_repr import losses
from rl_repr.core import runner
from rl_repr.core.config import ConfigError
from rl_repr.models import MLP
from rl_repr.supervised import ladder
from rl_repr.supervised.data import load_supervised_data
from rl_repr.supervised.greedy import greedy_layerwise_pretraining
from rl_repr.supervised.noise import symmetric_label_noise
from rl_repr.supervised.step import per_example_loss
from supervised_tiny import tiny_supervised_config


@pytest.mark.parametrize("overrides, key", [
    ({"model.kind": "cifar_resnet", "model.depth": 18}, "model.depth"),
    ({"model.norm": "group"}, "model.norm"),          # an MLP takes none / batch / layer
    ({"label_noise": 1.0}, "label_noise"),
    ({"label_smoothing": 0.1, "teacher.workdir": "/somewhere"}, "label_smoothing"),
    ({"adversarial.attack": "cw"}, "adversarial.attack"),
    ({"eval_attacks": ("pgd",)}, "eval_epsilons"),
    ({"dataset": "tabular:boston"}, "dataset"),
    ({"greedy_pretraining.enabled": True, "model.kind": "cifar_resnet"}, "greedy_pretraining.enabled"),
])
def test_bad_values_are_one_sentence_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        runner.validate(tiny_supervised_config(**overrides))


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_symmetric_label_noise_has_the_exact_rate_and_is_seeded(rate):
    labels = np.arange(2000) % 10
    noisy = symmetric_label_noise(labels, 10, rate, seed=3)
    assert np.mean(noisy != labels) == rate  # exactly, not only in expectation
    np.testing.assert_array_equal(noisy, symmetric_label_noise(labels, 10, rate, seed=3))
    if rate:
        assert not np.array_equal(noisy, symmetric_label_noise(labels, 10, rate, seed=4))
        # a flipped label is uniform over the other 9 classes: each offset (y' - y) mod 10 ~ 1/9
        offsets = np.bincount((noisy - labels)[noisy != labels] % 10, minlength=10)[1:] / np.sum(noisy != labels)
        assert np.all(np.abs(offsets - 1 / 9) < 0.05)
    with pytest.raises(ValueError, match="0, 1"):
        symmetric_label_noise(labels, 10, 1.0, seed=0)


def test_per_example_losses_average_to_the_library_losses():
    config = tiny_supervised_config(label_smoothing=0.2)
    logits = jax.random.normal(jax.random.key(0), (6, 5))
    teacher = jax.random.normal(jax.random.key(1), (6, 5))
    labels = jnp.array([0, 1, 2, 3, 4, 0])
    np.testing.assert_allclose(jnp.mean(per_example_loss(config, logits, labels)),
                               losses.label_smoothing_cross_entropy(logits, labels, 0.2), rtol=1e-6)
    config.teacher.update(temperature=4.0, alpha=0.7)
    np.testing.assert_allclose(jnp.mean(per_example_loss(config, logits, labels, teacher)),
                               losses.distillation_loss(logits, teacher, labels, temperature=4.0, alpha=0.7),
                               rtol=1e-6)


def test_tabular_data_standardisation_and_label_fraction():
    raw = load_supervised_data(tiny_supervised_config(dataset="tabular:breast_cancer", **{"model.norm": "none"}))
    assert raw.train_inputs.shape == (456, 30) and raw.test_inputs.shape == (113, 30) and not raw.is_image
    assert raw.mean is None and float(raw.train_inputs.mean(0).max()) > 800  # 'worst area'
    scaled = load_supervised_data(tiny_supervised_config(dataset="tabular:breast_cancer", standardize_inputs=True))
    standardized = np.asarray(scaled.model_input(scaled.train_inputs))
    np.testing.assert_allclose(standardized.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(standardized.std(0), 1, atol=1e-4)
    images = load_supervised_data(tiny_supervised_config(label_fraction=0.1, standardize_inputs=True))
    assert len(images.train_labels) == 10 * 2 and len(images.unlabelled_inputs) == 192  # 10% of 19-20 per class
    assert images.mean.shape == (1,)  # per channel


def test_greedy_pretraining_lowers_reconstruction_error_and_keeps_the_classifier():
    factors = jax.random.uniform(jax.random.key(0), (256, 3))
    x = factors @ jax.random.normal(jax.random.key(3), (3, 12))  # rank 3: a 4-unit layer can reconstruct it
    model = MLP(hidden=(4, 3), num_classes=2, activation="sigmoid")
    variables = model.init(jax.random.key(1), x)
    trained = greedy_layerwise_pretraining(model, variables, x, jax.random.key(2), steps_per_layer=300,
                                           learning_rate=1e-2, batch_size=64)
    np.testing.assert_array_equal(trained["params"]["classifier"]["kernel"], variables["params"]["classifier"]["kernel"])

    def reconstruction_error(block_params):
        h = jax.nn.sigmoid(x @ block_params["dense"]["kernel"] + block_params["dense"]["bias"])
        decoder, *_ = np.linalg.lstsq(np.c_[h, np.ones(len(h))], x, rcond=None)  # the best linear decoder
        return float(np.mean(np.sum((np.c_[h, np.ones(len(h))] @ decoder - x) ** 2, axis=1)))
    assert reconstruction_error(trained["params"]["block1"]) < 0.7 * reconstruction_error(variables["params"]["block1"])
    assert not np.allclose(trained["params"]["block2"]["dense"]["kernel"], variables["params"]["block2"]["dense"]["kernel"])


def test_svm_loss_matches_a_numpy_reference_and_the_searches_keep_the_best():
    rng = np.random.default_rng(0)
    x, labels = ladder.with_bias(rng.uniform(0, 255, (50, 7))), rng.integers(0, 3, 50)
    assert x.shape == (50, 8) and np.all(x[:, -1] == 1)
    weights = rng.normal(size=(3, 8)).astype(np.float32) * 0.01
    scores = x @ weights.T
    reference = np.mean([sum(max(0.0, scores[i, j] - scores[i, labels[i]] + 1) for j in range(3) if j != labels[i])
                         for i in range(50)])
    np.testing.assert_allclose(ladder.svm_loss(weights, x, labels), reference, rtol=1e-5)
    assert float(ladder.svm_loss(np.zeros((3, 8), np.float32), x, labels)) == pytest.approx(2.0)  # k - 1
    for search in (ladder.random_search, ladder.random_local_search):
        best, history = search(x, labels, 3, tries=30)
        assert all(b <= a for a, b in zip(history, history[1:]))
        assert float(ladder.svm_loss(best, x, labels)) == pytest.approx(history[-1], rel=1e-5)
    _, history = ladder.gradient_training(x, labels, 3, optax.sgd(1e-5), steps=50)
    assert history[-1] < history[0]
