"""Seeded, stratified train/val/test splits and the training subset.

Counts are exact and reproducible: a split takes round(ratio * N) items overall, shared
between strata (classes) by largest remainder, so CIFAR-10 with val_ratio=0.1 gives exactly
45,000/5,000 with 500 validation images per class. Every stratum keeps at least one training
item. With groups (the clips of a frame manifest) whole groups are assigned, so no clip is in
two splits; a group's stratum is its most common class.
"""

from __future__ import annotations

import numpy as np

from resnetlab.data.bundle import TEST, TRAIN, UNASSIGNED, VAL
from resnetlab.errors import UserError


def _quotas(counts: np.ndarray, fraction: float) -> np.ndarray:
    """round(fraction * total) items shared between strata by largest remainder."""
    exact = counts * fraction
    quota = np.floor(exact).astype(np.int64)
    rest = int(np.floor(counts.sum() * fraction + 0.5)) - int(quota.sum())
    if rest > 0:
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:rest]] += 1
    return np.minimum(quota, counts)


def _by_stratum(codes: np.ndarray, n_strata: int) -> list[np.ndarray]:
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=n_strata))[:-1]
    return np.split(order, bounds)


def split_by_ratio(strata: np.ndarray, *, val_ratio: float, test_ratio: float, seed: int) -> np.ndarray:
    """TRAIN/VAL/TEST code per item, stratified by `strata` (any comparable values)."""
    _, codes = np.unique(np.asarray(strata), return_inverse=True)
    codes = codes.reshape(-1)
    counts = np.bincount(codes)
    test_q = _quotas(counts, test_ratio)
    val_q = _quotas(counts, val_ratio)
    over = np.maximum(test_q + val_q - np.maximum(counts - 1, 0), 0)  # keep one training item
    take = np.minimum(over, val_q)
    val_q -= take
    test_q -= over - take
    rng = np.random.default_rng(seed)
    out = np.full(len(codes), TRAIN, dtype=np.int8)
    for s, members in enumerate(_by_stratum(codes, len(counts))):
        members = rng.permutation(members)
        out[members[:test_q[s]]] = TEST
        out[members[test_q[s]:test_q[s] + val_q[s]]] = VAL
    return out


def _split_pool(strata: np.ndarray, groups: np.ndarray | None, *, val_ratio: float, test_ratio: float,
                seed: int) -> np.ndarray:
    if groups is None:
        return split_by_ratio(strata, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    _, g = np.unique(groups, return_inverse=True)
    _, s = np.unique(strata, return_inverse=True)
    g, s = g.reshape(-1), s.reshape(-1)
    n_groups, n_strata = g.max() + 1, s.max() + 1
    votes = np.bincount(g * n_strata + s, minlength=n_groups * n_strata).reshape(n_groups, n_strata)
    per_group = split_by_ratio(votes.argmax(axis=1), val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    return per_group[g]


def assign_splits(assigned: np.ndarray, *, strata: np.ndarray, groups: np.ndarray | None, val_ratio: float,
                  test_ratio: float, seed: int) -> np.ndarray:
    """Fill in the splits a source did not fix.

    All rows UNASSIGNED: split three ways by val_ratio and test_ratio. Otherwise the source's
    split stands, and a missing val split is taken from train by val_ratio (a missing test
    split stays missing).
    """
    assigned = np.asarray(assigned, dtype=np.int8).copy()
    free = assigned == UNASSIGNED
    if free.all():
        if val_ratio + test_ratio >= 1:
            raise UserError(f"data.val_ratio + data.test_ratio = {val_ratio + test_ratio:g} leaves no "
                            f"training data; make their sum smaller than 1")
        return _split_pool(strata, groups, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    if free.any():
        raise ValueError("a source must fix the split of every row or of none")
    if val_ratio > 0 and not (assigned == VAL).any():
        pool = np.flatnonzero(assigned == TRAIN)
        sub = _split_pool(strata[pool], None if groups is None else groups[pool],
                          val_ratio=val_ratio, test_ratio=0.0, seed=seed)
        assigned[pool] = sub
    return assigned


def subset_index(strata: np.ndarray, size: int, *, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, stratified subset of at most `size` items."""
    n = len(strata)
    if size >= n:
        return np.arange(n)
    _, codes = np.unique(np.asarray(strata), return_inverse=True)
    codes = codes.reshape(-1)
    counts = np.bincount(codes)
    quota = _quotas(counts, size / n)
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(members)[:quota[s]] for s, members in enumerate(_by_stratum(codes, len(counts)))]
    return np.sort(np.concatenate(chosen))
