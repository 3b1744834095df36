"""Text corpora for word2vec: reading, tokenising, the vocabulary, and integer encoding.

The pipeline (Mikolov et al. 2013, word2vec.c; gensim's ``Word2Vec`` does the same):

1. sentences: one per non-empty line of each text file, lowercased and split into
   runs of letters (:func:`tokenize`), or split on whitespace when pre-tokenised;
2. vocabulary: every word seen at least ``min_count`` times, most frequent first
   (ties in order of first appearance, as gensim sorts);
3. encoding: each sentence becomes int32 word ids with the out-of-vocabulary words
   *removed* (not replaced), so windows span the words that remain -- as in
   word2vec.c and gensim. Sentences longer than ``max_sentence_length`` are cut into
   pieces of that length (gensim's limit is 10,000 words).

Offline corpora: the Wikipedia excerpt gensim ships in its test data (106 articles,
452,944 tokens after gensim's own tokenisation), extracted once with gensim's
``WikiCorpus`` and cached as text; gensim's ``lee_background.cor`` (a few hundred news
sentences); and :func:`generate_topic_corpus`, sentences drawn from planted topics, for
tests. gensim is optional: only these bundled files need it.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
import tempfile
from typing import Iterable, Iterator, Sequence

import numpy as np

from rl_repr.core.errors import DataError, DatasetNotFoundError
from rl_repr.core.extras import require

WIKI_EXCERPT = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_BACKGROUND = "lee_background.cor"
GENSIM_MAX_SENTENCE_LENGTH = 10_000

# Runs of letters in any script; digits, underscores and punctuation split words.
_WORD = re.compile(r"[^\W\d_]+")


def tokenize(line: str, *, lowercase: bool = True) -> list[str]:
    """Splits a line of raw text into words: maximal runs of letters, lowercased by default."""
    return _WORD.findall(line.lower() if lowercase else line)


def read_sentences(paths: Sequence[str | os.PathLike], *, pretokenized: bool = False,
                   lowercase: bool = True, errors: str = "strict") -> Iterator[list[str]]:
    """Yields one sentence (a list of words) per non-empty line of each file, in order.

    Args:
      paths: UTF-8 text files.
      pretokenized: split lines on whitespace only (e.g. text already tokenised by
        another tool); otherwise :func:`tokenize` them.
      lowercase: lowercase the words (also for pre-tokenised text).
      errors: what to do with bytes that are not UTF-8: ``'strict'`` (stop, naming the file
        and the byte offset), ``'replace'`` or ``'ignore'`` (Python's codec error handlers).

    Raises:
      DatasetNotFoundError: a path does not exist (the message names it).
      DataError: with ``errors='strict'``, a file that is not UTF-8 text (binary, or another
        encoding): the message names the file and the offset of the first bad byte.
    """
    for path in paths:
        if not os.path.isfile(path):
            raise DatasetNotFoundError(f"corpus file {os.fspath(path)!r} does not exist; pass "
                                       "existing UTF-8 text files, one sentence or document per line.")
        offset = 0
        with open(path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8", errors=errors)
                except UnicodeDecodeError as error:
                    raise DataError(f"corpus file {os.fspath(path)!r} is not UTF-8 text (byte {offset + error.start} "
                                    f"is {raw[error.start:error.start + 1]!r}); convert it to UTF-8, or set "
                                    "config.data.encoding_errors='replace' to read it anyway.") from None
                offset += len(raw)
                if pretokenized:
                    words = (line.lower() if lowercase else line).split()
                else:
                    words = tokenize(line, lowercase=lowercase)
                if words:
                    yield words


# ------------------------------------------------------------------------- vocabulary
@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Words kept for training, most frequent first.

    Attributes:
      words: the kept words; word ``i`` has id ``i``.
      counts: int64 ``[V]``, occurrences of each word in the corpus.
    """

    words: tuple[str, ...]
    counts: np.ndarray

    def __post_init__(self):
        if len(self.words) != len(self.counts):
            raise ValueError(f"Vocabulary has {len(self.words)} words but {len(self.counts)} counts; "
                             "pass one count per word.")

    @property
    def size(self) -> int:
        return len(self.words)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """``word -> id``."""
        return {word: i for i, word in enumerate(self.words)}


def build_vocabulary(sentences: Iterable[Sequence[str]], *, min_count: int,
                     max_size: int | None = None) -> Vocabulary:
    """Counts words and keeps those seen at least ``min_count`` times.

    Order: count descending, ties by first appearance (gensim's order). ``max_size``
    then keeps only the most frequent ``max_size`` words.

    Raises:
      ValueError: ``min_count < 1``, or no word survives (the message gives the fix).
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}.")
    counter: collections.Counter[str] = collections.Counter()
    for sentence in sentences:
        counter.update(sentence)
    kept = [(word, count) for word, count in counter.items() if count >= min_count]
    kept.sort(key=lambda item: -item[1])  # stable: ties stay in first-appearance order
    if max_size is not None:
        kept = kept[:max_size]
    if not kept:
        raise DataError(f"no word occurs min_count={min_count} times in the corpus "
                        f"({sum(counter.values())} tokens); lower min_count or pass more text.")
    return Vocabulary(words=tuple(w for w, _ in kept),
                      counts=np.array([c for _, c in kept], dtype=np.int64))


# ------------------------------------------------------------------------- encoding
@dataclasses.dataclass(frozen=True)
class EncodedCorpus:
    """A corpus as one stream of in-vocabulary word ids.

    Attributes:
      ids: int32 ``[N]``, word ids in corpus order (out-of-vocabulary words removed).
      sentence_ids: int32 ``[N]``, non-decreasing; windows never cross a change.
      raw_word_count: every token read, out-of-vocabulary ones included (what gensim
        calls "raw words"; words per second are counted in these).
    """

    ids: np.ndarray
    sentence_ids: np.ndarray
    raw_word_count: int

    @property
    def num_words(self) -> int:
        return int(self.ids.shape[0])


def encode_corpus(sentences: Iterable[Sequence[str]], vocabulary: Vocabulary, *,
                  max_sentence_length: int = GENSIM_MAX_SENTENCE_LENGTH) -> EncodedCorpus:
    """Maps words to ids, drops unknown words, and cuts long sentences.

    Sentences are cut every ``max_sentence_length`` *raw* tokens, before unknown words
    are dropped (feed gensim the same pieces to train both on identical pairs).
    """
    if max_sentence_length < 1:
        raise ValueError(f"max_sentence_length must be >= 1, got {max_sentence_length}.")
    lookup = vocabulary.index.get
    tokens: list[str] = []
    lengths: list[int] = []
    for sentence in sentences:
        for start in range(0, len(sentence), max_sentence_length):
            piece = sentence[start:start + max_sentence_length]
            tokens.extend(piece)
            lengths.append(len(piece))
    # One dictionary lookup per token, once per corpus; the per-epoch work is all NumPy.
    ids = np.fromiter((lookup(word, -1) for word in tokens), dtype=np.int32, count=len(tokens))
    sentence_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    known = ids >= 0
    return EncodedCorpus(ids=ids[known], sentence_ids=sentence_ids[known], raw_word_count=len(tokens))


# ------------------------------------------------------------------------- bundled corpora
def gensim_datapath(name: str) -> str:
    """Path of a file in gensim's bundled test data (WordSim-353, SimLex-999, ...).

    Raises:
      ImportError: gensim is not installed (it is optional; the message says how to get it).
      FileNotFoundError: this gensim has no such file.
    """
    path = require("gensim.test.utils").datapath(name)  # MissingExtra names the "words" extra
    if not os.path.isfile(path):
        raise FileNotFoundError(f"gensim's test data has no {name!r} (looked at {path}); "
                                "install a gensim release that ships it (4.x does).")
    return path


def default_cache_dir() -> str:
    """``$RL_REPR_CACHE`` or ``~/.cache/rl_repr``: where extracted corpora are kept."""
    return os.environ.get("RL_REPR_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rl_repr"))


def wiki_excerpt_path(cache_dir: str | None = None) -> str:
    """Plain text of gensim's Wikipedia excerpt, one article per line; extracted once.

    gensim's ``WikiCorpus`` strips the markup and tokenises (lowercase, alphabetic
    tokens of 2-15 characters); the result is written atomically to
    ``<cache_dir>/text/enwiki-excerpt.txt`` and reused by later calls.
    """
    target = os.path.join(cache_dir or default_cache_dir(), "text", "enwiki-excerpt.txt")
    if os.path.isfile(target):
        return target
    source = gensim_datapath(WIKI_EXCERPT)
    from gensim.corpora.wikicorpus import WikiCorpus  # noqa: PLC0415 (optional dependency)

    os.makedirs(os.path.dirname(target), exist_ok=True)
    corpus = WikiCorpus(source, dictionary={}, processes=1)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".enwiki-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for article in corpus.get_texts():
                f.write(" ".join(article) + "\n")
        os.replace(tmp, target)  # readers never see a half-written corpus
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def corpus_sentences(source: str, *, files: Sequence[str] = (), cache_dir: str | None = None,
                     pretokenized: bool = False, lowercase: bool = True,
                     encoding_errors: str = "strict") -> list[list[str]]:
    """The sentences of a named corpus: ``'wiki_excerpt'``, ``'lee'`` or ``'files'``.

    The Wikipedia excerpt is already tokenised by gensim, so it is read as such.
    """
    if source == "wiki_excerpt":
        return list(read_sentences([wiki_excerpt_path(cache_dir)], pretokenized=True))
    if source == "lee":
        return list(read_sentences([gensim_datapath(LEE_BACKGROUND)], lowercase=lowercase))
    if source == "files":
        if not files:
            raise ValueError("corpus 'files' needs config.data.files: a list of text files.")
        return list(read_sentences(files, pretokenized=pretokenized, lowercase=lowercase, errors=encoding_errors))
    raise ValueError(f"unknown corpus {source!r}; choose 'wiki_excerpt', 'lee', 'files' or 'topics'.")


def generate_topic_corpus(*, num_topics: int, words_per_topic: int, num_sentences: int,
                          sentence_length: int, seed: int = 0) -> tuple[list[list[str]], dict[str, int]]:
    """Sentences with planted structure: each draws all its words from one topic.

    Word ``t<k>_w<j>`` belongs to topic ``k``; words of a topic co-occur and words of
    different topics never do, so trained vectors should sit nearest their own topic.
    Within a topic, words are drawn with Zipf-like weights ``1/(j+1)`` so frequencies
    vary (exercising subsampling and the noise distribution).

    Returns:
      ``(sentences, topic_of_word)``.
    """
    rng = np.random.default_rng(seed)
    names = np.array([[f"t{k}_w{j}" for j in range(words_per_topic)] for k in range(num_topics)])
    weights = 1.0 / np.arange(1, words_per_topic + 1)
    topics = rng.integers(0, num_topics, size=num_sentences)
    picks = rng.choice(words_per_topic, size=(num_sentences, sentence_length), p=weights / weights.sum())
    sentences = names[topics[:, None], picks].tolist()
    topic_of_word = {str(names[k, j]): k for k in range(num_topics) for j in range(words_per_topic)}
    return sentences, topic_of_word
