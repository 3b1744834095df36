"""SimCLR streaming its images (rl_repr.simclr.streaming_input) from a folder of JPEGs and PNGs and
from a prepared tfds set: the ImageNet recipe's runlocal shrink end to end (and its first batch from
tfds), 2 processes x 4 devices against 1 x 8, a run killed mid-epoch and resumed, and peak memory
against 10x the images."""
import json
import logging
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from rl_repr.core import checkpoint, runner
from rl_repr.core.recipes import load_config_file
from streaming_images import TFDS_NAME, prepare_tfds, tiny_streaming_config, write_image_folder
from two_processes import run_two_processes
from compilation import xla_flags

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """96 training images (as many as the tfds set: the same programs) and 24 to evaluate."""
    return write_image_folder(tmp_path_factory.mktemp("images"), {"train": 24, "val": 6})


def _config(folder):
    """Two epochs of 6 steps; a checkpoint every 2 steps."""
    return tiny_streaming_config(folder, epochs=2.0, **{"linear_eval.epochs": 1.0})


def test_imagenet_runlocal_streams_end_to_end_from_a_folder_and_batches_from_a_tfds_set(folder, tmp_path, caplog):
    config = load_config_file(os.path.join(ROOT, "configs/simclr_imagenet.py"), "runlocal")
    config.dataset, config.eval_split = f"folder:{folder}", "val"
    with caplog.at_level(logging.INFO, logger="rl_repr"):
        results = runner.run("simclr", config, str(tmp_path / "folder"))
    assert 0.0 <= results["linear_probe_accuracy"] <= results["linear_probe_top5_accuracy"] <= 1.0
    assert 0.0 <= results["knn_accuracy"] <= 1.0 and results["streamed"] is True
    lines = [r.getMessage() for r in caplog.records]
    for phase in ("Streaming", "step 6/6", "embedding 'train'", "linear classifier: epoch 10/10", "kNN"):
        assert any(line.startswith(phase) for line in lines), phase  # every phase shows progress

    # the same recipe from a prepared tfds set: the runner only opens another source (the sources
    # themselves are compared image by image in test_streaming.py), so it is enough that the run
    # streams both splits from it and hands the step a global batch of the recipe's shape
    config.dataset, config.eval_split = TFDS_NAME, "validation"
    config.data_dir = prepare_tfds(tmp_path / "tfds")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rl_repr"):
        run = runner.build(config)
    assert any(r.getMessage().startswith(f"Streaming '{TFDS_NAME}': split 'train' (96 images) for training, "
                                         "'validation' (20)") for r in caplog.records)
    batch = jax.device_get(run.batch_for_step(0))
    run.close()
    assert batch["views"].shape == (16, 2, 32, 32, 3) and batch["views"].dtype == np.uint8  # [B, views, H, W, C]


def test_two_processes_read_disjoint_shards_and_match_one_process(folder, tmp_path):
    steps, out = 3, str(tmp_path / "params.npz")
    run_two_processes("streaming_simclr_worker.py", lambda i, port: ["multihost", folder, port, i, steps, out],
                      tmp_path, timeout=400)
    ids = [np.load(f"{out}.ids{i}.npy") for i in range(2)]  # [steps of one epoch, 8] each
    assert all(not set(a) & set(b) for a, b in zip(*ids))  # every step: disjoint halves of the batch
    assert sorted(np.concatenate(ids, axis=None)) == list(range(96))  # together: the epoch (96 images)

    run = runner.build(_config(folder))
    placed = run.driver.put_state(run.state)
    losses = []
    for step in range(steps):
        placed, metrics = run.step_fn(placed, run.batch_for_step(step))
        losses.append(float(metrics["loss"]))
    two = np.load(out)
    np.testing.assert_allclose(two["losses"], losses, rtol=1e-5)
    params = jax.device_get(run.driver.get_state(placed).params)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(str(k.key) for k in path)
        np.testing.assert_allclose(two[name], leaf, rtol=1e-4, atol=1e-5, err_msg=name)


def _interrupt_at(monkeypatch, call_number, action):
    """Makes the compiled step run ``action`` at its ``call_number``-th call."""
    from rl_repr.core import drivers

    original = drivers.Driver.compile_step

    def compile_step(self, per_device_step):
        step_fn, calls = original(self, per_device_step), {"n": 0}

        def wrapped(state, batch):
            calls["n"] += 1
            if calls["n"] == call_number:
                action()
            return step_fn(state, batch)

        return wrapped

    monkeypatch.setattr(drivers.Driver, "compile_step", compile_step)


def _final_params(config, workdir):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=2)
    state, step = ckpt.restore_latest(runner.build(config).state)
    ckpt.close()
    return jax.device_get(state.params), step


def test_a_run_killed_mid_epoch_and_resumed_ends_as_an_uninterrupted_one(folder, tmp_path, monkeypatch):
    reference = runner.run("simclr", _config(folder), str(tmp_path / "reference"))
    workdir = str(tmp_path / "killed")

    def crash():
        raise KeyboardInterrupt("killed")

    _interrupt_at(monkeypatch, 4, crash)  # during step 4 of the first epoch's 6; the checkpoint at 2 survives
    with pytest.raises(KeyboardInterrupt):
        runner.run("simclr", _config(folder), workdir)
    monkeypatch.undo()
    resumed = runner.run("simclr", _config(folder), workdir)
    params, step = _final_params(_config(folder), workdir)
    reference_params, reference_step = _final_params(_config(folder), str(tmp_path / "reference"))
    assert step == reference_step == 12
    chex.assert_trees_all_equal(params, reference_params)
    assert resumed["knn_accuracy"] == reference["knn_accuracy"]
    assert resumed["linear_probe_accuracy"] == reference["linear_probe_accuracy"]


def _peak_memory(root, workdir, train_images):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(8),
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    epochs = 2 / (train_images // 32) - 1e-9  # two steps of 32 images, whatever the number of images
    done = subprocess.run([sys.executable, os.path.join(HERE, "streaming_simclr_worker.py"), "memory", root,
                           str(workdir), repr(epochs)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["steps"] == 2
    return int(done.stdout.split("peak_rss_bytes")[-1].split()[0])


def test_peak_memory_does_not_grow_with_ten_times_the_images(tmp_path):
    peaks = {}
    for per_class in (75, 750):  # 300 and 3000 training images
        root = write_image_folder(tmp_path / f"images{per_class}", {"train": per_class, "val": 10},
                                  sizes=(64, 128))
        peaks[per_class] = _peak_memory(root, tmp_path / f"run{per_class}", 4 * per_class)
    in_memory = 2700 * 64 * 64 * 3  # 33 MB: what the extra images would take in memory, decoded at 64 px
    assert peaks[750] - peaks[75] < min(25 * 2 ** 20, in_memory), peaks
