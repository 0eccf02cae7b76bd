"""Prequential metrics of served predictions, per window, computed exactly when the window closes.

Classification: accuracy, log loss (of the probability given to the true class, clipped
to [1e-15, 1]), F1 (of the class `True` when every label is a bool, else macro-averaged over
the classes seen) and ROC AUC (bool labels only; the Mann-Whitney statistic, ties counted
half). Regression: MAE and RMSE. A metric without data is null.

>>> scores = WindowScores()
>>> for y, proba in [(True, {True: 0.9, False: 0.1}), (False, {True: 0.4, False: 0.6}),
...                  (True, {True: 0.3, False: 0.7})]:
...     scores.add_classification(y, max(proba, key=proba.get), proba)
>>> {k: round(v, 4) for k, v in scores.classification().items()}
{'accuracy': 0.6667, 'log_loss': 0.6067, 'f1': 0.6667, 'roc_auc': 0.5}
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from scipy.stats import rankdata

_EPS = 1e-15


class WindowScores:
    """The labelled predictions of one metrics window (one model, one segment)."""

    __slots__ = ("y_true", "y_pred", "p_true_class", "p_positive", "errors")

    def __init__(self) -> None:
        self.y_true: list[Any] = []
        self.y_pred: list[Any] = []
        self.p_true_class: list[float] = []  # probability given to the label that came
        self.p_positive: list[float] = []  # probability given to True (for ROC AUC)
        self.errors: list[float] = []  # regression: prediction - label

    def __len__(self) -> int:
        return len(self.y_true) or len(self.errors)

    def add_classification(self, y: Any, predicted: Any, proba: dict[Any, float]) -> None:
        """Record one labelled classification."""
        self.y_true.append(y)
        self.y_pred.append(predicted)
        self.p_true_class.append(proba.get(y, 0.0))
        self.p_positive.append(proba.get(True, 0.0))

    def add_regression(self, y: float, predicted: float) -> None:
        """Record one labelled regression."""
        self.errors.append(predicted - y)

    def classification(self) -> dict[str, float | None]:
        """accuracy, log_loss, f1, roc_auc over the window (null when undefined)."""
        n = len(self.y_true)
        if n == 0:
            return {"accuracy": None, "log_loss": None, "f1": None, "roc_auc": None}
        correct = sum(1 for y, p in zip(self.y_true, self.y_pred) if y == p)
        p = np.clip(np.asarray(self.p_true_class, dtype=float), _EPS, 1.0)
        binary = all(type(y) is bool for y in self.y_true)
        return {"accuracy": correct / n, "log_loss": float(-np.log(p).mean()),
                "f1": f1_score(self.y_true, self.y_pred, binary),
                "roc_auc": roc_auc(self.y_true, self.p_positive) if binary else None}

    def regression(self) -> dict[str, float | None]:
        """mae and rmse over the window (null when empty).

        >>> w = WindowScores(); w.add_regression(1.0, 3.0); w.add_regression(2.0, 1.0)
        >>> w.regression()
        {'mae': 1.5, 'rmse': 1.5811388300841898}
        """
        if not self.errors:
            return {"mae": None, "rmse": None}
        e = np.asarray(self.errors, dtype=float)
        return {"mae": float(np.abs(e).mean()), "rmse": math.sqrt(float((e * e).mean()))}


def f1_score(y_true: list[Any], y_pred: list[Any], binary: bool) -> float:
    """F1 of the class True (binary), else the mean F1 over the classes among the labels.

    >>> f1_score([True, True, False], [True, False, True], binary=True)
    0.5
    """
    classes = [True] if binary else sorted({*y_true}, key=repr)
    total = 0.0
    for c in classes:
        tp = sum(1 for y, p in zip(y_true, y_pred) if y == c and p == c)
        fp = sum(1 for y, p in zip(y_true, y_pred) if y != c and p == c)
        fn = sum(1 for y, p in zip(y_true, y_pred) if y == c and p != c)
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / len(classes)


def roc_auc(y_true: list[bool], scores: list[float]) -> float | None:
    """The probability that a random positive scores above a random negative (ties: half).

    >>> roc_auc([True, False, True, False], [0.9, 0.1, 0.4, 0.4])
    0.875
    """
    y = np.asarray(y_true, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def score(classify: bool, predicted: Any, y: Any) -> float:
    """One labelled prediction's score, higher is better: 1 or 0 for a right or wrong class, minus
    the absolute error for a value (minus infinity without a prediction). Champion and challenger
    are compared on it, on the recent labels and on the fixed test set.

    >>> score(True, "a", "a"), score(True, None, "a"), score(False, 2.5, 4.0)
    (1.0, 0.0, -1.5)
    """
    if classify:
        return 1.0 if predicted == y else 0.0
    return -abs(predicted - y) if predicted is not None else -math.inf


class PairedScores:
    """Champion and challenger scores on the same last `window` labelled examples.

    A score is 1/0 for a right/wrong class, or minus the absolute error: higher is better.

    >>> paired = PairedScores(window=2)
    >>> paired.add(1.0, 1.0); paired.add(0.0, 1.0)
    >>> paired.full, paired.means()
    (True, (0.5, 1.0))
    """

    __slots__ = ("champion", "challenger")

    def __init__(self, window: int) -> None:
        self.champion: deque[float] = deque(maxlen=window)
        self.challenger: deque[float] = deque(maxlen=window)

    def add(self, champion: float, challenger: float) -> None:
        """Record both models' scores on one labelled example."""
        self.champion.append(champion)
        self.challenger.append(challenger)

    @property
    def full(self) -> bool:
        """True once `window` examples were scored by both."""
        return len(self.champion) == self.champion.maxlen

    def means(self) -> tuple[float, float]:
        """(champion mean, challenger mean) over the window."""
        n = max(len(self.champion), 1)
        return sum(self.champion) / n, sum(self.challenger) / n
