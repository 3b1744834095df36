"""Skip-gram batches: subsampling, dynamic windows, noise words, all vectorised in NumPy.

Per epoch (Mikolov et al. 2013, arXiv:1310.4546; word2vec.c; gensim ``Word2Vec``):

* **Subsampling.** Word ``w`` with count ``c`` out of ``N`` in-vocabulary tokens is
  kept with probability ``min(1, (sqrt(c / (s N)) + 1) * s N / c)`` for ``sample = s``
  (word2vec.c's form, which gensim also uses; ``s = 0`` keeps every word). Discarded
  words are removed before windows are formed, so windows reach further.
* **Dynamic windows.** Each kept position draws an effective window ``b`` uniformly
  from ``1..window`` (word2vec.c: ``b = window - rand() % window``); its contexts are
  the kept words at distance ``1..b`` in the same sentence. Hence a context at
  distance ``k`` is used with probability ``(window - k + 1) / window``.
* **Negatives** are drawn from the unigram distribution raised to ``3/4``:
  ``P_n(w) = c_w^0.75 / sum_v c_v^0.75``.

Batch layout (why positions and not explicit pairs): a batch row holds ``T``
consecutive kept positions plus ``window`` positions of halo on each side. Every
centre and every context is then one row of the same small token array, so the
trainer gathers ``T + 2 window`` output rows instead of one per pair, scores all
``2 window`` offsets with static slices (:func:`windowed`), and masks the pairs the
dynamic window or a sentence boundary excludes (:func:`context_mask`). Each pair
belongs to exactly one row -- the row of its centre -- so rows can be split across
devices freely.

Every function here is a pure function of its inputs and of an explicit
``numpy.random.Generator``; :class:`EpochStream` is a pure function of
``(corpus, keep probabilities, window, seed, epoch)``, so a resumed run rebuilds
exactly the batches an uninterrupted run saw.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rl_repr.data.text_vocab import EncodedCorpus

PAD_SENTENCE = -1  # sentence id of halo padding: never equal to a real sentence


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Subsampling keep probability per word: ``min(1, (sqrt(c/(sN)) + 1) sN/c)``.

    Args:
      counts: ``[V]`` word counts; ``N = sum(counts)``.
      sample: the threshold ``s`` (word2vec's ``-sample``, 1e-3 by default); 0 disables.

    Returns:
      float64 ``[V]`` in ``(0, 1]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts <= 0):
        raise ValueError("keep_probabilities needs a 1-D array of positive word counts.")
    if sample < 0:
        raise ValueError(f"sample must be >= 0 (0 disables subsampling), got {sample}.")
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution ``P_n(w) = c_w^power / sum_v c_v^power``, ``[V]``."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()


@dataclasses.dataclass(frozen=True)
class AliasTable:
    """Walker's alias table for O(1) exact sampling from a discrete distribution.

    Draw: pick a column ``i`` uniformly, keep it with probability ``accept[i]``, else
    take ``alias[i]`` (Vose 1991). Exact, unlike word2vec.c's fixed-size unigram table,
    and several times faster than a binary search over cumulative sums.
    """

    accept: np.ndarray  # float64 [V]
    alias: np.ndarray   # int32 [V]

    @classmethod
    def build(cls, probs: np.ndarray) -> "AliasTable":
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 1 or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ValueError("AliasTable.build needs a 1-D probability vector that sums to 1.")
        size = len(probs)
        scaled = probs * size
        accept = np.ones(size)
        alias = np.arange(size, dtype=np.int32)
        small = [i for i in range(size) if scaled[i] < 1.0]
        large = [i for i in range(size) if scaled[i] >= 1.0]
        while small and large:  # once per word, when the table is built (not per draw)
            few, many = small.pop(), large[-1]
            accept[few], alias[few] = scaled[few], many
            scaled[many] -= 1.0 - scaled[few]
            if scaled[many] < 1.0:
                small.append(large.pop())
        return cls(accept=accept, alias=alias)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """int32 ids of ``shape``."""
        column = rng.integers(0, len(self.accept), size=shape)
        keep = rng.random(shape) < self.accept[column]
        return np.where(keep, column, self.alias[column]).astype(np.int32)


def dynamic_windows(rng: np.random.Generator, size: int, window: int) -> np.ndarray:
    """Effective windows ``b ~ Uniform{1, ..., window}``, int32 ``[size]``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    return rng.integers(1, window + 1, size=size, dtype=np.int32)


def context_offsets(window: int) -> np.ndarray:
    """The ``2 window`` context offsets, in the order batches use: ``-window..-1, 1..window``."""
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)]).astype(np.int32)


