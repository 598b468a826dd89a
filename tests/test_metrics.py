"""Metrics agree with scikit-learn and scipy on the same predictions."""

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from legibility import metrics


def test_binary_metrics():
    draw = np.random.default_rng(0)
    truth = draw.integers(0, 2, 200)
    positive = np.clip(truth * 0.4 + draw.uniform(0, 0.6, 200), 0, 1)
    out = metrics.classification(truth, np.stack([1 - positive, positive], axis=1), 2)
    predicted = (positive > 0.5).astype(int)
    assert out["balanced_accuracy"] == skm.balanced_accuracy_score(truth, predicted)
    assert out["auc"] == skm.roc_auc_score(truth, positive)
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted).ravel()
    assert np.isclose(out["sensitivity"], tp / (tp + fn)) and np.isclose(out["specificity"], tn / (tn + fp))
    assert np.isclose(out["precision"], tp / (tp + fp))


def test_categorical_metrics():
    draw = np.random.default_rng(1)
    truth = draw.integers(0, 3, 150)
    scores = draw.dirichlet(np.ones(3), 150) + np.eye(3)[truth] * 0.5
    probabilities = scores / scores.sum(axis=1, keepdims=True)
    out = metrics.classification(truth, probabilities, 3)
    assert out["balanced_accuracy"] == skm.balanced_accuracy_score(truth, probabilities.argmax(1))
    assert np.isclose(out["auc"], skm.roc_auc_score(truth, probabilities, multi_class="ovr"))


def test_regression_metrics():
    draw = np.random.default_rng(2)
    truth = draw.normal(60, 8, 100)
    predicted = truth + draw.normal(0, 3, 100)
    out = metrics.regression(truth, predicted)
    assert np.isclose(out["mae"], np.abs(truth - predicted).mean())
    assert np.isclose(out["rmse"], np.sqrt(((truth - predicted) ** 2).mean()))
    assert np.isclose(out["r2"], skm.r2_score(truth, predicted))
    assert np.isclose(out["pearson_r"], stats.pearsonr(truth, predicted)[0])
