"""Skip-gram batches: subsampling, dynamic windows, noise words, all vectorised in NumPy.

Per epoch (Mikolov et al. 2013, arXiv:1310.4546; word2vec.c; gensim ``Word2Vec``):

* **Subsampling.** Word ``w`` with count ``c`` out of ``N`` in-vocabulary tokens is
  kept with probability ``min(1, (sqrt(c / (s N)) + 1) * s N / c)`` for ``sample = s``
  (word2vec.c's form, which gensim also uses; ``s = 0`` keeps every word). Discarded
  words are removed before windows are formed, so windows reach further.
* **Dynamic windows.** Each kept position (a *target*) gets an effective window ``b``
  in ``1..window``; its contexts are the kept words at distance ``1..b`` on either side
  in the same sentence. word2vec.c draws ``b`` uniformly and independently; here the
  draws are *stratified* per row of ``T`` targets: the row uses each value of ``b``
  equally often (up to one), assigned to its positions by a uniformly random
  permutation. Each position's ``b`` is still uniform on ``1..window`` (tested), so a
  context at distance ``k`` is used with probability ``(window - k + 1) / window``.
* **Negatives** are drawn from the unigram distribution raised to ``3/4``,
  ``P_n(w) = c_w^0.75 / sum_v c_v^0.75`` (Walker's alias method, exact).

Why stratify: the number of pairs at each distance in a row is then fixed, so a batch
is a statically shaped list of *real* pairs. Targets are listed in window order (largest
``b`` first) and a row's contexts in groups ``(-1, +1, -2, +2, ...)``: the contexts at
distance ``k`` belong to the first ``n_k`` targets (:func:`pair_layout`). The trainer
scores each group with one batched product against a prefix of the targets -- about
``T (window + 1)`` pairs per row instead of ``2 window T`` masked slots. Only pairs
crossing a sentence boundary or the end of the epoch are masked.

Every function here is a pure function of its inputs and of an explicit
``numpy.random.Generator``; epochs and batches are seeded by ``(seed, epoch[, step])``,
so a resumed run rebuilds exactly the batches an uninterrupted run saw.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from rl_repr.data.text.vocab import EncodedCorpus

PAD_SENTENCE = -1  # sentence id of padding past the end of an epoch: never a real sentence


# ------------------------------------------------------------------------- distributions
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

    accept: np.ndarray  # float32 [V]
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
        return cls(accept=accept.astype(np.float32), alias=alias)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """int32 ids of ``shape``.

        The columns are int32 and the coins float32 (exact up to float32's 2^-24, twice as
        fast as int64/float64 draws: the noise words are the largest part of a batch).
        """
        column = rng.integers(0, len(self.accept), size=shape, dtype=np.int32)
        keep = rng.random(shape, dtype=np.float32) < self.accept[column]
        return np.where(keep, column, self.alias[column])


# ------------------------------------------------------------------------- pair layout
def window_sizes(window: int, positions_per_row: int) -> np.ndarray:
    """The effective windows of a row's targets in listing order: ``[T]``, non-increasing.

    Each value ``1..window`` appears ``T // window`` or ``T // window + 1`` times.
    """
    if window < 1 or positions_per_row < 1:
        raise ValueError(f"window ({window}) and positions_per_row ({positions_per_row}) must be >= 1.")
    return np.sort(np.resize(np.arange(1, window + 1), positions_per_row))[::-1].astype(np.int32)


@functools.lru_cache(maxsize=16)
def pair_layout(window: int, positions_per_row: int) -> tuple[tuple[int, int, int], ...]:
    """Static layout of a row's pairs: ``(distance k, first slot, n_k)`` for ``k = 1..window``.

    Slots ``[first, first + n_k)`` hold the contexts at offset ``-k`` of targets
    ``0..n_k-1``, the next ``n_k`` slots those at ``+k``; ``n_k`` = targets with ``b >= k``.
    """
    sizes = window_sizes(window, positions_per_row)
    layout, first = [], 0
    for k in range(1, window + 1):
        count = int(np.count_nonzero(sizes >= k))
        layout.append((k, first, count))
        first += 2 * count
    return tuple(layout)


def pairs_per_row(window: int, positions_per_row: int) -> int:
    """``P``, the pair slots of a row: ``2 sum_k n_k`` (about ``T (window + 1)``)."""
    return sum(2 * count for _, _, count in pair_layout(window, positions_per_row))


def pair_targets(window: int, positions_per_row: int) -> np.ndarray:
    """``[P]``: the target (listing index) of each pair slot."""
    return np.concatenate([np.tile(np.arange(count), 2)
                           for _, _, count in pair_layout(window, positions_per_row)]).astype(np.int32)


def pair_offsets(window: int, positions_per_row: int) -> np.ndarray:
    """``[P]``: the signed offset (context minus target position) of each pair slot."""
    return np.concatenate([np.repeat([-k, k], count)
                           for k, _, count in pair_layout(window, positions_per_row)]).astype(np.int32)


# ------------------------------------------------------------------------- one epoch
@dataclasses.dataclass(frozen=True)
class EpochStream:
    """The ``M`` kept positions of one epoch, plus one padding entry at index ``M``.

    Attributes:
      ids: int32 ``[M + 1]`` word ids (padding: 0).
      sentence_ids: int32 ``[M + 1]`` (padding: ``PAD_SENTENCE``).
    """

    ids: np.ndarray
    sentence_ids: np.ndarray

    @property
    def num_positions(self) -> int:
        return int(self.ids.shape[0]) - 1


def epoch_rng(seed: int, epoch: int, purpose: int) -> np.random.Generator:
    """An independent generator per ``(seed, epoch, purpose)``; 0 = subsampling."""
    return np.random.default_rng([seed, epoch, purpose])


def epoch_stream(corpus: EncodedCorpus, keep_prob: np.ndarray, *, seed: int, epoch: int) -> EpochStream:
    """Subsamples the corpus for ``epoch``: each token kept with its word's probability."""
    keep = epoch_rng(seed, epoch, 0).random(corpus.num_words) < keep_prob[corpus.ids]
    # The padding entry is appended once here so that batches are pure indexing.
    return EpochStream(ids=np.append(corpus.ids[keep], 0).astype(np.int32),
                       sentence_ids=np.append(corpus.sentence_ids[keep], PAD_SENTENCE).astype(np.int32))