# ------------------------------------------------------------------------- one epoch
@dataclasses.dataclass(frozen=True)
class EpochStream:
    """The ``M`` kept positions of one epoch, plus one padding entry at index ``M``.

    Attributes:
      ids: int32 ``[M + 1]`` word ids (padding: 0).
      sentence_ids: int32 ``[M + 1]`` (padding: ``PAD_SENTENCE``).
      windows: int32 ``[M + 1]`` effective windows (padding: 0, so it has no contexts).
    """

    ids: np.ndarray
    sentence_ids: np.ndarray
    windows: np.ndarray

    @property
    def num_positions(self) -> int:
        return int(self.ids.shape[0]) - 1


def epoch_rng(seed: int, epoch: int, purpose: int) -> np.random.Generator:
    """An independent generator per ``(seed, epoch, purpose)``; 0 = subsampling, 1 = windows."""
    return np.random.default_rng([seed, epoch, purpose])


def epoch_stream(corpus: EncodedCorpus, keep_prob: np.ndarray, *, window: int, seed: int,
                 epoch: int) -> EpochStream:
    """Subsamples the corpus and draws every position's effective window for ``epoch``."""
    keep = epoch_rng(seed, epoch, 0).random(corpus.num_words) < keep_prob[corpus.ids]
    ids = corpus.ids[keep]
    windows = dynamic_windows(epoch_rng(seed, epoch, 1), ids.shape[0], window)
    # The padding entry is appended once here so that batches are pure indexing.
    return EpochStream(ids=np.append(ids, 0).astype(np.int32),
                       sentence_ids=np.append(corpus.sentence_ids[keep], PAD_SENTENCE).astype(np.int32),
                       windows=np.append(windows, 0).astype(np.int32))


