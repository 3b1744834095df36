"""Calibration: expected calibration error and the reliability diagram's bins (Guo et al. 2017).

A classifier is calibrated when, among predictions made with confidence p, a fraction p is
right. With the confidence ``c_i = max_j p_ij`` and correctness ``a_i = [argmax_j p_ij = y_i]``,
the N predictions are put in M equal-width bins ``B_m = {i : c_i in ((m-1)/M, m/M]}`` and

    ECE = sum_m |B_m| / N * | mean_{i in B_m} a_i  -  mean_{i in B_m} c_i |

(Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of Modern Neural Networks",
arXiv:1706.04599, Eq. 3; M = 15 as there). Empty bins add nothing. Label smoothing lowers it
(Müller, Kornblith & Hinton 2019, arXiv:1906.02629).
"""
from __future__ import annotations

import numpy as np

__all__ = ["expected_calibration_error", "calibration_bins"]


def calibration_bins(probabilities: np.ndarray, labels: np.ndarray, num_bins: int = 15
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: ``(count [M], accuracy [M], mean confidence [M])`` (accuracy and confidence 0 in
    an empty bin), for ``probabilities [N, k]`` (rows summing to 1) and integer ``labels [N]``."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    if probabilities.ndim != 2 or labels.shape != probabilities.shape[:1]:
        raise ValueError(f"calibration: probabilities {probabilities.shape} and labels {labels.shape}; pass "
                         "[N, k] class probabilities (a softmax, not logits) and [N] integer labels.")
    if num_bins < 1:
        raise ValueError(f"calibration: num_bins={num_bins}; pass a positive number of bins (15 in Guo et al.).")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    # bin m holds confidences in ((m-1)/M, m/M]; a confidence of exactly 0 joins the first bin
    index = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    count = np.bincount(index, minlength=num_bins).astype(np.float64)
    safe = np.maximum(count, 1.0)
    return (count, np.bincount(index, correct, minlength=num_bins) / safe,
            np.bincount(index, confidence, minlength=num_bins) / safe)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
    """ECE in [0, 1] of ``probabilities [N, k]`` against ``labels [N]`` (module docstring)."""
    count, accuracy, confidence = calibration_bins(probabilities, labels, num_bins)
    return float(np.sum(count / count.sum() * np.abs(accuracy - confidence)))
