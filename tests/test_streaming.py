"""The per-process streaming pipeline (rl_repr.data.images.streaming), on a folder of JPEGs and PNGs
of varying sizes and on a prepared tfds set, both written in a temporary directory."""
import functools
import itertools
import logging
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from rl_repr.core.prefetch import DevicePrefetch
from rl_repr.data.images import decode, streaming
from rl_repr.data.images.batching import epoch_permutation_batches
from streaming_images import TFDS_NAME, TFDS_TRAIN, example_id, prepare_tfds, write_image_folder

SETTINGS = streaming.StreamSettings(image_size=16, workers=2, shuffle_buffer=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), {"train": 60, "val": 15})


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return prepare_tfds(tmp_path_factory.mktemp("tfds"))


def _source(kind, folder, tfds_dir, split="train"):
    if kind == "folder":
        return streaming.open_source(f"folder:{folder}", split)
    return streaming.open_source(TFDS_NAME, {"train": "train", "val": "validation"}[split], tfds_dir)


def _bilinear(image, box, size):
    """Independent reference: the box ``(y, x, h, w)`` cut out and resized to ``size`` bilinearly,
    with half-pixel centres (output pixel i samples input coordinate (i + 0.5) h / size - 0.5)."""
    y0, x0, height, width = box
    crop = image[y0:y0 + height, x0:x0 + width].astype(np.float64)

    def weights(extent):
        position = (np.arange(size) + 0.5) * extent / size - 0.5
        low = np.floor(position)
        return np.maximum(low, 0).astype(int), np.minimum(np.ceil(position), extent - 1).astype(int), position - low

    top, bottom, wy = weights(height)
    left, right, wx = weights(width)
    wy, wx = wy[:, None, None], wx[None, :, None]
    upper = crop[top][:, left] * (1 - wx) + crop[top][:, right] * wx
    lower = crop[bottom][:, left] * (1 - wx) + crop[bottom][:, right] * wx
    return np.round(upper * (1 - wy) + lower * wy)


def test_views_are_crops_of_the_whole_image_at_its_own_resolution(folder):
    source = _source("folder", folder, None)
    batch = next(streaming.train_batches(source, SETTINGS, seed=1, global_batch_size=8, start_step=3))
    rows = next(epoch_permutation_batches(1, source.num_examples, 8, start_step=3))
    assert batch["views"].shape == (8, 2, 16, 16, 3) and batch["views"].dtype == np.uint8
    np.testing.assert_array_equal(batch["label"], source.folder.labels[rows])
    for row, index in enumerate(rows):  # PIL decodes the whole file; JPEGs were decoded in a window only
        image = np.asarray(Image.open(source.folder.paths[index]).convert("RGB"))
        seed = tf.constant([1, 3 * 8 + row], tf.int64)
        boxes = decode.random_boxes(tf.constant(image.shape), seed, views=2, area=SETTINGS.crop_area,
                                    aspect=SETTINGS.crop_aspect, attempts=SETTINGS.crop_attempts).numpy()
        for view, box in enumerate(boxes):
            np.testing.assert_allclose(batch["views"][row, view], _bilinear(image, box, 16), atol=1)


def _torchvision_boxes(rng, height, width, count, attempts=10):
    """Independent reference: torchvision's RandomResizedCrop.get_params, in numpy."""
    boxes = []
    for _ in range(count):
        for _ in range(attempts):
            area = height * width * rng.uniform(0.08, 1.0)
            ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w, h = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
            if 0 < w <= width and 0 < h <= height:
                boxes.append((h, w))
                break
        else:
            boxes.append((height, width))
    return np.array(boxes)


def test_crop_boxes_are_torchvisions_random_resized_crop():
    seeds = tf.stack([tf.zeros(400, tf.int64), tf.range(400, dtype=tf.int64)], axis=1)
    boxes = tf.function(lambda: tf.map_fn(lambda seed: decode.random_boxes(
        tf.constant([375, 500, 3]), seed, views=2, area=(0.08, 1.0), aspect=(3 / 4, 4 / 3), attempts=10),
        seeds, fn_output_signature=tf.int32))().numpy().reshape(-1, 4)
    y, x, height, width = boxes.T
    assert np.all((y >= 0) & (x >= 0) & (y + height <= 375) & (x + width <= 500))
    area, aspect = height * width / (375 * 500), width / height
    assert np.all((area > 0.075) & (area <= 1.0)) and np.all((aspect > 0.74) & (aspect < 1.34))
    reference = _torchvision_boxes(np.random.default_rng(0), 375, 500, 800)
    reference_area = reference[:, 0] * reference[:, 1] / (375 * 500)
    assert abs(area.mean() - reference_area.mean()) < 0.05  # both about 0.5 (standard error 0.015)
    assert abs(np.median(aspect) - np.median(reference[:, 1] / reference[:, 0])) < 0.05
    assert np.mean(np.any(boxes[0::2] != boxes[1::2], axis=1)) > 0.95  # the two views differ


