"""Expected calibration error (Guo et al. 2017) against a numpy reference written from the paper."""
import numpy as np
import pytest

from rl_repr.evaluation.calibration import calibration_bins, expected_calibration_error


def _reference_ece(probabilities, labels, num_bins=15):
    """Eq. 3 of Guo et al.: bins (m-1)/M < conf <= m/M, ECE = sum |B|/n |acc(B) - conf(B)|."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    total = 0.0
    for m in range(1, num_bins + 1):
        low, high = (m - 1) / num_bins, m / num_bins
        members = (confidence > low) & (confidence <= high)
        if m == 1:
            members |= confidence == 0
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return total


@pytest.mark.parametrize("num_bins", [15, 10, 1])
def test_ece_matches_reference(num_bins):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 10)) * rng.uniform(0.5, 4.0, size=(500, 1))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.uniform(size=500) < 0.7, probabilities.argmax(1), rng.integers(0, 10, 500))
    np.testing.assert_allclose(expected_calibration_error(probabilities, labels, num_bins),
                               _reference_ece(probabilities, labels, num_bins), rtol=1e-10, atol=1e-12)


def test_edges_and_extremes():
    # confidences exactly on a bin edge go to the lower bin; a perfectly calibrated set scores 0
    probabilities = np.array([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 1] * 2)
    assert expected_calibration_error(probabilities, labels, 5) == pytest.approx(0.0, abs=1e-12)
    count, accuracy, confidence = calibration_bins(probabilities, labels, 5)
    assert count[2] == 10 and accuracy[2] == pytest.approx(0.6)  # 0.6 lies in (0.4, 0.6]
    # always wrong at confidence 1: ECE = 1
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(np.ones((3,)), np.zeros(3, int))
