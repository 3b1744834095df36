"""A folder of images as a dataset (rl_repr.data.images.folders): DIR/<split>/<class>/<file>."""
import os

import numpy as np
import pytest

from rl_repr.core.errors import DataError, DatasetNotFoundError
from rl_repr.data.images import folders
from streaming_images import write_image_folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("images"), {"train": 5, "val": 2}, classes=3)
    os.makedirs(os.path.join(root, "val_missing_class", "class1"))
    open(os.path.join(root, "train", "class0", "notes.txt"), "w").close()  # not an image: ignored
    return root


def test_lists_images_by_class_folder_with_sorted_ids(root):
    split = folders.list_split(root, "train")
    assert split.class_names == ("class0", "class1", "class2") and split.num_classes == 3
    assert split.num_examples == 15 and list(split.files) == sorted(split.files)
    assert split.files[0] == "class0/image000.jpg" and split.files[4] == "class0/image004.png"
    np.testing.assert_array_equal(split.labels, np.repeat([0, 1, 2], 5))
    assert split.paths[0] == os.path.join(root, "train", "class0", "image000.jpg")
    assert folders.folder_root("folder:~/data") == os.path.expanduser("~/data")
    assert folders.folder_root("imagenet2012") is None


def test_an_evaluation_split_uses_the_training_classes(root):
    val = folders.list_split(root, "val", ("class0", "class1", "class2", "class3"))
    np.testing.assert_array_equal(val.labels, np.repeat([0, 1, 2], 2))
    with pytest.raises(DataError, match="class folders the training split lacks"):
        folders.list_split(root, "val", ("class0",))


def _one_sentence(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message.count(". ") == 0
    return message


def test_missing_folder_missing_split_and_empty_split_are_one_sentence_each(root, tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        folders.list_split(str(tmp_path / "nowhere"), "train")
    assert "does not exist" in _one_sentence(error) and "DIR/<split>/<class>/<image>" in str(error.value)
    with pytest.raises(DatasetNotFoundError) as error:
        folders.list_split(root, "validation")
    assert "no split 'validation'" in _one_sentence(error) and "'val'" in str(error.value)
    assert "config.eval_split" in str(error.value)
    with pytest.raises(DataError) as error:
        folders.list_split(root, "val_missing_class")
    assert "holds no JPEG or PNG image" in _one_sentence(error)
