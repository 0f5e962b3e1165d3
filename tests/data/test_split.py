"""split.py: exact stratified counts, seeds, groups kept whole, subset of train only."""

from __future__ import annotations

import numpy as np
import pytest

from resnetlab.data.bundle import TEST, TRAIN, UNASSIGNED, VAL
from resnetlab.data.sources import load_data
from resnetlab.data.split import assign_splits, split_by_ratio, subset_index
from resnetlab.errors import UserError


def test_cifar_recipe_gives_45000_5000() -> None:
    labels = np.tile(np.arange(10), 6000)
    assigned = np.r_[np.full(50000, TRAIN), np.full(10000, TEST)].astype(np.int8)
    out = assign_splits(assigned, strata=labels, groups=None, val_ratio=0.1, test_ratio=0.1, seed=0)
    assert (out == TRAIN).sum() == 45000 and (out == VAL).sum() == 5000 and (out == TEST).sum() == 10000
    assert np.bincount(labels[out == VAL]).tolist() == [500] * 10
    assert (out[50000:] == TEST).all()  # the given test split is untouched


def test_three_way_split_is_exact_seeded_and_stratified() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    a = split_by_ratio(labels, val_ratio=0.1, test_ratio=0.2, seed=1)
    assert [(a == c).sum() for c in (TRAIN, VAL, TEST)] == [70, 10, 20]
    assert np.bincount(labels[a == TEST]).tolist() == [10, 6, 4]
    assert np.bincount(labels[a == VAL]).tolist() == [5, 3, 2]
    assert np.array_equal(a, split_by_ratio(labels, val_ratio=0.1, test_ratio=0.2, seed=1))
    assert not np.array_equal(a, split_by_ratio(labels, val_ratio=0.1, test_ratio=0.2, seed=2))


def test_every_class_keeps_a_training_item() -> None:
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 2, 2])
    a = split_by_ratio(labels, val_ratio=0.4, test_ratio=0.4, seed=0)
    assert all((a[labels == c] == TRAIN).any() for c in (0, 1, 2))


def test_groups_stay_in_one_split() -> None:
    groups = np.repeat([f"g{i}" for i in range(20)], 3)
    labels = np.repeat(np.arange(20) % 2, 3)
    a = assign_splits(np.full(60, UNASSIGNED, np.int8), strata=labels, groups=groups, val_ratio=0.2,
                      test_ratio=0.2, seed=0)
    for g in np.unique(groups):
        assert len(set(a[groups == g])) == 1
    assert [(a == c).sum() for c in (TRAIN, VAL, TEST)] == [36, 12, 12]


def test_ratios_leaving_no_training_data_are_refused() -> None:
    with pytest.raises(UserError, match=r"data.val_ratio \+ data.test_ratio = 1 leaves no training data"):
        assign_splits(np.full(10, UNASSIGNED, np.int8), strata=np.zeros(10), groups=None, val_ratio=0.5,
                      test_ratio=0.5, seed=0)


def test_subset_index_is_stratified_and_seeded() -> None:
    labels = np.repeat([0, 1], [80, 20])
    idx = subset_index(labels, 10, seed=0)
    assert len(idx) == 10 and np.bincount(labels[idx]).tolist() == [8, 2]
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, subset_index(labels, 10, seed=0))
    assert len(subset_index(labels, 500, seed=0)) == 100


def test_subset_only_shrinks_train(cfg, log) -> None:
    full = load_data(**cfg("digits", cache="memory"), log=log)
    small = load_data(**cfg("digits", cache="memory", subset=100), log=log)
    assert len(small.train) == 100 and set(small.train.ids) <= set(full.train.ids)
    assert small.val.ids == full.val.ids and small.test.ids == full.test.ids
