"""Tests for rl_repr.losses.distances and rl_repr.losses.metric.

References are independent of the code under test: float64 numpy written from
the formulas (broadcast differences, not the matmul form), brute-force loops
over every triplet, and numpy re-implementations of the published semantics of
tensorflow-addons (``tensorflow_addons/losses/triplet.py``: ``pairwise_distance``,
``_masked_maximum``/``_masked_minimum``, ``triplet_semihard_loss``,
``triplet_hard_loss``) and pytorch-metric-learning (``BatchHardMiner``,
``TripletMarginMiner``). Gradients are checked by finite differences in float64.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl_repr import losses

# Four classes of four (every anchor has positives and negatives) and a batch
# with two singleton classes (anchors 5 and 9 have no positive).
PK_LABELS = np.array([2, 0, 1, 3, 0, 2, 1, 3, 3, 0, 1, 2, 1, 0, 2, 3])
SINGLETON_LABELS = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 4])


def _embeddings(n, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


# --------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------
def np_distance(x, y, kind):
    """[B, M] distances from broadcast differences, float64."""
    x, y = np.float64(x), np.float64(y)
    if kind == "cosine":
        xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
        yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
        return 1.0 - xn @ yn.T
    d2 = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    return d2 if kind == "squared_euclidean" else np.sqrt(d2)


def valid_triplets(labels):
    n = len(labels)
    for a, p, q in itertools.product(range(n), repeat=3):
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]:
            yield a, p, q


def brute_batch_all(emb, labels, margin, kind):
    dist = np_distance(emb, emb, kind)
    losses_ = [max(dist[a, p] - dist[a, n] + margin, 0.0) for a, p, n in valid_triplets(labels)]
    active = [x for x in losses_ if x > 1e-16]
    return sum(active) / max(len(active), 1), len(active) / max(len(losses_), 1)


def brute_batch_hard(emb, labels, margin, soft, kind):
    """Per anchor, the worst triplet it belongs to; anchors without one are skipped."""
    dist = np_distance(emb, emb, kind)
    per_anchor = {}
    for a, p, n in valid_triplets(labels):
        gap = dist[a, p] - dist[a, n]
        value = np.log1p(np.exp(gap)) if soft else max(gap + margin, 0.0)
        per_anchor[a] = max(per_anchor.get(a, -np.inf), value)
    return np.mean(list(per_anchor.values())) if per_anchor else 0.0


def brute_semi_hard(emb, labels, margin, kind):
    dist = np_distance(emb, emb, kind)
    pair_losses = []
    for a, p in itertools.permutations(range(len(labels)), 2):
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if labels[a] != labels[p] or not negatives:
            continue
        farther = [dist[a, n] for n in negatives if dist[a, n] > dist[a, p]]
        d_an = min(farther) if farther else max(dist[a, n] for n in negatives)
        pair_losses.append(max(dist[a, p] - d_an + margin, 0.0))
    return np.mean(pair_losses) if pair_losses else 0.0


def tfa_pairwise_distance(feature, squared):
    """tensorflow-addons metric_learning.pairwise_distance."""
    feature = np.float64(feature)
    sq = np.sum(feature**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feature @ feature.T, 0.0)
    error_mask = d2 <= 0.0
    dist = d2 if squared else np.sqrt(d2 + error_mask * 1e-16)
    dist = dist * ~error_mask
    return dist * (1.0 - np.eye(len(feature)))


def tfa_masked_maximum(data, mask):
    axis_min = data.min(axis=1, keepdims=True)
    return ((data - axis_min) * mask).max(axis=1, keepdims=True) + axis_min


def tfa_masked_minimum(data, mask):
    axis_max = data.max(axis=1, keepdims=True)
    return ((data - axis_max) * mask).min(axis=1, keepdims=True) + axis_max


def tfa_triplet_semihard_loss(labels, emb, margin, squared):
    pdist = tfa_pairwise_distance(emb, squared)
    adjacency = labels[:, None] == labels[None, :]
    adjacency_not = ~adjacency
    b = len(labels)
    pdist_tile = np.tile(pdist, [b, 1])
    mask = np.tile(adjacency_not, [b, 1]) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.sum(axis=1, keepdims=True) > 0).reshape(b, b).T
    negatives_outside = tfa_masked_minimum(pdist_tile, mask).reshape(b, b).T
    negatives_inside = np.tile(tfa_masked_maximum(pdist, adjacency_not), [1, b])
    semi_hard = np.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard
    mask_positives = adjacency.astype(np.float64) - np.eye(b)
    return np.maximum(loss_mat * mask_positives, 0.0).sum() / mask_positives.sum()


def tfa_triplet_hard_loss(labels, emb, margin, soft):
    pdist = tfa_pairwise_distance(emb, squared=False)
    adjacency = labels[:, None] == labels[None, :]
    hard_negatives = tfa_masked_minimum(pdist, ~adjacency)
    hard_positives = tfa_masked_maximum(pdist, adjacency.astype(np.float64) - np.eye(len(labels)))
    gap = hard_positives - hard_negatives
    return np.mean(np.log1p(np.exp(gap)) if soft else np.maximum(gap + margin, 0.0))


def pml_batch_hard_miner(dist, labels):
    """pytorch-metric-learning BatchHardMiner: (a, p, n) per anchor having both."""
    triplets = []
    for a in range(len(labels)):
        pos = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if pos and neg:
            triplets.append((a, pos[np.argmax(dist[a, pos])], neg[np.argmin(dist[a, neg])]))
    return triplets


def pml_triplet_margin_miner(dist, labels, margin, kind):
    """pytorch-metric-learning TripletMarginMiner(margin, type_of_triplets=kind)."""
    mined = []
    for a, p, n in valid_triplets(labels):
        triplet_margin = dist[a, n] - dist[a, p]
        if kind == "easy":
            keep = triplet_margin > margin
        else:
            keep = triplet_margin <= margin
            keep &= {"all": True, "hard": triplet_margin <= 0, "semihard": triplet_margin > 0}[kind]
        if keep:
            mined.append((a, p, n))
    return mined


# --------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["squared_euclidean", "euclidean", "cosine"])
def test_pairwise_distances_match_numpy(kind):
    x, y = _embeddings(7, seed=1), _embeddings(4, seed=2)
    fn = {"squared_euclidean": losses.pairwise_squared_euclidean,
          "euclidean": losses.pairwise_euclidean, "cosine": losses.pairwise_cosine_distance}[kind]
    np.testing.assert_allclose(fn(x, y), np_distance(x, y, kind), rtol=1e-5, atol=1e-5)
    self_dist = np.asarray(losses.pairwise_distance(x, distance=kind))
    np.testing.assert_allclose(self_dist, np_distance(x, x, kind), rtol=1e-5, atol=1e-5)
    assert np.all(np.diag(self_dist) == 0.0)
    np.testing.assert_allclose(
        losses.paired_distance(x[:4], y, distance=kind), np.diag(np_distance(x[:4], y, kind)),
        rtol=1e-5, atol=1e-6)


def test_euclidean_gradient_finite_and_correct_at_zero_distance():
    x = _embeddings(6, seed=3)
    x[4] = x[1]  # a duplicate: zero distance off the diagonal too
    weights = np.random.default_rng(4).uniform(size=(6, 6)).astype(np.float32)
    grad = jax.jit(jax.grad(lambda e: jnp.sum(weights * losses.pairwise_euclidean(e))))(x)
    # d/dx_i sum_j w_ij |x_i - x_j| + w_ji |x_j - x_i|, taking 0 where x_i == x_j.
    x64 = np.float64(x)
    diff = x64[:, None, :] - x64[None, :, :]
    norm = np.linalg.norm(diff, axis=-1)
    unit = np.where(norm[..., None] > 0, diff / np.where(norm > 0, norm, 1.0)[..., None], 0.0)
    expected = np.einsum("ij,ijk->ik", weights + weights.T, unit)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4)


def test_distance_gradients_by_finite_differences():
    with jax.enable_x64(True):
        x, y = np.float64(_embeddings(5, seed=5)), np.float64(_embeddings(3, seed=6))
        for fn in (losses.pairwise_squared_euclidean, losses.pairwise_euclidean,
                   losses.pairwise_cosine_distance):
            check_grads(jax.jit(fn), (x, y), order=1, modes=("rev",), eps=1e-6)
            check_grads(jax.jit(fn), (x,), order=1, modes=("rev",), eps=1e-6)


# --------------------------------------------------------------------------
# triplet and pair losses
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["squared_euclidean", "euclidean", "cosine"])
def test_triplet_loss_matches_formula(kind):
    a, p, n = (_embeddings(9, seed=s) for s in (7, 8, 9))
    d_ap = np.diag(np_distance(a, p, kind))
    d_an = np.diag(np_distance(a, n, kind))
    expected = np.mean(np.maximum(d_ap - d_an + 0.2, 0.0))
    np.testing.assert_allclose(losses.triplet_loss(a, p, n, distance=kind), expected, rtol=1e-5)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda *t: losses.triplet_loss(*t, 0.5, distance=kind)),
                    tuple(np.float64(t) for t in (a, p, n)), order=1, modes=("rev",), eps=1e-6)


def test_contrastive_pair_loss_matches_hadsell_without_halves():
    distance = np.random.default_rng(10).uniform(0.0, 2.0, size=20).astype(np.float32)
    same = np.arange(20) % 3 == 0
    # Hadsell et al. with Y = 1 - same: (1-Y) D^2 / 2 + Y max(0, m - D)^2 / 2.
    y = 1.0 - same
    hadsell = (1 - y) * 0.5 * distance**2 + y * 0.5 * np.maximum(0.0, 1.0 - distance) ** 2
    np.testing.assert_allclose(losses.contrastive_pair_loss(distance, same), 2 * hadsell.mean(),
                               rtol=1e-6)
    with jax.enable_x64(True):
        check_grads(lambda d: losses.contrastive_pair_loss(d, same, 1.0),
                    (np.float64(distance),), order=1, modes=("rev",), eps=1e-6)


# --------------------------------------------------------------------------
# online mining: brute force
# --------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [PK_LABELS, SINGLETON_LABELS], ids=["pk", "singletons"])
def test_batch_all_matches_brute_force(labels):
    emb = _embeddings(len(labels), seed=11)
    for kind, margin in (("squared_euclidean", 0.2), ("euclidean", 1.0)):
        loss, fraction = losses.batch_all_triplet_loss_and_fraction(emb, labels, margin, distance=kind)
        expected_loss, expected_fraction = brute_batch_all(emb, labels, margin, kind)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        np.testing.assert_allclose(fraction, expected_fraction, rtol=1e-6)


@pytest.mark.parametrize("labels", [PK_LABELS, SINGLETON_LABELS], ids=["pk", "singletons"])
@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_matches_brute_force(labels, soft):
    emb = _embeddings(len(labels), seed=12)
    got = losses.batch_hard_triplet_loss(emb, labels, 1.0, soft=soft)
    np.testing.assert_allclose(got, brute_batch_hard(emb, labels, 1.0, soft, "euclidean"),
                               rtol=1e-5)


@pytest.mark.parametrize("labels", [PK_LABELS, SINGLETON_LABELS], ids=["pk", "singletons"])
def test_semi_hard_matches_brute_force(labels):
    emb = _embeddings(len(labels), seed=13)
    for kind, margin in (("squared_euclidean", 0.2), ("squared_euclidean", 5.0),
                         ("euclidean", 1.0)):
        got = losses.semi_hard_triplet_loss(emb, labels, margin, distance=kind)
        np.testing.assert_allclose(got, brute_semi_hard(emb, labels, margin, kind), rtol=1e-5)


def test_degenerate_batches_give_zero_not_nan():
    emb = _embeddings(4, seed=14)
    for labels in (np.array([0, 1, 2, 3]), np.zeros(4, np.int32)):  # no positive / no negative
        assert losses.batch_all_triplet_loss_and_fraction(emb, labels) == (0.0, 0.0)
        assert losses.batch_hard_triplet_loss(emb, labels) == 0.0
        assert losses.semi_hard_triplet_loss(emb, labels) == 0.0


def test_mining_gradients_by_finite_differences():
    labels = PK_LABELS[:10]
    emb = np.float64(_embeddings(10, d=3, seed=15))
    with jax.enable_x64(True):
        for fn in (
            lambda e: losses.batch_all_triplet_loss(e, labels, 1.0),
            lambda e: losses.batch_hard_triplet_loss(e, labels, 1.0),
            lambda e: losses.batch_hard_triplet_loss(e, labels, soft=True),
            lambda e: losses.semi_hard_triplet_loss(e, labels, 2.0),
        ):
            check_grads(jax.jit(fn), (emb,), order=1, modes=("rev",), eps=1e-6)


def test_batch_hard_gradient_finite_with_duplicate_embeddings():
    emb = _embeddings(8, seed=16)
    emb[3] = emb[0]  # same class (labels below): the hardest positive can be at distance 0
    labels = np.array([0, 1, 1, 0, 2, 2, 0, 1])
    grad = jax.jit(jax.grad(lambda e: losses.batch_hard_triplet_loss(e, labels)))(emb)
    assert np.all(np.isfinite(grad))


# --------------------------------------------------------------------------
# peer semantics
# --------------------------------------------------------------------------
@pytest.mark.parametrize("squared", [True, False])
def test_semi_hard_equals_tensorflow_addons(squared):
    for seed in range(3):
        emb = _embeddings(16, seed=20 + seed)
        labels = np.random.default_rng(seed).permutation(PK_LABELS)
        kind = "squared_euclidean" if squared else "euclidean"
        got = losses.semi_hard_triplet_loss(emb, labels, 1.0, distance=kind)
        np.testing.assert_allclose(got, tfa_triplet_semihard_loss(labels, emb, 1.0, squared),
                                   rtol=1e-5)
    # The documented difference: tfa counts pairs of a one-class batch with D[a, n*] = 0.
    emb, labels = _embeddings(3, seed=23), np.zeros(3, np.int64)
    d = np_distance(emb, emb, "squared_euclidean")
    np.testing.assert_allclose(tfa_triplet_semihard_loss(labels, emb, 1.0, True),
                               np.mean(d[~np.eye(3, dtype=bool)] + 1.0))


@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_tfa_compatible_mode_equals_tensorflow_addons(soft):
    for labels in (PK_LABELS, SINGLETON_LABELS, np.zeros(5, np.int64)):
        emb = _embeddings(len(labels), seed=24)
        got = losses.batch_hard_triplet_loss(emb, labels, 1.0, soft=soft,
                                             include_invalid_anchors=True)
        np.testing.assert_allclose(got, tfa_triplet_hard_loss(labels, emb, 1.0, soft), rtol=1e-5)


def test_batch_hard_equals_pml_batch_hard_miner_then_mean_hinge():
    for labels in (PK_LABELS, SINGLETON_LABELS):
        emb = _embeddings(len(labels), seed=25)
        dist = np_distance(emb, emb, "euclidean")
        mined = pml_batch_hard_miner(dist, labels)
        expected = np.mean([max(dist[a, p] - dist[a, n] + 0.3, 0.0) for a, p, n in mined])
        np.testing.assert_allclose(losses.batch_hard_triplet_loss(emb, labels, 0.3), expected,
                                   rtol=1e-5)


def test_batch_all_equals_pml_all_triplets_with_avg_non_zero_reducer():
    emb, labels = _embeddings(16, seed=26), PK_LABELS
    dist = np_distance(emb, emb, "squared_euclidean")
    mined = pml_triplet_margin_miner(dist, labels, 0.5, "all")
    hinge = [max(dist[a, p] - dist[a, n] + 0.5, 0.0) for a, p, n in mined]
    loss, fraction = losses.batch_all_triplet_loss_and_fraction(emb, labels, 0.5)
    np.testing.assert_allclose(loss, np.mean([h for h in hinge if h > 0]), rtol=1e-5)
    np.testing.assert_allclose(fraction, len(mined) / len(list(valid_triplets(labels))),
                               rtol=1e-6)


def test_semi_hard_in_terms_of_pml_semihard_and_hard_triplets():
    """Per pair: the hardest PML-semihard triplet; if every negative is PML-hard, the
    easiest of them (tfa's fallback); otherwise (only easy negatives) 0."""
    emb, labels, margin = _embeddings(16, seed=27), PK_LABELS, 4.0
    dist = np_distance(emb, emb, "squared_euclidean")
    semihard = pml_triplet_margin_miner(dist, labels, margin, "semihard")
    hard = pml_triplet_margin_miner(dist, labels, margin, "hard")
    num_negatives = {a: np.sum(labels != labels[a]) for a in range(16)}
    pair_losses = []
    for a, p in itertools.permutations(range(16), 2):
        if labels[a] != labels[p]:
            continue
        semi = [dist[a, p] - dist[a, n] + margin for a_, p_, n in semihard if (a_, p_) == (a, p)]
        hard_ = [dist[a, p] - dist[a, n] + margin for a_, p_, n in hard if (a_, p_) == (a, p)]
        if semi:
            pair_losses.append(max(semi))
        elif len(hard_) == num_negatives[a]:
            pair_losses.append(min(hard_))
        else:
            pair_losses.append(0.0)
    assert 0 < len(semihard) and 0 < sum(v == 0.0 for v in pair_losses)  # all cases occur
    np.testing.assert_allclose(losses.semi_hard_triplet_loss(emb, labels, margin),
                               np.mean(pair_losses), rtol=1e-5)


# --------------------------------------------------------------------------
# jit / vmap and input checks
# --------------------------------------------------------------------------
def test_mining_losses_jit_and_vmap_match_eager_loop():
    embs = np.stack([_embeddings(16, seed=30 + i) for i in range(3)])
    labels = np.stack([np.random.default_rng(i).permutation(PK_LABELS) for i in range(3)])
    fns = [
        lambda e, y: losses.batch_all_triplet_loss(e, y),
        losses.batch_hard_triplet_loss,
        lambda e, y: losses.batch_hard_triplet_loss(e, y, soft=True),
        losses.semi_hard_triplet_loss,
    ]
    for fn in fns:
        expected = np.array([fn(e, y) for e, y in zip(embs, labels)])
        np.testing.assert_allclose(jax.jit(jax.vmap(fn))(embs, labels), expected, rtol=1e-6)
        np.testing.assert_allclose(jax.jit(fn)(embs[0], labels[0]), expected[0], rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    emb = _embeddings(4)
    with pytest.raises(ValueError, match="labels"):
        losses.batch_hard_triplet_loss(emb, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="embeddings"):
        losses.semi_hard_triplet_loss(emb[0], np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="distance="):
        losses.batch_all_triplet_loss(emb, np.zeros(4, np.int32), distance="manhattan")
    with pytest.raises(ValueError, match="same shape"):
        losses.triplet_loss(emb, emb, emb[:2])
    with pytest.raises(ValueError, match="y has shape"):
        losses.pairwise_euclidean(emb, emb[:, :2])
