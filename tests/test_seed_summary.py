"""rl_repr.sweeps.seed_summary: one sweep per seed gathered into mean ± spread per cell."""
import json

import pytest

from rl_repr.sweeps import seed_summary


def _sweep_dir(tmp_path, seed, cells):
    directory = tmp_path / f"seed{seed}"
    directory.mkdir()
    entries = [{"name": name, "status": status, "overrides": {"seed": seed}, "results": results}
               for name, status, results in cells]
    (directory / "results.json").write_text(json.dumps({"cells": entries}))
    return str(directory)


def test_gather_takes_the_metrics_asked_for_over_the_finished_seeds(tmp_path):
    seed0 = _sweep_dir(tmp_path, 0, [("a", "done", {"linear_probe_accuracy": 0.9, "key_encoder_knn_accuracy": 0.8,
                                                    "train_seconds": 10.0}),
                                     ("b", "diverged", {})])
    seed1 = _sweep_dir(tmp_path, 1, [("a", "done", {"linear_probe_accuracy": 0.7, "key_encoder_knn_accuracy": 0.6,
                                                    "train_seconds": 20.0})])
    summary = seed_summary.gather([seed0, seed1], metrics=("linear_probe_accuracy", "key_encoder_knn_accuracy"))
    assert list(summary) == ["a"] and summary["a"]["seeds"] == [0, 1] and summary["a"]["train_seconds"] == 15.0
    assert summary["a"]["linear_probe_accuracy"]["values"] == [0.9, 0.7]
    assert summary["a"]["key_encoder_knn_accuracy"]["mean"] == pytest.approx(0.7)
    assert summary["a"]["key_encoder_knn_accuracy"]["std"] == pytest.approx(0.1)
    assert "| f_k kNN |" in seed_summary.markdown(summary, "t", metrics=("key_encoder_knn_accuracy",))


def test_a_metric_a_cell_lacks_is_one_sentence_naming_the_ones_it_has(tmp_path):
    seed0 = _sweep_dir(tmp_path, 0, [("a", "done", {"linear_probe_accuracy": 0.9, "knn_accuracy": 0.8})])
    with pytest.raises(ValueError, match="cell 'a' \\(seed 0\\) has no 'key_encoder_knn_accuracy' in its results; "
                                         "choose --metrics among knn_accuracy, linear_probe_accuracy."):
        seed_summary.gather([seed0], metrics=("key_encoder_knn_accuracy",))


def test_a_directory_without_a_sweep_summary_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path} holds no sweep summary \\(results.json\\); give the --dir of a "
                                         "sweep that has run"):
        seed_summary.gather([str(tmp_path)])
