"""rl_repr.evaluate_few_shot against references written from the protocols' definitions.

References: per-query float64 loops over the support set (episodes), scipy's standard
error for the 95% interval, sklearn's ``KFold(10, shuffle=False)`` with a brute-force
threshold scan (FaceNet's LFW evaluation, ``facenet/src/lfw.py``), and a per-item sort
for recall@k.
"""
import numpy as np
import pytest
import scipy.stats
from sklearn.model_selection import KFold

from rl_repr.evaluation import few_shot as fs


def _data(num_classes=8, per_class=12, dim=6, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), per_class)
    centers = rng.normal(size=(num_classes, dim)) * spread
    features = centers[labels] + rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return features[order].astype(np.float32), labels[order]


# ------------------------------------------------------------------ episodes
def test_episodes_draw_distinct_eligible_classes_and_disjoint_rows():
    features, labels = _data()
    labels = np.concatenate([labels, [99, 99]])  # a class too small for 1 + 3 examples
    episodes = fs.sample_episodes(labels, n_way=5, k_shot=1, num_queries=3, num_episodes=50, seed=3)
    assert episodes.support.shape == (50, 5, 1) and episodes.query.shape == (50, 5, 3)
    for e in range(50):
        assert len(set(episodes.classes[e])) == 5 and 99 not in episodes.classes[e]
        rows = np.concatenate([episodes.support[e].ravel(), episodes.query[e].ravel()])
        assert len(set(rows)) == len(rows)
        for n in range(5):
            assert np.all(labels[episodes.support[e, n]] == episodes.classes[e, n])
            assert np.all(labels[episodes.query[e, n]] == episodes.classes[e, n])
    again = fs.sample_episodes(labels, n_way=5, k_shot=1, num_queries=3, num_episodes=50, seed=3)
    np.testing.assert_array_equal(again.query, episodes.query)
    other = fs.sample_episodes(labels, n_way=5, k_shot=1, num_queries=3, num_episodes=50, seed=4)
    assert not np.array_equal(other.query, episodes.query)


def test_too_few_classes_is_a_clear_error():
    _, labels = _data(num_classes=4)
    with pytest.raises(ValueError, match="only 4 classes"):
        fs.sample_episodes(labels, n_way=5, k_shot=1, num_queries=3, num_episodes=10)


def _reference_accuracies(features, episodes, classifier, distance):
    """Loops: every query against every support example, float64."""
    def d(x, y):
        x, y = np.float64(x), np.float64(y)
        if distance == "cosine":
            return 1.0 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
        return np.sum((x - y) ** 2)

    accuracies = []
    for support, query in zip(episodes.support, episodes.query):
        correct = 0
        for true_class, rows in enumerate(query):
            for q in rows:
                if classifier == "prototype":
                    scores = [d(features[q], features[s].mean(axis=0)) for s in support]
                else:
                    scores = [min(d(features[q], features[i]) for i in s) for s in support]
                correct += int(np.argmin(scores) == true_class)
        accuracies.append(correct / query.size)
    return np.array(accuracies)


@pytest.mark.parametrize("classifier", ["nearest_neighbor", "prototype"])
@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
def test_episode_accuracies_match_loops(classifier, distance):
    features, labels = _data(spread=0.7)
    episodes = fs.sample_episodes(labels, n_way=4, k_shot=3, num_queries=4, num_episodes=20, seed=1)
    got = fs.episode_accuracies(features, episodes, classifier=classifier, distance=distance)
    np.testing.assert_allclose(got, _reference_accuracies(features, episodes, classifier, distance))


def test_mean_and_95_percent_interval_match_scipy():
    features, labels = _data(spread=0.7)
    result = fs.few_shot_accuracy(features, labels, n_way=5, k_shot=1, num_queries=5, num_episodes=600)
    episodes = fs.sample_episodes(labels, n_way=5, k_shot=1, num_queries=5, num_episodes=600, seed=0)
    accuracies = _reference_accuracies(features, episodes, "nearest_neighbor", "squared_euclidean")
    assert result["accuracy"] == pytest.approx(accuracies.mean())
    assert result["ci95"] == pytest.approx(1.96 * scipy.stats.sem(accuracies))


def test_separated_classes_score_one_and_noise_scores_chance():
    features, labels = _data(spread=100.0)
    assert fs.few_shot_accuracy(features, labels, num_queries=5)["accuracy"] == 1.0
    noise = np.random.default_rng(0).normal(size=features.shape)
    chance = fs.few_shot_accuracy(noise, labels, num_queries=5)
    assert abs(chance["accuracy"] - 0.2) < 3 * chance["ci95"] + 0.01


