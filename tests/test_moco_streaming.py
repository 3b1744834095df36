"""MoCo streaming its images (rl_repr.simclr.streaming_input, as SimCLR does) from a folder of JPEGs
and PNGs: a run stopped mid-epoch and resumed ends exactly as an uninterrupted one (parameters, key
encoder, queue and its image ids, the stream's position), and its queue holds the streamed images'
indices; a tfds stream, which carries no image index, refuses own-image exclusion in one sentence.
SimCLR's streaming tests cover the stream itself (tfds, 2 processes, memory)."""
import os

import chex
import jax
import numpy as np
import pytest

from rl_repr.core import checkpoint, runner
from rl_repr.core.config import ConfigError
from rl_repr.core.recipes import load_config_file
from streaming_images import TFDS_NAME, prepare_tfds, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STEPS_PER_EPOCH = 6  # 96 training images, batch 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), {"train": 24, "val": 6})


def _config(folder):
    """MoCo v2's ImageNet recipe shrunk (``:runlocal``: batch 16, a queue of 2 batches) with a ResNet-18
    (the ResNet-50 takes 40 s to compile) streaming the folder at 16 px for 1.5 epochs (9 steps),
    own-image keys left out of the negatives (the stream's image ids reach the queue)."""
    config = load_config_file(os.path.join(ROOT, "configs/moco_v2_imagenet.py"), "runlocal")
    config.update_from_flattened_dict({
        "model.depth": 18, "model.small_image_stem": True,
        "dataset": f"folder:{folder}", "eval_split": "val", "image_size": 16, "data_workers": 2, "knn_k": 5,
        "linear_eval.epochs": 2.0, "epochs": 1.5, "checkpoint_every_steps": 2, "queue_excludes_own_image": True})
    return config


def _final_state(target, workdir):
    ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", save_every_steps=2)
    state, step = ckpt.restore_latest(target)
    ckpt.close()
    return jax.device_get(state), step


def test_streamed_run_stopped_mid_epoch_resumes_to_the_uninterrupted_state_exactly(folder, tmp_path):
    config = _config(folder)
    reference = runner.run("moco", config, str(tmp_path / "reference"))
    assert reference["streamed"] is True and 0.0 <= reference["linear_probe_accuracy"] <= 1.0
    workdir = str(tmp_path / "stopped")
    assert runner.run("moco", config, workdir, stop_after_step=4) == {"stopped_at_step": 4}  # batch 4 of 6
    resumed = runner.run("moco", config, workdir)
    plan = runner.build(config).plan
    state, step = _final_state(plan.state, workdir)
    expected, expected_step = _final_state(plan.state, str(tmp_path / "reference"))
    assert step == expected_step == 9
    chex.assert_trees_all_equal(state, expected)  # f_q, f_k, optimizer, queue, ids, slot, stream position
    assert resumed["linear_probe_accuracy"] == reference["linear_probe_accuracy"]
    assert tuple(state.data_position[:2]) == divmod(9, STEPS_PER_EPOCH)
    # the queue holds the ids of the last two streamed batches, in their slots
    last_two = [plan.batch_for_step(step)["id"] for step in (8, 7)]  # steps 8 and 7 wrote slots 0 and 1
    np.testing.assert_array_equal(state.queue_ids, np.stack(last_two, axis=1))
    assert len(set(np.concatenate(last_two))) == 32  # 32 distinct images of the folder


def test_own_image_keys_need_image_ids_which_a_tfds_stream_lacks(folder, tmp_path):
    config = _config(folder)
    config.dataset, config.eval_split, config.data_dir = TFDS_NAME, "validation", prepare_tfds(tmp_path / "tfds")
    with pytest.raises(ConfigError, match="config.queue_excludes_own_image needs each training image's index, which "
                                          f"the stream of the tfds set '{TFDS_NAME}' does not carry; set it to False"):
        runner.build(config)


def test_a_streamed_run_refuses_to_score_the_key_encoder(folder):
    config = _config(folder)
    config.evaluate_key_encoder = True
    with pytest.raises(ConfigError, match="config.evaluate_key_encoder is for data loaded in memory; a streamed "
                                          "run evaluates f_q only"):
        runner.build(config)
