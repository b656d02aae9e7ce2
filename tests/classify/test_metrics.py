"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from classify.core.errors import UserError
from classify.train.metrics import choose_threshold, classification_metrics, expected_calibration_error


def _probs(score_pos: list[float]) -> np.ndarray:
    s = np.array(score_pos)
    return np.stack([s, 1 - s], axis=1)  # class 0 is the positive (minority) one


def test_binary_metrics_by_hand() -> None:
    # positives (label 0) score 0.8 and 0.3; negatives 0.1, 0.4, 0.35.
    y = [1, 1, 1, 0, 0]
    m = classification_metrics(y, _probs([0.1, 0.4, 0.35, 0.8, 0.3]), threshold=0.5, positive=0,
                               class_names=["bad", "good"])
    # AUC: of 6 (pos, neg) pairs, 0.8 beats all 3 and 0.3 beats only 0.1 -> 4/6.
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # AP: ranked 0.8(pos) 0.4 0.35 0.3(pos) 0.1 -> precision at the two hits 1 and 2/4 -> (1 + 0.5)/2.
    assert m["average_precision"] == pytest.approx(0.75)
    # At 0.5 only 0.8 is called bad: TP=1, FN=1, FP=0, TN=3.
    assert m["confusion"] == [[1, 1], [0, 3]]
    assert m["minority_precision"] == 1.0 and m["minority_recall"] == 0.5
    assert m["minority_f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    good_f1 = 2 * 0.75 * 1.0 / 1.75
    assert m["macro_f1"] == pytest.approx((2 / 3 + good_f1) / 2)
    assert m["per_class"]["good"]["support"] == 3 and m["positive_class"] == "bad"


def test_threshold_changes_the_decision_not_the_ranking() -> None:
    y = [1, 1, 1, 0, 0]
    p = _probs([0.1, 0.4, 0.35, 0.8, 0.3])
    low = classification_metrics(y, p, threshold=0.3, positive=0)
    assert low["confusion"] == [[2, 0], [2, 1]]  # 0.8, 0.3 and also 0.4, 0.35 are called bad
    assert low["roc_auc"] == classification_metrics(y, p, threshold=0.9, positive=0)["roc_auc"]


def test_single_class_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="single class.*ROC-AUC.*undefined"):
        classification_metrics([1, 1, 1], _probs([0.2, 0.3, 0.9]), 0.5, positive=0,
                               context="the test split of d")
    with pytest.raises(UserError, match="single class"):
        choose_threshold([False, False], [0.1, 0.2])


def test_ece_by_hand() -> None:
    # Two bins used: confidence 0.9 (two samples, one right) and 0.6 (two samples, both right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, y) == pytest.approx(expected)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def test_threshold_max_f1_and_target_recall() -> None:
    is_pos = [0, 0, 0, 1, 1, 0, 1]
    score = [0.1, 0.2, 0.6, 0.7, 0.9, 0.3, 0.5]
    # Candidates: >=0.9 F1 .5; >=0.7 F1 .8; >=0.6 F1 2/3*... ; >=0.5 P=3/4 R=1 F1 6/7 (best).
    assert choose_threshold(is_pos, score) == pytest.approx(0.5)
    assert choose_threshold(is_pos, score, target_recall=0.6) == pytest.approx(0.7)
    assert choose_threshold(is_pos, score, target_recall=1.0) == pytest.approx(0.5)


def test_multiclass_uses_argmax_and_macro_auc() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    m = classification_metrics([0, 1, 2, 1], probs, threshold=None, positive=2)
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["minority_recall"] == 1.0 and 0 <= m["roc_auc"] <= 1