@pytest.mark.parametrize("kind", ["folder", "tfds"])
def test_a_stream_opened_at_step_t_is_the_uninterrupted_stream_from_t(kind, folder, tfds_dir):
    source = _source(kind, folder, tfds_dir)
    per_epoch = source.steps_per_epoch(16)
    open_at = functools.partial(streaming.train_batches, source, SETTINGS, seed=2, global_batch_size=16)
    uninterrupted = list(itertools.islice(open_at(start_step=0), per_epoch + 2))
    resumed = list(itertools.islice(open_at(start_step=per_epoch - 1), 3))  # across an epoch's end
    for a, b in zip(uninterrupted[per_epoch - 1:], resumed):
        np.testing.assert_array_equal(a["views"], b["views"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(uninterrupted[0]["views"], uninterrupted[per_epoch]["views"])  # reshuffled


def test_each_process_reads_its_own_rows_of_the_global_batch(folder):
    source = _source("folder", folder, None)
    whole = next(streaming.train_batches(source, SETTINGS, seed=0, global_batch_size=16, start_step=5))
    halves = [next(streaming.train_batches(source, SETTINGS, seed=0, global_batch_size=16, start_step=5,
                                           process_index=i, process_count=2)) for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([h["views"] for h in halves]), whole["views"])


def test_tfds_processes_read_disjoint_shards_that_cover_the_split(tfds_dir):
    source = _source("tfds", None, tfds_dir)
    per_epoch = source.steps_per_epoch(16, process_count=2)
    seen = [[example_id(view) for batch in itertools.islice(streaming.train_batches(
        source, SETTINGS, seed=0, global_batch_size=16, process_index=i, process_count=2), per_epoch)
        for view in batch["views"][:, 0]] for i in range(2)]
    assert [len(set(ids)) for ids in seen] == [TFDS_TRAIN // 2] * 2
    assert sorted(seen[0] + seen[1]) == list(range(TFDS_TRAIN))


@pytest.mark.parametrize("kind", ["folder", "tfds"])
def test_evaluation_batches_cover_the_split_once_across_processes(kind, folder, tfds_dir):
    source = _source(kind, folder, tfds_dir, "val")
    shown = {}
    for processes in (1, 3):
        parts = [list(streaming.eval_batches(source, SETTINGS, batch_size=8, process_index=i,
                                             process_count=processes)) for i in range(processes)]
        assert len({len(p) for p in parts}) == 1  # every process runs the same number of batches
        batches = [b for p in parts for b in p]
        ids = np.concatenate([b["id"][b["mask"]] for b in batches])
        assert sorted(ids) == list(range(source.num_examples))
        images = np.concatenate([b["image"][b["mask"]] for b in batches])
        labels = np.concatenate([b["label"][b["mask"]] for b in batches])
        if kind == "tfds":  # the image an id names, whatever the number of processes
            shown[processes] = dict(zip(ids.tolist(), [example_id(image) for image in images]))
            assert sorted(shown[processes].values()) == list(range(source.num_examples))
            np.testing.assert_array_equal(labels, [shown[processes][i] % 4 for i in ids])
        else:
            np.testing.assert_array_equal(labels, source.folder.labels[ids])
    if kind == "tfds":
        assert shown[1] == shown[3]


def test_unreadable_images_are_skipped_counted_and_named(tmp_path, caplog):
    root = write_image_folder(tmp_path, {"train": 5}, classes=2)
    broken = [tmp_path / "train" / "class0" / "image000.jpg", tmp_path / "train" / "class1" / "image004.png"]
    broken[0].write_bytes(b"not a jpeg")
    broken[1].write_bytes(b"")
    source = streaming.open_source(f"folder:{root}", "train")
    with caplog.at_level(logging.WARNING, logger="rl_repr"):
        batch = next(streaming.train_batches(source, SETTINGS, seed=0, global_batch_size=10))
        evaluation = next(streaming.eval_batches(source, SETTINGS, batch_size=10))
    assert batch["views"].shape[0] == 10
    assert evaluation["mask"].sum() == 8
    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(skipped) == 4 and all(any(str(p) in m for p in broken) for m in skipped)
    assert "(2 so far" in skipped[1]


def test_device_prefetch_places_the_next_batch_ahead_and_reopens_on_a_jump():
    opened, placed = [], []
    two_placed = threading.Event()

    def open_stream(start):
        opened.append(start)
        return ({"step": np.array(s)} for s in itertools.count(start))

    def put(batch):
        placed.append(int(batch["step"]))
        if len(placed) >= 2:
            two_placed.set()
        return batch

    prefetch = DevicePrefetch(open_stream, put, ahead=1)
    assert int(prefetch(0)["step"]) == 0
    assert two_placed.wait(timeout=10)  # step 1 was placed before anyone asked for it
    assert [int(prefetch(s)["step"]) for s in (1, 2, 7, 8)] == [1, 2, 7, 8]
    assert opened == [0, 7]
    prefetch.close()

    def failing(start):
        yield {"step": np.array(start)}
        raise OSError("disk gone")

    prefetch = DevicePrefetch(failing)
    prefetch(0)
    with pytest.raises(OSError, match="disk gone"):
        prefetch(1)
    prefetch.close()