def steps_in_epoch(num_positions: int, positions_per_step: int) -> int:
    """Steps that cover ``num_positions`` kept positions (the last one partly padded)."""
    return max(1, -(-num_positions // positions_per_step))


def skipgram_batch(stream: EpochStream, start: int, *, rows: int, positions_per_row: int,
                   window: int, noise: AliasTable, negatives_shape: tuple[int, ...],
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The batch of ``rows * positions_per_row`` kept positions starting at ``start``.

    Positions past the end of the stream are padding (sentence ``PAD_SENTENCE``,
    window 0), so every batch has the same shapes and no pair reaches padding.

    Args:
      stream: the epoch's kept positions.
      start: first centre position of the batch.
      rows: ``R``, rows of the batch (split across devices).
      positions_per_row: ``T``, centres per row.
      window: the maximal window ``W``.
      noise: the noise distribution's alias table.
      negatives_shape: noise ids per row, e.g. ``(S,)`` for ``S`` negatives shared by the
        row, ``(2W, T, K)`` for ``K`` of its own per (offset, centre) pair, ``(0,)`` for none.
      rng: draws the negatives.

    Returns:
      ``tokens`` int32 ``[R, T + 2W]`` (centre ``i`` of a row is ``tokens[W + i]``),
      ``sentences`` int32 ``[R, T + 2W]``, ``windows`` int32 ``[R, T]`` and
      ``negatives`` int32 ``[R, *negatives_shape]``.
    """
    # Index into the stream; anything outside it reads the padding entry at M.
    count = stream.num_positions
    index = (start - window) + np.arange(rows)[:, None] * positions_per_row \
        + np.arange(positions_per_row + 2 * window)
    index = np.where((index >= 0) & (index < count), index, count)
    tokens = stream.ids[index]
    sentences = stream.sentence_ids[index]
    windows = stream.windows[index[:, window:positions_per_row + window]]
    return {
        "tokens": tokens,
        "sentences": sentences,
        "windows": windows,
        "negatives": noise.sample(rng, (rows, *negatives_shape)),
    }


# ------------------------------------------------------------------------- pair views
def windowed(halo, window: int):
    """``[T + 2W, ...] -> [2W, T, ...]``: entry ``[j, i]`` is ``halo[W + i + offset_j]``.

    Offset-major, because the per-pair work then is ``2W`` plain ``[T, d]`` products
    (batched dots over ``T`` inside are much slower on CPU). Static slices, so it works on
    NumPy and jax arrays alike and differentiates to shifted sums (the gradient of an
    output row collects every centre that used it).
    """
    length = halo.shape[0] - 2 * window
    columns = [halo[window + int(o):window + int(o) + length] for o in context_offsets(window)]
    stack = np.stack if isinstance(halo, np.ndarray) else _jnp_stack
    return stack(columns, axis=0)


def _jnp_stack(arrays, axis):
    import jax.numpy as jnp  # noqa: PLC0415 (keeps this module importable without JAX work)
    return jnp.stack(arrays, axis=axis)


def context_mask(sentences, windows, window: int):
    """Which (offset, centre) pairs exist, ``[2W, T]`` bool, for one row.

    Pair ``(j, i)`` is real when ``|offset_j| <= windows[i]`` (the dynamic window) and the
    context is in the centre's sentence (padding has its own sentence id, and a padded
    centre has window 0).

    Args:
      sentences: ``[T + 2W]`` sentence ids of the row's tokens.
      windows: ``[T]`` effective windows of the centres.
      window: the maximal window ``W``.
    """
    offsets = np.abs(context_offsets(window))
    length = windows.shape[0]
    centre_sentence = sentences[window:window + length]
    same_sentence = windowed(sentences, window) == centre_sentence[None, :]
    return same_sentence & (offsets[:, None] <= windows[None, :])


# ------------------------------------------------------------------------- a whole run
class SkipGramBatches:
    """Every batch of a training run, as a pure function of the step number.

    A step is ``updates`` SGD updates of ``rows`` rows of ``positions_per_row`` targets:
    arrays are ``[rows, updates, ...]`` (rows first, so the drivers split them over
    devices), and update ``m`` of row ``r`` holds the kept positions starting at
    ``epoch_start + (step_in_epoch * updates + m) * rows * T + r * T``. Each epoch ends
    with a partly padded step, so steps never straddle epochs. Resuming at step ``s``
    rebuilds exactly the batches an uninterrupted run saw (subsampling, windows and noise
    are seeded by ``(seed, epoch[, step])``).

    Args:
      corpus: the encoded corpus.
      keep_prob: ``[V]`` subsampling keep probabilities (:func:`keep_probabilities`).
      noise_probs: ``[V]`` negative-sampling distribution (:func:`noise_distribution`).
      negatives_shape: noise ids per row and update (see :func:`skipgram_batch`).
    """

    def __init__(self, corpus: EncodedCorpus, *, keep_prob: np.ndarray, noise_probs: np.ndarray,
                 window: int, seed: int, epochs: int, rows: int, positions_per_row: int,
                 updates: int, negatives_shape: tuple[int, ...]):
        self.corpus, self.keep_prob, self.window, self.seed = corpus, keep_prob, window, seed
        self.rows, self.positions_per_row, self.updates = rows, positions_per_row, updates
        self.negatives_shape = negatives_shape
        self.noise = AliasTable.build(noise_probs)
        self.positions_per_step = rows * positions_per_row * updates
        # Kept positions per epoch (the same draws epoch_stream makes) fix the step count.
        kept = [int(np.count_nonzero(epoch_rng(seed, e, 0).random(corpus.num_words) < keep_prob[corpus.ids]))
                for e in range(epochs)]
        self.kept_per_epoch = kept
        self.steps_per_epoch = [steps_in_epoch(k, self.positions_per_step) for k in kept]
        self.first_step = np.concatenate([[0], np.cumsum(self.steps_per_epoch)])
        self._stream: tuple[int, EpochStream] | None = None

    @property
    def total_steps(self) -> int:
        return int(self.first_step[-1])

    def locate(self, step: int) -> tuple[int, int]:
        """``(epoch, step_in_epoch)`` of a global step."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} is outside the run's {self.total_steps} steps.")
        epoch = int(np.searchsorted(self.first_step, step, side="right")) - 1
        return epoch, step - int(self.first_step[epoch])

    def stream(self, epoch: int) -> EpochStream:
        """The epoch's kept positions (the latest one is cached)."""
        if self._stream is None or self._stream[0] != epoch:
            self._stream = (epoch, epoch_stream(self.corpus, self.keep_prob, window=self.window,
                                                seed=self.seed, epoch=epoch))
        return self._stream[1]

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """The global batch of ``step``: each array ``[rows, updates, ...]``."""
        epoch, step_in_epoch = self.locate(step)
        batch = skipgram_batch(
            self.stream(epoch), step_in_epoch * self.positions_per_step,
            rows=self.updates * self.rows, positions_per_row=self.positions_per_row,
            window=self.window, noise=self.noise, negatives_shape=self.negatives_shape,
            rng=np.random.default_rng([self.seed, epoch, 2, step_in_epoch]))
        # [updates * rows, ...] in stream order -> [rows, updates, ...]
        return {name: np.swapaxes(array.reshape(self.updates, self.rows, *array.shape[1:]), 0, 1)
                for name, array in batch.items()}
