"""Tests for tfds image reading (rl_repr.data.tfds_images), fully offline.

Two tiny tfds datasets are built in a temporary data dir by GeneratorBasedBuilders
defined here (``download_and_prepare`` with no download): fixed-size RGB images
whose pixels encode the example id, and variable-size images with string labels
(the lfw layout). Reads are checked against the ids written, so the process shards
can be shown to be disjoint and to cover the split. A dataset absent from the data
dir must fail with the one-sentence preparation hint and download nothing.
"""

import itertools
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rl_repr.data.images import tfds as tfds_images

NUM_TRAIN, NUM_TEST = 10, 4
FIXED_SHAPE = (6, 5, 3)


class RlReprTestFixedImages(tfds.core.GeneratorBasedBuilder):
    """Example i: every pixel = i (train) or 100 + i (test), label i % 4."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=FIXED_SHAPE), "label": tfds.features.ClassLabel(num_classes=4)}
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, NUM_TRAIN), "test": self._generate_examples(100, NUM_TEST)}

    def _generate_examples(self, offset, count):
        for i in range(count):
            yield i, {"image": np.full(FIXED_SHAPE, offset + i, np.uint8), "label": i % 4}


class RlReprTestNamedFaces(tfds.core.GeneratorBasedBuilder):
    """Variable-size constant images (value 10 * i) labelled by a person's name."""

    VERSION = tfds.core.Version("1.0.0")
    NAMES = ("carol", "alice", "bob", "alice", "carol", "carol")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3)), "label": tfds.features.Text()}
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, name in enumerate(self.NAMES):
            yield i, {"image": np.full((6 + i, 9 - i, 3), 10 * i, np.uint8), "label": name}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tfds"))
    RlReprTestFixedImages(data_dir=directory).download_and_prepare()
    RlReprTestNamedFaces(data_dir=directory).download_and_prepare()
    return directory


FIXED = "rl_repr_test_fixed_images"
FACES = "rl_repr_test_named_faces"


def example_ids(images):
    """The id each fixed image encodes (all its pixels equal it)."""
    assert np.all(images == images[:, :1, :1, :1])
    return images[:, 0, 0, 0].astype(int).tolist()


# ----------------------------------------------------------------------------- missing data


def test_missing_dataset_is_one_clear_sentence_and_downloads_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for read in (
        lambda: tfds_images.load_tfds_images("cifar10", "train", str(empty)),
        lambda: tfds_images.iterate_tfds_batches("cifar10", "train", str(empty), 8, shuffle_seed=0),
        lambda: tfds_images.load_image_dataset("cifar10", "train", str(empty)),
    ):
        with pytest.raises(FileNotFoundError) as error:
            read()
        message = str(error.value)
        assert "'cifar10'" in message and str(empty) in message
        assert f"tfds build cifar10 --data_dir={empty}" in message
        assert "\n" not in message and message.count(". ") == 0  # one sentence
    assert os.listdir(empty) == []  # nothing was downloaded or created


def test_unknown_name_lists_supported_datasets(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown image dataset 'not_a_dataset'.*'digits'.*cifar10, cifar100"):
        tfds_images.load_image_dataset("not_a_dataset", "train", str(tmp_path))


def test_digits_by_name_and_rejects_tfds_options():
    assert tfds_images.load_image_dataset("digits", "test").num_examples == 360
    with pytest.raises(ValueError, match="image_size"):
        tfds_images.load_image_dataset("digits", "test", image_size=32)


# ----------------------------------------------------------------------------- in-memory reads


def test_load_reads_every_example_with_its_label(data_dir):
    train = tfds_images.load_image_dataset(FIXED, "train", data_dir, process_index=0, process_count=1)
    assert train.images.shape == (NUM_TRAIN,) + FIXED_SHAPE and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int32 and train.num_classes == 4 and train.name == FIXED
    ids = example_ids(train.images)
    assert sorted(ids) == list(range(NUM_TRAIN))
    np.testing.assert_array_equal(train.labels, np.array(ids) % 4)
    test = tfds_images.load_tfds_images(FIXED, "test", data_dir, process_index=0, process_count=1)
    assert sorted(example_ids(test.images)) == [100 + i for i in range(NUM_TEST)]


def test_two_processes_read_disjoint_halves(data_dir):
    shards = [
        example_ids(tfds_images.load_tfds_images(FIXED, "train", data_dir, process_index=i, process_count=2).images)
        for i in range(2)
    ]
    assert [len(shard) for shard in shards] == [5, 5]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(NUM_TRAIN))


