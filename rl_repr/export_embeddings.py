"""Writing word vectors: word2vec text and binary formats, and TensorBoard projector files.

Formats (Mikolov et al.'s word2vec.c, read by ``gensim.models.KeyedVectors.load_word2vec_format``):

* **text**: a header line ``"<V> <d>"``, then one line per word: the word and its ``d``
  values separated by single spaces (``%.9g``, enough digits to round-trip float32);
* **binary**: the same header, then per word the UTF-8 word, a space, ``d`` little-endian
  float32 values (``4 d`` bytes) and a newline, as word2vec.c writes it.

Words must not contain whitespace (neither format can represent it).

TensorBoard projector: ``vectors.tsv`` (one tab-separated row per word), ``metadata.tsv``
(one word per line, same order) and ``projector_config.pbtxt`` pointing at both; open
the directory with ``tensorboard --logdir DIR`` (Projector tab) or load the two TSV files
at projector.tensorflow.org.

Every file is written to a temporary name and renamed, so a crash never leaves a
half-written file in place of a good one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def _atomic(path: str, mode: str) -> Iterator:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


def save_word2vec_format(path: str, words: Sequence[str], vectors: np.ndarray, *,
                         binary: bool = False) -> str:
    """Writes ``words`` and ``vectors [V, d]`` in word2vec's text or binary format; returns the path."""
    vectors = _checked(words, vectors)
    header = f"{vectors.shape[0]} {vectors.shape[1]}\n"
    if binary:
        little_endian = vectors.astype("<f4")
        with _atomic(path, "wb") as f:
            f.write(header.encode("utf-8"))
            for word, row in zip(words, little_endian):
                f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
    else:
        with _atomic(path, "w") as f:
            f.write(header)
            for word, row in zip(words, vectors):
                f.write(word + " " + " ".join(f"{value:.9g}" for value in row) + "\n")
    return path


def save_projector_files(directory: str, words: Sequence[str], vectors: np.ndarray, *,
                         tensor_name: str = "word2vec") -> dict[str, str]:
    """Writes TensorBoard projector files into ``directory``; returns their paths."""
    vectors = _checked(words, vectors)
    paths = {name: os.path.join(directory, name)
             for name in ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt")}
    with _atomic(paths["vectors.tsv"], "w") as f:
        np.savetxt(f, vectors, fmt="%.9g", delimiter="\t")
    with _atomic(paths["metadata.tsv"], "w") as f:
        f.write("".join(word + "\n" for word in words))  # one column: no header line
    with _atomic(paths["projector_config.pbtxt"], "w") as f:
        f.write("embeddings {\n"
                f'  tensor_name: "{tensor_name}"\n'
                '  tensor_path: "vectors.tsv"\n'
                '  metadata_path: "metadata.tsv"\n'
                "}\n")
    return paths
