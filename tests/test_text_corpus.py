"""The word2vec corpus pipeline against formulas, plain-Python references and gensim."""
import collections

import numpy as np
import pytest
from scipy import stats

from rl_repr.data.text import batches as tb
from rl_repr.data.text import vocab as tv


def _corpus(ids, sentence_lengths=None):
    ids = np.asarray(ids, np.int32)
    lengths = sentence_lengths or [len(ids)]
    return tv.EncodedCorpus(ids=ids, sentence_ids=np.repeat(np.arange(len(lengths)), lengths).astype(np.int32),
                            raw_word_count=len(ids))


# ------------------------------------------------------------------------- reading, vocabulary, encoding
def test_tokenize_and_read_sentences(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("The cat's hat, 3 times!\n\n  \nÉlan vital_42\n", encoding="utf-8")
    assert tv.tokenize("The cat's hat, 3 times!") == ["the", "cat", "s", "hat", "times"]
    assert list(tv.read_sentences([path])) == [["the", "cat", "s", "hat", "times"], ["élan", "vital"]]
    assert list(tv.read_sentences([path], pretokenized=True, lowercase=False)) == [
        ["The", "cat's", "hat,", "3", "times!"], ["Élan", "vital_42"]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(tv.read_sentences([tmp_path / "missing.txt"]))


def test_vocabulary_min_count_and_gensim_order():
    sentences = [["b", "a", "c", "b"], ["d", "a", "e", "c"], ["b", "f", "c", "a", "d"]]
    vocab = tv.build_vocabulary(sentences, min_count=2)
    # Reference: count, keep >= 2, sort by count descending, ties in first-appearance order.
    counts = collections.Counter(w for s in sentences for w in s)
    first = {w: i for i, w in reversed(list(enumerate(w for s in sentences for w in s)))}
    expected = sorted((w for w in counts if counts[w] >= 2), key=lambda w: (-counts[w], first[w]))
    assert list(vocab.words) == expected == ["b", "a", "c", "d"]
    np.testing.assert_array_equal(vocab.counts, [counts[w] for w in expected])
    assert vocab.index["c"] == 2
    assert tv.build_vocabulary(sentences, min_count=2, max_size=2).words == ("b", "a")
    with pytest.raises(ValueError, match="lower min_count"):
        tv.build_vocabulary(sentences, min_count=10)


def test_encode_corpus_drops_unknown_words_and_cuts_long_sentences():
    vocab = tv.Vocabulary(words=("x", "y"), counts=np.array([3, 2]))
    sentences = [["x", "q", "y", "x", "z"], ["y", "x"]]
    corpus = tv.encode_corpus(sentences, vocab, max_sentence_length=3)
    # Reference: cut every 3 raw tokens, then keep known words with their piece number.
    pieces = [s[i:i + 3] for s in sentences for i in range(0, len(s), 3)]
    ids = [vocab.index[w] for p in pieces for w in p if w in vocab.index]
    sentence_ids = [n for n, p in enumerate(pieces) for w in p if w in vocab.index]
    np.testing.assert_array_equal(corpus.ids, ids)
    np.testing.assert_array_equal(corpus.sentence_ids, sentence_ids)
    assert corpus.raw_word_count == 7 and corpus.num_words == 5


def test_topic_corpus_sentences_stay_in_one_topic():
    sentences, topic = tv.generate_topic_corpus(num_topics=3, words_per_topic=4, num_sentences=50,
                                                sentence_length=6, seed=1)
    assert len(sentences) == 50 and all(len(s) == 6 for s in sentences)
    assert all(len({topic[w] for w in s}) == 1 for s in sentences)
    assert len(topic) == 12


# ------------------------------------------------------------------------- subsampling and noise
def test_keep_probabilities_formula_and_gensim():
    counts = np.array([5000, 900, 300, 40, 7])
    sample = 1e-2
    threshold = sample * counts.sum()
    expected = np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)
    np.testing.assert_allclose(tb.keep_probabilities(counts, sample), expected, rtol=1e-12)
    assert expected[0] < 0.5 and expected[-1] == 1.0
    np.testing.assert_array_equal(tb.keep_probabilities(counts, 0.0), np.ones(5))
    gensim_models = pytest.importorskip("gensim.models")
    sentences = [[f"w{i}"] * c for i, c in enumerate(counts)]
    model = gensim_models.Word2Vec(min_count=1, sample=sample, vector_size=4)
    model.build_vocab(sentences)
    theirs = [model.wv.get_vecattr(f"w{i}", "sample_int") / (2 ** 32 - 1) for i in range(len(counts))]
    np.testing.assert_allclose(tb.keep_probabilities(counts, sample), theirs, rtol=1e-7)


def test_subsampling_frequencies_match_the_keep_probabilities():
    rng = np.random.default_rng(0)
    counts = np.array([40_000, 12_000, 3_000, 800, 200])
    ids = rng.permutation(np.repeat(np.arange(5), counts))
    corpus = _corpus(ids)
    keep = tb.keep_probabilities(counts, 1e-2)
    kept = np.bincount(tb.epoch_stream(corpus, keep, seed=3, epoch=0).ids[:-1], minlength=5)
    # Each word's kept count is Binomial(c, p): within 5 standard deviations.
    std = np.sqrt(counts * keep * (1 - keep)) + 1e-9
    assert np.all(np.abs(kept - counts * keep) <= 5 * std + 1e-9), (kept, counts * keep)
    other = tb.epoch_stream(corpus, keep, seed=3, epoch=1).ids
    assert not np.array_equal(other[:100], tb.epoch_stream(corpus, keep, seed=3, epoch=0).ids[:100])


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([1000, 300, 60, 9, 1])
    probs = tb.noise_distribution(counts)
    np.testing.assert_allclose(probs, counts ** 0.75 / np.sum(counts ** 0.75), rtol=1e-12)
    draws = tb.AliasTable.build(probs).sample(np.random.default_rng(0), (200_000,))
    observed = np.bincount(draws, minlength=5)
    assert stats.chisquare(observed, probs * draws.size).pvalue > 1e-3
    with pytest.raises(ValueError, match="sums to 1"):
        tb.AliasTable.build(np.array([0.5, 0.6]))


# ------------------------------------------------------------------------- windows and pairs
def _reference_pairs(stream, positions, sizes):
    """word2vec.c's loop: target i with window b pairs with kept positions i +- 1..b in its sentence."""
    pairs = collections.Counter()
    count = stream.num_positions
    for position, b in zip(positions, sizes):
        if position >= count:
            continue
        for offset in [*range(-b, 0), *range(1, b + 1)]:
            other = position + offset
            if 0 <= other < count and stream.sentence_ids[other] == stream.sentence_ids[position]:
                pairs[(int(stream.ids[position]), int(stream.ids[other]), offset)] += 1
    return pairs


def test_batch_pairs_equal_word2vec_windows_for_the_same_window_sizes():
    # Word id = position, so each target's position (hence its window) can be read back.
    stream = tb.epoch_stream(_corpus(np.arange(300), [120, 100, 80]), np.ones(300), seed=0, epoch=0)
    window, length, rows = 3, 20, 16  # 320 > 300 positions: the last row is partly padding
    noise = tb.AliasTable.build(np.full(300, 1 / 300))
    batch = tb.skipgram_batch(stream, 0, rows=rows, positions_per_row=length, window=window, noise=noise,
                              negatives_shape=(length, 2), rng=np.random.default_rng(1))
    offsets, owner = tb.pair_offsets(window, length), tb.pair_targets(window, length)
    ours = collections.Counter()
    for r, slot in zip(*np.nonzero(batch["pair_mask"])):
        ours[(int(batch["targets"][r, owner[slot]]), int(batch["contexts"][r, slot]), int(offsets[slot]))] += 1
    # Target j of a row's listing has window window_sizes[j]; the last row is all padding.
    sizes = tb.window_sizes(window, length)
    positions, windows = [], []
    for r in range(rows):
        for j, token in enumerate(batch["targets"][r]):
            positions.append(int(token) if (r + 1) * length <= 300 else stream.num_positions)
            windows.append(int(sizes[j]))
    assert sorted(p for p in positions if p < 300) == list(range(300))
    assert ours == _reference_pairs(stream, positions, windows)
    assert batch["negatives"].shape == (rows, length, 2)


def test_window_sizes_are_uniform_per_position_and_distances_follow_the_formula():
    window, length, rows = 5, 40, 4000
    stream = tb.epoch_stream(_corpus(np.arange(length * rows) % 997), np.ones(997), seed=0, epoch=0)
    noise = tb.AliasTable.build(np.full(997, 1 / 997))
    batch = tb.skipgram_batch(stream, 0, rows=rows, positions_per_row=length, window=window, noise=noise,
                              negatives_shape=(1,), rng=np.random.default_rng(2))
    # Target ids are positions mod 997 (unique within a row): recover each position's window.
    sizes = tb.window_sizes(window, length)
    position_in_row = (batch["targets"] - (np.arange(rows)[:, None] * length) % 997) % 997
    window_of = np.empty((rows, length), np.int64)
    np.put_along_axis(window_of, position_in_row, np.broadcast_to(sizes, (rows, length)), axis=1)
    # Every position's effective window is uniform on 1..W (chi-square at a fixed position).
    for position in (0, 17, length - 1):
        observed = np.bincount(window_of[:, position], minlength=window + 1)[1:]
        assert stats.chisquare(observed).pvalue > 1e-3
    # A context at distance k is used with probability (W - k + 1) / W.
    offsets = np.abs(tb.pair_offsets(window, length))
    for k in range(1, window + 1):
        used = np.sum(offsets == k) / (2 * length)
        assert abs(used - (window - k + 1) / window) <= 1 / length
    assert tb.pairs_per_row(window, length) == 2 * sum(np.sum(sizes >= k) for k in range(1, window + 1))


def test_batches_cover_each_epoch_once_and_are_reproducible():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, 1000)
    corpus = _corpus(ids, [400, 600])
    keep = tb.keep_probabilities(np.bincount(ids, minlength=30) + 1, 0.02)
    batches = tb.SkipGramBatches(corpus, keep_prob=keep, noise_probs=np.full(30, 1 / 30), window=2, seed=5,
                                 epochs=2, rows=2, positions_per_row=16, updates=3, negatives_shape=(16, 2))
    assert batches.total_steps == sum(batches.steps_per_epoch)
    for epoch in range(2):
        stream = tb.epoch_stream(corpus, keep, seed=5, epoch=epoch)
        first, steps = batches.first_step[epoch], batches.steps_per_epoch[epoch]
        targets = []
        for step in range(first, first + steps):
            batch = batches(step)
            assert batch["targets"].shape == (2, 3, 16) and batch["contexts"].shape[:2] == (2, 3)
            # update m of row r holds positions (step * 3 + m) * 2 * 16 + r * 16 ...
            targets.append(np.swapaxes(batch["targets"], 0, 1).reshape(-1, 16))
        listed = np.concatenate(targets)[:stream.num_positions // 16]
        expected = stream.ids[:listed.size].reshape(-1, 16)
        np.testing.assert_array_equal(np.sort(listed, axis=1), np.sort(expected, axis=1))
    again = tb.SkipGramBatches(corpus, keep_prob=keep, noise_probs=np.full(30, 1 / 30), window=2, seed=5,
                               epochs=2, rows=2, positions_per_row=16, updates=3, negatives_shape=(16, 2))
    for step in (batches.total_steps - 1, 0):
        for name, array in batches(step).items():
            np.testing.assert_array_equal(array, again(step)[name])
    assert batches.locate(batches.first_step[1]) == (1, 0)


def test_named_corpora(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("one two\nthree\n", encoding="utf-8")
    assert tv.corpus_sentences("files", files=[str(path)]) == [["one", "two"], ["three"]]
    with pytest.raises(ValueError, match="config.data.files"):
        tv.corpus_sentences("files")
    with pytest.raises(ValueError, match="unknown corpus"):
        tv.corpus_sentences("enwiki")
    pytest.importorskip("gensim")
    lee = tv.corpus_sentences("lee")
    assert len(lee) > 250 and all(w == w.lower() for w in lee[0])