def steps_in_epoch(num_positions: int, positions_per_step: int) -> int:
    """Steps that cover ``num_positions`` kept positions (the last one partly padded)."""
    return max(1, -(-num_positions // positions_per_step))


def skipgram_batch(stream: EpochStream, start: int, *, rows: int, positions_per_row: int,
                   window: int, noise: AliasTable, negatives_shape: tuple[int, ...],
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The pairs of ``rows * positions_per_row`` consecutive kept positions from ``start``.

    Row ``r`` covers positions ``start + r T .. start + (r + 1) T - 1``; they are listed in
    a random order and target ``j`` of the listing gets window ``window_sizes(...)[j]``.
    Positions past the end of the stream are padding with no real pairs.

    Args:
      stream: the epoch's kept positions.
      start: first position of the batch.
      rows: ``R``; positions_per_row: ``T``; window: the maximal window ``W``.
      noise: the noise distribution's alias table.
      negatives_shape: noise ids per row: ``(T, K)`` (``K`` per target, shared by its
        window), ``(P, K)`` (``K`` per pair) or ``(S,)`` (shared by the row).
      rng: draws the permutations and the negatives.

    Returns:
      ``targets`` int32 ``[R, T]``, ``contexts`` int32 ``[R, P]`` (laid out by
      :func:`pair_layout`), ``pair_mask`` bool ``[R, P]`` (same sentence, inside the
      epoch) and ``negatives`` int32 ``[R, *negatives_shape]``.
    """
    count = stream.num_positions
    owner = pair_targets(window, positions_per_row)
    order = rng.permuted(np.tile(np.arange(positions_per_row), (rows, 1)), axis=1)
    target_pos = start + np.arange(rows)[:, None] * positions_per_row + order  # [R, T]
    context_pos = target_pos[:, owner] + pair_offsets(window, positions_per_row)
    # Anything outside the stream reads the padding entry at index M.
    target_pos = np.where((target_pos >= 0) & (target_pos < count), target_pos, count)
    source_pos = target_pos[:, owner]
    context_pos = np.where((context_pos >= 0) & (context_pos < count), context_pos, count)
    context_sentence = stream.sentence_ids[context_pos]
    return {
        "targets": stream.ids[target_pos],
        "contexts": stream.ids[context_pos],
        "pair_mask": (context_sentence == stream.sentence_ids[source_pos]) & (context_sentence != PAD_SENTENCE),
        "negatives": noise.sample(rng, (rows, *negatives_shape)),
    }


# ------------------------------------------------------------------------- a whole run
class SkipGramBatches:
    """Every batch of a training run, as a pure function of the step number.

    A step is ``updates`` SGD updates of ``rows`` rows of ``positions_per_row`` targets:
    arrays are ``[rows, updates, ...]`` (rows first, so the drivers split them over
    devices), and update ``m`` of row ``r`` holds the kept positions starting at
    ``epoch_start + (step_in_epoch * updates + m) * rows * T + r * T``. Each epoch ends
    with a partly padded step, so steps never straddle epochs.

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
            self._stream = (epoch, epoch_stream(self.corpus, self.keep_prob, seed=self.seed, epoch=epoch))
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
