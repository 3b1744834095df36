"""Writing word vectors: word2vec text and binary formats, and TensorBoard projector files.

The word2vec formats (Mikolov et al.'s word2vec.c) are written by gensim's
``KeyedVectors.save_word2vec_format``, the reader everyone uses: a header ``"<V> <d>"``, then
per word the word and its ``d`` values (text), or the UTF-8 word, a space and ``d``
little-endian float32 values (binary). Words must not contain whitespace (neither format can
represent it).

TensorBoard projector: ``vectors.tsv`` (one tab-separated row per word), ``metadata.tsv`` (one
word per line, same order) and ``projector_config.pbtxt`` pointing at both; open the directory
with ``tensorboard --logdir DIR`` (Projector tab) or load the two TSV files at
projector.tensorflow.org.

Every file is written to a temporary name and renamed (``rl_repr.core.files``), so a crash
never leaves a half-written file in place of a good one.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from rl_repr.core.extras import require
from rl_repr.core.files import atomic_open, atomic_path

ml_collections = require("ml_collections")


def _checked(words: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors has shape {vectors.shape} for {len(words)} words; pass one "
                         "[d] row per word.")
    bad = next((w for w in words if not w or any(ch.isspace() for ch in w)), None)
    if bad is not None:
        raise ValueError(f"word {bad!r} is empty or contains whitespace, which the word2vec and "
                         "projector formats cannot store; tokenise it first.")
    return vectors


def keyed_vectors(words: Sequence[str], vectors: np.ndarray):
    """``gensim.models.KeyedVectors`` holding ``vectors [V, d]`` under ``words`` (in order)."""
    KeyedVectors = require("gensim.models").KeyedVectors  # gensim only when vectors are used

    vectors = _checked(words, vectors)
    keyed = KeyedVectors(vector_size=vectors.shape[1])
    keyed.add_vectors(list(words), vectors)
    # Words come most frequent first; a count in that order keeps gensim's sort (by count) as is.
    keyed.allocate_vecattrs(["count"], [np.int64])
    keyed.expandos["count"][:] = np.arange(len(words), 0, -1)
    return keyed


def save_word2vec_format(path: str, words: Sequence[str], vectors: np.ndarray, *,
                         binary: bool = False) -> str:
    """Writes ``words`` and ``vectors [V, d]`` in word2vec's text or binary format; returns the path."""
    keyed = keyed_vectors(words, vectors)
    with atomic_path(path) as tmp:
        keyed.save_word2vec_format(tmp, binary=binary)
    return path


def save_projector_files(directory: str, words: Sequence[str], vectors: np.ndarray, *,
                         tensor_name: str = "word2vec") -> dict[str, str]:
    """Writes TensorBoard projector files into ``directory``; returns their paths."""
    vectors = _checked(words, vectors)
    paths = {name: os.path.join(directory, name)
             for name in ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt")}
    with atomic_open(paths["vectors.tsv"]) as f:
        np.savetxt(f, vectors, fmt="%.9g", delimiter="\t")
    with atomic_open(paths["metadata.tsv"]) as f:
        f.write("".join(word + "\n" for word in words))  # one column: no header line
    with atomic_open(paths["projector_config.pbtxt"]) as f:
        f.write("embeddings {\n"
                f'  tensor_name: "{tensor_name}"\n'
                '  tensor_path: "vectors.tsv"\n'
                '  metadata_path: "metadata.tsv"\n'
                "}\n")
    return paths


def export_vectors(config: ml_collections.ConfigDict, directory: str, words: Sequence[str],
                   vectors: np.ndarray) -> dict[str, str]:
    """Writes the input vectors in the formats ``config.export`` asks for; returns the paths."""
    paths = {}
    if config.export.word2vec_text:
        paths["word2vec_text"] = save_word2vec_format(os.path.join(directory, "vectors.txt"), words, vectors)
    if config.export.word2vec_binary:
        paths["word2vec_binary"] = save_word2vec_format(os.path.join(directory, "vectors.bin"), words, vectors,
                                                        binary=True)
    if config.export.projector:
        paths["projector"] = os.path.dirname(
            save_projector_files(os.path.join(directory, "projector"), words, vectors)["vectors.tsv"])
    return paths
