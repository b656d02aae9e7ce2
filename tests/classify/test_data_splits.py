"""Split assignment: leak-freedom over md5 groups, stratification, minority fraction."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classify.core.errors import UserError
from classify.data.splits import apply_minority_fraction, assign_splits, check_fractions, split_targets


def _groups_of(md5s):
    groups = defaultdict(list)
    for i, m in enumerate(md5s):
        groups[m].append(i)
    return groups


# Each row: (label, md5 id). A small md5 alphabet forces many duplicate groups, some of
# them across labels (a labelling error that must still not leak).
rows_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 40)), min_size=2, max_size=120
)
fractions = st.tuples(st.floats(0.0, 0.45), st.floats(0.0, 0.45))


@settings(max_examples=150, deadline=None, database=None)
@given(rows=rows_strategy, fr=fractions, seed=st.integers(0, 10**6))
def test_no_md5_group_straddles_splits(rows, fr, seed):
    labels = [r[0] for r in rows]
    md5s = [f"m{r[1]}" for r in rows]
    splits = assign_splits(labels, md5s, fr[0], fr[1], seed)
    assert len(splits) == len(rows) and set(splits) <= {"train", "val", "test"}
    groups = _groups_of(md5s)
    for members in groups.values():
        assert len({splits[i] for i in members}) == 1
    # Every stratum (label of a group's first row) keeps at least one training group.
    strata = {labels[g[0]] for g in groups.values()}
    trained = {labels[g[0]] for g in groups.values() if splits[g[0]] == "train"}
    assert trained == strata


@settings(max_examples=150, deadline=None, database=None)
@given(
    counts=st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(2, 80), min_size=1),
    fr=fractions,
    seed=st.integers(0, 10**6),
)
def test_stratified_exactly_without_duplicates(counts, fr, seed):
    labels = [label for label, n in counts.items() for _ in range(n)]
    md5s = [f"u{i}" for i in range(len(labels))]  # all unique: counts must hit the targets exactly
    splits = assign_splits(labels, md5s, fr[0], fr[1], seed)
    got = Counter(zip(labels, splits))
    for label, n in counts.items():
        n_val, n_test = split_targets(n, fr[0], fr[1])
        assert got[(label, "val")] == n_val and got[(label, "test")] == n_test
        assert got[(label, "train")] == n - n_val - n_test >= 1
        assert abs(n_test - fr[1] * n) <= 1 and abs(n_val - fr[0] * n) <= 1 or n < 4


@settings(max_examples=100, deadline=None, database=None)
@given(rows=rows_strategy, fr=fractions, seed=st.integers(0, 10**6))
def test_stratified_within_group_size_with_duplicates(rows, fr, seed):
    labels = [r[0] for r in rows]
    md5s = [f"m{r[1]}" for r in rows]
    splits = assign_splits(labels, md5s, fr[0], fr[1], seed)
    groups = _groups_of(md5s)
    biggest = max(len(g) for g in groups.values())
    # Stratum of a group = label of its first row; counts per stratum may overshoot by < one group.
    stratum = {i: labels[g[0]] for g in groups.values() for i in g}
    per = Counter((stratum[i], s) for i, s in enumerate(splits))
    sizes = Counter(stratum.values())
    for label, n in sizes.items():
        n_val, n_test = split_targets(n, fr[0], fr[1])
        got = per[(label, "test")]
        assert got < n_test + biggest or n_test == 0 == got  # overshoot by less than one group
        # Undershoot only when the last group (always train) holds rows the target needed.
        assert got >= min(n_test, n - biggest)
        assert per[(label, "train")] >= 1


def test_deterministic_and_seed_dependent():
    labels = ["a"] * 50 + ["b"] * 50
    md5s = [str(i) for i in range(100)]
    assert assign_splits(labels, md5s, 0.2, 0.2, 3) == assign_splits(labels, md5s, 0.2, 0.2, 3)
    assert assign_splits(labels, md5s, 0.2, 0.2, 3) != assign_splits(labels, md5s, 0.2, 0.2, 4)


def test_class_of_duplicates_still_trains():
    # 'b' is two copies of one image plus one distinct image: the test target (1) is overshot
    # by the pair, but the last group must still go to train.
    labels = ["a"] * 10 + ["b"] * 3
    md5s = [str(i) for i in range(10)] + ["dup", "dup", "solo"]
    for seed in range(20):
        splits = assign_splits(labels, md5s, 0.15, 0.2, seed)
        assert "train" in splits[10:]


def test_small_class_gets_val_and_test_when_it_can():
    assert split_targets(2, 0.15, 0.2) == (0, 1)
    assert split_targets(3, 0.15, 0.2) == (1, 1)
    assert split_targets(100, 0.15, 0.2) == (15, 20)
    assert split_targets(5, 0.0, 0.0) == (0, 0)


@pytest.mark.parametrize("val,test", [(0.5, 0.5), (0.7, 0.4), (-0.1, 0.2)])
def test_bad_fractions(val, test):
    with pytest.raises(UserError, match="--val"):
        check_fractions(val, test)


def test_minority_fraction_moves_train_rows_to_unused():
    labels = ["rare"] * 40 + ["common"] * 60
    md5s = [str(i) for i in range(100)]
    md5s[1] = md5s[0]  # one duplicate pair inside the rare class
    splits = assign_splits(labels, md5s, 0.15, 0.2, 0)
    reduced = apply_minority_fraction(splits, labels, md5s, "rare", 0.25, 0)
    rare_train = [i for i in range(100) if labels[i] == "rare" and splits[i] == "train"]
    kept = [i for i in rare_train if reduced[i] == "train"]
    assert abs(len(kept) - 0.25 * len(rare_train)) <= 1  # + at most the pair
    assert all(reduced[i] == "unused" for i in rare_train if i not in kept)
    for i in range(100):  # val/test and the other class untouched
        if labels[i] == "common" or splits[i] != "train":
            assert reduced[i] == splits[i]
    assert reduced[0] == reduced[1]
    assert apply_minority_fraction(splits, labels, md5s, "rare", 1.0, 0) == splits
    tiny = apply_minority_fraction(splits, labels, md5s, "rare", 0.001, 0)
    assert sum(1 for i in rare_train if tiny[i] == "train") >= 1


def test_minority_errors():
    with pytest.raises(UserError, match="not a class"):
        apply_minority_fraction(["train"] * 2, ["a", "b"], ["1", "2"], "c", 0.5, 0)
    with pytest.raises(UserError, match="minority-fraction"):
        apply_minority_fraction(["train"] * 2, ["a", "b"], ["1", "2"], "a", 0.0, 0)
