"""Small image sets written to disk for the streaming tests (shared by several test files).

* :func:`write_image_folder`: ``root/<split>/<class>/<file>``, images of varying sizes with a
  smooth pattern of their class, JPEG (quality 90) with every fifth one PNG;
* :class:`RlReprTestStreamImages`: a tfds set prepared offline whose JPEG images are of one
  colour that encodes the example's index (:func:`example_id`), so a crop names its image.
"""
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

FOLDER_CLASSES = 4
TFDS_TRAIN, TFDS_VALIDATION = 96, 20


def write_image_folder(root, per_class: dict, *, classes: int = FOLDER_CLASSES, seed: int = 0,
                       sizes: tuple[int, int] = (24, 72)) -> str:
    """Writes ``per_class[split]`` images of each class into ``root/<split>/class<k>/``; returns root."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for k in range(classes):
            directory = os.path.join(root, split, f"class{k}")
            os.makedirs(directory, exist_ok=True)
            for i in range(count):
                height, width = rng.integers(*sizes, size=2)
                y, x = np.mgrid[0:height, 0:width]
                pixels = np.stack([(x * (k + 2) * 4) % 256, (y * (7 - k) * 3 + i) % 256,
                                   np.full((height, width), 50 * k + 3 * i)], -1) % 256
                image = Image.fromarray(pixels.astype(np.uint8))
                if i % 5 == 4:
                    image.save(os.path.join(directory, f"image{i:03d}.png"))
                else:
                    image.save(os.path.join(directory, f"image{i:03d}.jpg"), quality=90)
    return str(root)


def id_colour(index: int) -> tuple[int, int, int]:
    """The colour of example ``index`` (< 256): two channels in steps of 16 that JPEG keeps."""
    return 16 * (index // 16) + 8, 16 * (index % 16) + 8, 128


def example_id(image: np.ndarray) -> int:
    """The example index a (crop of an) :class:`RlReprTestStreamImages` image shows."""
    red, green = np.median(image[..., 0]), np.median(image[..., 1])
    return int(round((red - 8) / 16)) * 16 + int(round((green - 8) / 16))


class RlReprTestStreamImages(tfds.core.GeneratorBasedBuilder):
    """Example i of a split: one colour (``id_colour(i)``), a random size, label i % 4; JPEG."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=4)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(TFDS_TRAIN, 0), "validation": self._generate_examples(TFDS_VALIDATION, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            height, width = rng.integers(16, 48, size=2)
            yield i, {"image": np.full((height, width, 3), id_colour(i), np.uint8), "label": i % 4}


TFDS_NAME = "rl_repr_test_stream_images"


def prepare_tfds(data_dir) -> str:
    """Prepares :class:`RlReprTestStreamImages` under ``data_dir`` (offline); returns the dir."""
    RlReprTestStreamImages(data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


def tiny_streaming_config(root: str, **overrides):
    """The tiny SimCLR of ``simclr_tiny`` streaming ``folder:root`` (16 px crops, 'train' / 'val')."""
    from simclr_tiny import tiny_simclr_config

    settings = {"dataset": f"folder:{root}", "streaming": "on", "image_size": 16, "train_split": "train",
                "eval_split": "val", "data_workers": 2, "knn_k": 5, "eval_batch_size": 32,
                "linear_eval.epochs": 3.0, "linear_eval.batch_size": 32}
    return tiny_simclr_config(**{**settings, **overrides})
