"""Zero-shot recognition: DAP's rule against a brute-force reference, recovery of unseen classes from
clean attribute features, and the made-up characters' attributes on hand-drawn trajectories."""
import numpy as np
import pytest

from rl_repr.data.images import character_attributes as ca
from rl_repr.data.images.stroke_characters import stroke_templates
from rl_repr.evaluation import zero_shot


def test_dap_rule_matches_the_product_over_attributes():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0.01, 0.99, (20, 5))
    candidates = rng.random((6, 5)) < 0.5
    prior = rng.uniform(0.2, 0.8, 5)
    predicted = zero_shot.direct_attribute_prediction(probabilities, candidates, prior)
    for n in range(20):  # p(z | x) ∝ prod_m p(a_m^z | x) / p(a_m^z)
        scores = [np.prod(np.where(a, probabilities[n], 1 - probabilities[n]) / np.where(a, prior, 1 - prior))
                  for a in candidates]
        assert predicted[n] == int(np.argmax(scores))


def test_unseen_classes_are_recognised_from_features_that_carry_their_attributes():
    rng = np.random.default_rng(1)
    classes, attributes_per_class, per_class = 30, 8, 20
    attributes = rng.random((classes, attributes_per_class)) < 0.5
    mixing = rng.normal(size=(attributes_per_class, 16))
    labels = np.repeat(np.arange(classes), per_class)
    features = (attributes[labels] * 2.0 - 1.0) @ mixing + rng.normal(0, 0.5, (len(labels), 16))
    seen = labels < 24
    report = zero_shot.zero_shot_report(features[seen], labels[seen], features[~seen], labels[~seen], attributes,
                                        l2_grid=(1e-2,), episodes=50, seed=0)
    assert report["zero_shot_chance"] == pytest.approx(1 / 6)
    assert report["attribute_accuracy"] > 0.9
    assert report["zero_shot_accuracy"] > 0.8          # six unseen classes, none labelled
    assert 0.0 <= report["one_shot_accuracy"] <= 1.0 and report["distinct_unseen_descriptions"] <= 6
    # features that know nothing of the attributes: about chance
    noise = rng.normal(size=features.shape)
    blind = zero_shot.zero_shot_report(noise[seen], labels[seen], noise[~seen], labels[~seen], attributes,
                                       l2_grid=(1e-2,), episodes=50, seed=0)
    assert blind["zero_shot_accuracy"] < 0.45


def _line(*points):
    return np.array(points, float)


def test_attributes_of_hand_drawn_trajectories():
    measure = ca.trajectory_measurements
    loop = [_line(*[(np.cos(t), np.sin(t)) for t in np.linspace(0, 2 * np.pi, 7)])]
    cross = [_line((-1.0, -0.9), (1.0, 1.1)), _line((-1.0, 1.0), (1.0, -1.0))]  # meet at (-0.05, 0.05)
    touch = [_line((0.0, -1.0), (0.0, 1.0)), _line((0.0, 1.0), (0.6, 1.0))]    # the second starts on the first
    bar = [_line((0.0, -1.0), (0.0, 0.0), (0.0, 1.0))]
    assert measure(loop)["closed_loop"] == 1.0 and measure(bar)["closed_loop"] == 0.0
    assert measure(cross)["strokes_cross"] == 1.0 and measure(touch)["strokes_cross"] == 0.0
    assert measure(cross)["strokes"] == 2.0
    assert measure(bar)["aspect"] < 0.01 and measure(loop)["aspect"] == pytest.approx(1.0, abs=0.1)
    assert measure(bar)["symmetry_error"] < 0.01 < measure(touch)["symmetry_error"]
    assert measure(touch)["centre_of_mass_x"] < 0  # more ink on the vertical bar, the box's left edge
    assert measure(bar)["turning_degrees"] < 1.0 < measure(loop)["turning_degrees"]


def test_class_attributes_of_the_made_up_characters():
    attributes = ca.class_attributes(50, seed=0)
    assert attributes.shape == (50, len(ca.ATTRIBUTES)) and attributes.dtype == bool
    assert not attributes.flags.writeable
    templates = stroke_templates(50, 0)
    strokes = np.array([len(t) for t in templates])
    np.testing.assert_array_equal(attributes[:, ca.ATTRIBUTES.index("several_strokes")], strokes >= 2)
    np.testing.assert_array_equal(attributes[:, ca.ATTRIBUTES.index("three_strokes")], strokes == 3)
    frequencies = attributes.mean(axis=0)  # each attribute splits the classes, none is constant
    assert np.all(frequencies > 0.02) and np.all(frequencies < 0.98)
    np.testing.assert_array_equal(ca.dataset_class_attributes("characters:classes=50,size=32"), attributes)
    with pytest.raises(ValueError, match="no known attributes"):
        ca.dataset_class_attributes("digits")