@pytest.mark.parametrize("drop_remainder, sizes", [(False, [4, 3, 3]), (True, [3, 3, 3])])
def test_uneven_shards(data_dir, drop_remainder, sizes):
    shards = [
        example_ids(
            tfds_images.load_tfds_images(
                FIXED, "train", data_dir, process_index=i, process_count=3, drop_remainder=drop_remainder
            ).images
        )
        for i in range(3)
    ]
    assert [len(shard) for shard in shards] == sizes
    union = [i for shard in shards for i in shard]
    assert len(set(union)) == len(union)
    assert len(union) == NUM_TRAIN or drop_remainder


def test_string_labels_get_sorted_ids_and_images_are_resized(data_dir):
    faces = tfds_images.load_tfds_images(FACES, "train", data_dir, process_index=0, process_count=1, image_size=4)
    assert faces.images.shape == (6, 4, 4, 3) and faces.num_classes == 3
    names = {0: "alice", 1: "bob", 2: "carol"}  # vocabulary in sorted order
    for image, label in zip(faces.images, faces.labels):
        i = int(image[0, 0, 0]) // 10  # constant images stay constant through resize and crop
        assert np.all(image == 10 * i)
        assert names[int(label)] == RlReprTestNamedFaces.NAMES[i]
    with pytest.raises(ValueError, match="pass image_size"):
        tfds_images.load_tfds_images(FACES, "train", data_dir, process_index=0, process_count=1)


def test_bad_process_index_is_rejected(data_dir):
    with pytest.raises(ValueError, match="process_index=2"):
        tfds_images.load_tfds_images(FIXED, "train", data_dir, process_index=2, process_count=2)


# ----------------------------------------------------------------------------- streaming


def stream(data_dir, **kwargs):
    defaults = dict(process_index=0, process_count=1, shuffle_seed=None)
    return tfds_images.iterate_tfds_batches(FIXED, "train", data_dir, 2, **{**defaults, **kwargs})


def test_stream_batches_are_uint8_numpy_and_processes_are_disjoint(data_dir):
    per_process = []
    for index in range(2):
        batches = list(stream(data_dir, process_index=index, process_count=2, repeat=False))
        assert len(batches) == 2  # 5 examples per process, full batches of 2
        for batch in batches:
            assert batch["image"].shape == (2,) + FIXED_SHAPE and batch["image"].dtype == np.uint8
            assert batch["label"].dtype == np.int32
            np.testing.assert_array_equal(batch["label"], np.array(example_ids(batch["image"])) % 4)
        per_process.append([i for batch in batches for i in example_ids(batch["image"])])
    assert len(set(per_process[0] + per_process[1])) == 8


def test_stream_is_deterministic_given_seed_and_resumes(data_dir):
    def ids(iterator, count):
        return [example_ids(batch["image"]) for batch in itertools.islice(iterator, count)]

    first = ids(stream(data_dir, shuffle_seed=3), 12)  # repeats: 12 batches span 2.4 epochs
    assert first == ids(stream(data_dir, shuffle_seed=3), 12)
    assert first != ids(stream(data_dir, shuffle_seed=4), 12)
    assert ids(stream(data_dir, shuffle_seed=3, start_batch=7), 5) == first[7:]
    epoch = [i for batch in first[:5] for i in batch]
    assert sorted(epoch) == list(range(NUM_TRAIN))  # the first 5 batches are one shuffled epoch
    assert epoch != list(range(NUM_TRAIN)) or first[5:10] != first[:5]
