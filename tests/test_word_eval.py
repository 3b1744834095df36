"""Word-vector evaluation and export against gensim (the peer) and brute-force numpy."""
import numpy as np
import pytest

from rl_repr.data.text import vocab as tv
from rl_repr.word2vec import evaluation as evaluate_words
from rl_repr.word2vec import export as export_embeddings

gensim_models = pytest.importorskip("gensim.models")


def _keyed_vectors(words, vectors):
    kv = gensim_models.KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(words), vectors)
    return kv


def _similarity_vocabulary():
    """Every word of WordSim-353 but a few (so some pairs are out of vocabulary), plus a casing."""
    pairs = evaluate_words.load_word_pairs(tv.gensim_datapath(evaluate_words.WORDSIM353))
    words = sorted({w.lower() for a, b, _ in pairs for w in (a, b)})[5:]
    return pairs, words + ["Tiger"]  # a rarer casing of 'tiger': the lowercase row must win


def test_word_similarity_matches_gensim():
    pairs, words = _similarity_vocabulary()
    vectors = np.random.default_rng(0).normal(size=(len(words), 16)).astype(np.float32)
    ours = evaluate_words.word_similarity(vectors, words, pairs)
    pearson, spearman, oov_percent = _keyed_vectors(words, vectors).evaluate_word_pairs(
        tv.gensim_datapath(evaluate_words.WORDSIM353))
    np.testing.assert_allclose(ours["spearman"], spearman.statistic, rtol=1e-6)
    np.testing.assert_allclose(ours["pearson"], pearson[0], rtol=1e-5)
    np.testing.assert_allclose(100 * ours["oov_fraction"], oov_percent, rtol=1e-6)
    assert 0 < ours["oov_fraction"] < 0.2


def test_analogy_accuracy_matches_gensim(tmp_path):
    sections = evaluate_words.load_analogies(tv.gensim_datapath(evaluate_words.GOOGLE_ANALOGIES))
    chosen = {name: sections[name] for name in ("capital-common-countries", "family")}
    words = sorted({w.lower() for qs in chosen.values() for q in qs for w in q})
    rng = np.random.default_rng(1)
    # Plant a shared offset for country - capital so that some, not all, questions are right.
    base = {w: rng.normal(size=12) for w in words}
    offset = rng.normal(size=12)
    for a, b, c, d in chosen["capital-common-countries"][::3]:
        base[b.lower()] = base[a.lower()] + offset + 0.3 * rng.normal(size=12)
        base[d.lower()] = base[c.lower()] + offset + 0.3 * rng.normal(size=12)
    vectors = np.stack([base[w] for w in words]).astype(np.float32)
    ours = evaluate_words.analogy_accuracy(vectors, words, chosen)
    path = tmp_path / "analogies.txt"
    path.write_text("".join(f": {name}\n" + "".join(" ".join(q) + "\n" for q in qs) for name, qs in chosen.items()))
    score, gensim_sections = _keyed_vectors(words, vectors).evaluate_word_analogies(str(path))
    total = gensim_sections[-1]
    assert ours["correct"] == len(total["correct"])
    assert ours["questions"] == len(total["correct"]) + len(total["incorrect"])
    np.testing.assert_allclose(ours["accuracy"], score)
    assert 0.05 < ours["accuracy"] < 0.95


def test_nearest_neighbours_brute_force():
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(30)]
    vectors = rng.normal(size=(30, 5))
    result = evaluate_words.nearest_neighbours(vectors, words, ["w3", "unknown"], k=4)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit[3]
    expected = [i for i in np.argsort(-cosine) if i != 3][:4]
    assert [w for w, _ in result["w3"]] == [words[i] for i in expected]
    np.testing.assert_allclose([s for _, s in result["w3"]], cosine[expected], rtol=1e-5)
    assert "unknown" not in result
    labels = np.repeat([0, 1], 15)
    clustered = np.where(labels[:, None] == 0, 5.0, -5.0) + rng.normal(size=(30, 5))
    assert evaluate_words.cluster_neighbour_accuracy(clustered, labels) == 1.0


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trips_through_gensim(tmp_path, binary):
    words = ["king", "queen", "éclair", "x"]
    vectors = np.random.default_rng(3).normal(size=(4, 7)).astype(np.float32) * 10
    path = export_embeddings.save_word2vec_format(str(tmp_path / "v.bin"), words, vectors, binary=binary)
    loaded = gensim_models.KeyedVectors.load_word2vec_format(path, binary=binary)
    assert list(loaded.index_to_key) == words
    np.testing.assert_array_equal(loaded.vectors, vectors)  # %.9g and raw float32 are exact
    with pytest.raises(ValueError, match="whitespace"):
        export_embeddings.save_word2vec_format(str(tmp_path / "bad"), ["a b"], vectors[:1])


def test_projector_files(tmp_path):
    words = ["a", "b", "c"]
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    paths = export_embeddings.save_projector_files(str(tmp_path), words, vectors)
    np.testing.assert_allclose(np.loadtxt(paths["vectors.tsv"], delimiter="\t"), vectors, rtol=1e-7)
    assert open(paths["metadata.tsv"]).read().splitlines() == words
    config = open(paths["projector_config.pbtxt"]).read()
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
