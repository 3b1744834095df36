"""A folder of images as a labelled dataset: ``DIR/<split>/<class>/<file>``.

The layout GPU clusters already hold ImageNet in (torchvision's ``ImageFolder``):
one folder per split (``train``, ``val`` ...), in it one folder per class, in it the
images, JPEG or PNG, of any size. ``config.dataset='folder:DIR'`` names it.

Listing is all this module does (decoding is ``rl_repr.data.images.decode``, streaming
``rl_repr.data.images.streaming``). Classes are the class folders of the *training* split in
sorted order, so every split and every process agrees on the label of a class; files are
sorted, so example ``i`` is the same image on every process. An example's id is its path
relative to the split folder (``n01440764/n01440764_10026.JPEG``), what the published
1% / 10% ImageNet subsets list (by file name).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from rl_repr.core.errors import DataError, DatasetNotFoundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FOLDER_PREFIX = "folder:"


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """One split of an image folder.

    Attributes:
      directory: ``DIR/<split>``.
      files: ``[N]`` paths relative to ``directory`` (``<class>/<file>``), sorted: the ids.
      labels: ``[N]`` int32, the index of each file's class in ``class_names``.
      class_names: the training split's class folders, sorted.
    """

    directory: str
    files: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_examples(self) -> int:
        return int(len(self.files))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def paths(self) -> np.ndarray:
        """``[N]`` full paths of the files."""
        return np.array([os.path.join(self.directory, f) for f in self.files])


def folder_root(dataset: str) -> str | None:
    """``'folder:DIR'`` -> ``DIR`` (``~`` expanded); None for any other dataset name."""
    if not dataset.startswith(FOLDER_PREFIX):
        return None
    return os.path.expanduser(dataset[len(FOLDER_PREFIX):])


def list_split(root: str, split: str, class_names: tuple[str, ...] | None = None) -> FolderSplit:
    """The images of ``root/split/<class>/<file>``, labelled by class folder.

    Args:
      root: the dataset folder (``DIR`` of ``folder:DIR``).
      split: the split folder's name (``config.train_split`` / ``config.eval_split``).
      class_names: the classes to label with (the training split's); None takes this
        split's own class folders.

    Raises:
      DatasetNotFoundError: ``root`` or ``root/split`` does not exist.
      DataError: the split holds no JPEG or PNG image in a class folder, or a class folder
        the training split lacks.
    """
    if not os.path.isdir(root):
        raise DatasetNotFoundError(f"The image folder {root!r} does not exist; point config.dataset='folder:DIR' "
                                "at a directory laid out as DIR/<split>/<class>/<image>.")
    directory = os.path.join(root, split)
    if not os.path.isdir(directory):
        found = sorted(e.name for e in os.scandir(root) if e.is_dir())
        raise DatasetNotFoundError(f"The image folder {root!r} has no split {split!r} (its splits: {found}); set "
                                "config.train_split / config.eval_split to one of them.")
    folders = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    names = tuple(folders) if class_names is None else tuple(class_names)
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise DataError(f"{directory!r} has class folders the training split lacks ({unknown[:3]}); give both "
                         "splits the same class folders.")
    index = {name: i for i, name in enumerate(names)}
    files, labels = [], []
    for folder in folders:
        images = sorted(e.name for e in os.scandir(os.path.join(directory, folder))
                        if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
        files += [f"{folder}/{name}" for name in images]
        labels += [index[folder]] * len(images)
    if not files:
        raise DataError(f"{directory!r} holds no JPEG or PNG image in a class folder; put the images in one "
                         f"folder per class ({directory}/<class>/<image>.jpg).")
    return FolderSplit(directory=directory, files=np.array(files), labels=np.array(labels, np.int32),
                       class_names=names)