# ------------------------------------------------------------------ verification
def test_verification_pairs_are_balanced_and_correct():
    _, labels = _data()
    pairs, same = fs.sample_verification_pairs(labels, 301, seed=2)
    assert pairs.shape == (301, 2) and same.sum() == 150
    assert np.all(labels[pairs[same, 0]] == labels[pairs[same, 1]])
    assert np.all(pairs[same, 0] != pairs[same, 1])
    assert np.all(labels[pairs[~same, 0]] != labels[pairs[~same, 1]])


def _reference_verification(distances, same, folds=10):
    """FaceNet's lfw.calculate_roc accuracy with every distinct threshold scanned."""
    accuracies = []
    for train, test in KFold(n_splits=folds, shuffle=False).split(distances):
        values = np.unique(distances[train])
        candidates = np.concatenate([[values[0] - 1], (values[:-1] + values[1:]) / 2, [values[-1] + 1]])
        train_acc = [np.mean((distances[train] < t) == same[train]) for t in candidates]
        best = candidates[int(np.argmax(train_acc))]
        accuracies.append(np.mean((distances[test] < best) == same[test]))
    return np.mean(accuracies), np.std(accuracies)


@pytest.mark.parametrize("num_pairs", [200, 203])
def test_verification_accuracy_matches_kfold_scan(num_pairs):
    features, labels = _data(spread=0.8)
    pairs, same = fs.sample_verification_pairs(labels, num_pairs, seed=0)
    distances = fs.pair_distances(features, pairs)
    np.testing.assert_allclose(distances, np.sum((np.float64(features[pairs[:, 0]]) - features[pairs[:, 1]]) ** 2, 1))
    result = fs.verification_accuracy(distances, same)
    mean, std = _reference_verification(distances, same)
    assert result["accuracy"] == pytest.approx(mean) and result["std"] == pytest.approx(std)
    assert 0.5 < result["accuracy"] < 1.0


def test_verification_of_separable_distances_is_perfect():
    same = np.arange(40) % 2 == 0
    distances = np.where(same, 0.1, 2.0) + np.linspace(0, 0.01, 40)
    result = fs.verification_accuracy(distances, same)
    assert result["accuracy"] == 1.0 and 0.11 < result["threshold"] < 2.0


# ------------------------------------------------------------------ retrieval
def test_recall_at_k_matches_per_item_sort():
    features, labels = _data(spread=0.5)
    got = fs.recall_at_k(features, labels, (1, 2, 4, 8))
    f = np.float64(features)
    for k in (1, 2, 4, 8):
        hits = []
        for i in range(len(labels)):
            d = np.sum((f - f[i]) ** 2, axis=1)
            others = [j for j in np.argsort(d, kind="stable") if j != i][:k]
            hits.append(np.any(labels[others] == labels[i]))
        assert got[k] == pytest.approx(np.mean(hits))
    assert got[1] <= got[2] <= got[4] <= got[8]


def test_benchmark_reports_every_key_on_the_same_tasks():
    features, labels = _data(spread=2.0)
    kwargs = dict(shots=(1, 5), num_queries=5, num_episodes=30, num_pairs=100, recall_ks=(1, 4))
    first = fs.benchmark_embeddings(features, labels, **kwargs)
    assert set(first) == {"5way_1shot_accuracy", "5way_1shot_ci95", "5way_5shot_accuracy", "5way_5shot_ci95",
                          "verification_accuracy", "verification_std", "recall_at_1", "recall_at_4"}
    assert first == fs.benchmark_embeddings(features, labels, **kwargs)


# ------------------------------------------------------------------ feature transform
def test_center_and_normalize_matches_sklearn_and_keeps_zero_rows():
    """SimpleShot's CL2N against sklearn's ``normalize`` of the centred rows."""
    from sklearn.preprocessing import normalize

    features, _ = _data()
    base_mean = features[:20].mean(axis=0)
    got = fs.center_and_normalize(features, base_mean)
    np.testing.assert_allclose(got, normalize(features.astype(np.float64) - base_mean), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0)
    assert np.all(fs.center_and_normalize(base_mean[None], base_mean) == 0.0)
    with pytest.raises(ValueError, match="mean feature \\[d\\]"):
        fs.center_and_normalize(features, base_mean[:3])
