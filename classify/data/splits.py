"""Stratified train/val/test assignment where exact duplicates never straddle splits.

Rows with the same md5 form one group and move together; groups are shuffled per class
with the seed and dealt to test, then val, then train. A group's stratum is the label of
its first row (a duplicate carrying two labels is a labelling error the report lists).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

from classify.core.errors import UserError

SPLITS = ("train", "val", "test", "unused")
# The splits a model is scored on ('unused' holds the minority images a --minority-fraction left out).
EVAL_SPLITS = tuple(s for s in SPLITS if s != "unused")


def check_fractions(val: float, test: float) -> None:
    if not (math.isfinite(val) and math.isfinite(test)):
        raise UserError(f"--val {val} and --test {test} must be numbers in [0, 1)")
    if val < 0 or test < 0:
        raise UserError(f"--val {val} and --test {test} must be >= 0")
    if val + test >= 1:
        raise UserError(f"--val {val} + --test {test} = {val + test:g} leaves nothing to train on; make the sum < 1")


def duplicate_groups(md5s: list[str]) -> dict[str, list[int]]:
    """md5 -> row indices, in first-seen order (every row is in exactly one group)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, digest in enumerate(md5s):
        groups[digest].append(i)
    return dict(groups)


def split_targets(n: int, val: float, test: float) -> tuple[int, int]:
    """How many of a class's `n` rows go to (val, test).

    Rounded fractions, but a small class still gets one validation and one test image
    whenever it can spare them while keeping at least one for training: without a
    positive in val/test the minority metrics are undefined.
    """
    n_test, n_val = round(test * n), round(val * n)
    if test > 0 and n_test == 0 and n >= 2:
        n_test = 1
    if val > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    while n_val + n_test > n - 1 and n_val > 0:
        n_val -= 1
    while n_val + n_test > n - 1 and n_test > 0:
        n_test -= 1
    return n_val, n_test


def assign_splits(labels: list[str], md5s: list[str], val: float, test: float, seed: int) -> list[str]:
    check_fractions(val, test)
    if len(labels) != len(md5s):
        raise ValueError("labels and md5s must have the same length")
    by_class: dict[str, list[list[int]]] = defaultdict(list)
    for members in duplicate_groups(md5s).values():
        by_class[labels[members[0]]].append(members)
    splits = [""] * len(labels)
    for label in sorted(by_class):
        groups = by_class[label]
        # One RNG per class, seeded from (seed, label): adding a class never reshuffles another.
        random.Random(f"{seed}:{label}").shuffle(groups)
        n_val, n_test = split_targets(sum(len(g) for g in groups), val, test)
        counts = {"test": 0, "val": 0}
        for k, members in enumerate(groups):
            if k == len(groups) - 1:
                split = "train"  # the last group always trains, even when duplicates overshot the targets
            elif counts["test"] < n_test:
                split = "test"
            elif counts["val"] < n_val:
                split = "val"
            else:
                split = "train"
            counts[split] = counts.get(split, 0) + len(members)
            for i in members:
                splits[i] = split
    return splits


def apply_minority_fraction(
    splits: list[str], labels: list[str], md5s: list[str], minority_class: str, fraction: float, seed: int
) -> list[str]:
    """Keep about `fraction` of `minority_class`'s train rows; move the rest to 'unused'.

    Whole duplicate groups move, and at least one group is kept so the class stays trainable.
    """
    if not 0 < fraction <= 1:
        raise UserError(f"--minority-fraction must be in (0, 1], got {fraction}")
    if minority_class not in labels:
        raise UserError(f"--minority-class {minority_class!r} is not a class here; classes: {sorted(set(labels))}")
    out = list(splits)
    groups = [
        members
        for members in duplicate_groups(md5s).values()
        if splits[members[0]] == "train" and labels[members[0]] == minority_class
    ]
    n_rows = sum(len(g) for g in groups)
    keep = max(1, round(fraction * n_rows))
    random.Random(f"{seed}:minority:{minority_class}").shuffle(groups)
    kept = 0
    for members in groups:
        if kept >= keep:
            for i in members:
                out[i] = "unused"
        else:
            kept += len(members)
    return out
