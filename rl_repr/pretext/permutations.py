"""The jigsaw puzzle's label set: permutations of the tiles chosen far apart in Hamming distance.

Noroozi & Favaro 2016 ("Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles", arXiv:1603.09246, Section 3.2 and Algorithm 1) do not classify all ``9!`` orders of
the 3x3 tiles: they fix a set of ``P`` permutations and ask which one shuffled the tiles. Two
permutations that move only one or two tiles differently are nearly the same question, so the
set is chosen greedily for large Hamming distance ``d(p, q) = #{i : p_i != q_i}``: start from
one permutation, then repeatedly add the candidate farthest from those already chosen.

Their Algorithm 1 adds the candidate with the largest *mean* distance to the chosen set; its
sets of 100 have a minimum distance of only 2-3 (their Table 1). Here the criterion is the
largest *minimum* distance, ties broken by the largest mean (theirs), so every pair of labels
differs in as many tiles as the greedy search can keep apart (for 100 permutations of 9
tiles, at least 6; tested). The first permutation is drawn from ``seed``.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = ["maximal_hamming_permutations", "minimum_hamming_distance"]


@functools.lru_cache(maxsize=8)
def _all_permutations(num_tiles: int) -> np.ndarray:
    """``[num_tiles!, num_tiles]`` int8, lexicographic order."""
    return np.array(list(itertools.permutations(range(num_tiles))), np.int8)


@functools.lru_cache(maxsize=8)
def maximal_hamming_permutations(num_permutations: int, num_tiles: int = 9, seed: int = 0) -> np.ndarray:
    """``[P, num_tiles]`` int32 permutations of ``range(num_tiles)``, greedily far apart.

    Row ``l`` is label ``l``: tile ``i`` of the shuffled puzzle is tile ``perm[l, i]`` of the
    image (row-major cells). Deterministic in ``seed``; cached (read-only array).

    Greedy step: with ``m(q) = min_{p chosen} d(p, q)`` and ``s(q) = sum_{p chosen} d(p, q)``,
    add ``argmax_q (m(q), s(q))`` (lexicographic; the lowest index among exact ties).
    """
    if num_tiles < 2 or num_tiles > 9:
        raise ValueError(f"maximal_hamming_permutations: num_tiles={num_tiles}; pass 2..9 tiles "
                         "(9! candidates is the most this enumerates).")
    candidates = _all_permutations(num_tiles)
    if not 1 <= num_permutations <= len(candidates):
        raise ValueError(f"maximal_hamming_permutations: num_permutations={num_permutations}; pass 1.."
                         f"{len(candidates)} ({num_tiles}! orders of {num_tiles} tiles).")
    first = int(np.random.default_rng(seed).integers(len(candidates)))
    chosen = [first]
    nearest = np.full(len(candidates), num_tiles + 1, np.int32)   # m(q)
    total = np.zeros(len(candidates), np.int64)                   # s(q)
    for _ in range(num_permutations - 1):
        distance = np.sum(candidates != candidates[chosen[-1]], axis=1, dtype=np.int32)
        nearest = np.minimum(nearest, distance)
        total += distance
        # m(q) = 0 for every chosen q, so none is picked twice.
        chosen.append(int(np.argmax(nearest.astype(np.int64) * (num_tiles * num_permutations + 1) + total)))
    permutations = candidates[chosen].astype(np.int32)
    permutations.setflags(write=False)
    return permutations


def minimum_hamming_distance(permutations: np.ndarray) -> int:
    """``min_{l != m} d(perm_l, perm_m)``: how many tiles the two closest labels differ in."""
    permutations = np.asarray(permutations)
    if len(permutations) < 2:
        raise ValueError("minimum_hamming_distance needs at least two permutations.")
    distance = np.sum(permutations[:, None, :] != permutations[None, :, :], axis=-1)
    np.fill_diagonal(distance, permutations.shape[1] + 1)
    return int(distance.min())
