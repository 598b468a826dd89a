"""Metrics agree with scikit-learn and scipy on the same predictions."""

import numpy as np
import pytest
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


@pytest.mark.parametrize("target_type", ["binary", "categorical", "continuous"])
def test_resampled_scores_equal_sklearn_on_each_resample(target_type):
    draw = np.random.default_rng(3)
    n = 40
    if target_type == "continuous":
        y_true = draw.normal(60, 8, n)
        y_pred = y_true + draw.normal(0, 5, n)
    else:
        k = 2 if target_type == "binary" else 3
        y_true, y_pred = draw.integers(0, k, n), draw.integers(0, k, n)
    weights = draw.multinomial(n, np.full(n, 1 / n), size=5)
    scores = metrics.resampled_scores(target_type, y_true, y_pred, weights)
    for row, w in enumerate(weights):
        drawn = np.repeat(np.arange(n), w)  # the resampled test set
        if target_type == "continuous":
            assert scores["r2"][row] == pytest.approx(skm.r2_score(y_true[drawn], y_pred[drawn]))
            assert scores["mae"][row] == pytest.approx(skm.mean_absolute_error(y_true[drawn], y_pred[drawn]))
        else:
            assert scores["balanced_accuracy"][row] == pytest.approx(skm.balanced_accuracy_score(y_true[drawn], y_pred[drawn]))


def test_bootstrap_interval_covers_the_score_and_narrows_with_more_subjects():
    draw = np.random.default_rng(4)
    intervals = []
    for n in (40, 1000):
        y_true = draw.integers(0, 2, n)
        y_pred = np.where(draw.random(n) < 0.8, y_true, 1 - y_true)  # 80% right
        low, high = metrics.bootstrap_ci("binary", y_true, y_pred, 2000, seed=1)["balanced_accuracy"]
        assert low < skm.balanced_accuracy_score(y_true, y_pred) < high
        intervals.append(high - low)
    assert intervals[1] < intervals[0] / 3  # about 1/sqrt(n)
    assert metrics.bootstrap_ci("binary", y_true, y_pred, 200, seed=1) == metrics.bootstrap_ci("binary", y_true, y_pred, 200, seed=1)


def test_permutation_p_separates_signal_from_noise():
    draw = np.random.default_rng(5)
    y_true = draw.normal(size=60)
    assert metrics.permutation_p("continuous", y_true, y_true + draw.normal(0, 0.5, 60), 999, seed=1) == pytest.approx(1 / 1000)
    noise = metrics.permutation_p("continuous", y_true, draw.normal(size=60), 999, seed=1)
    assert 0.05 < noise <= 1
    labels = draw.integers(0, 3, 60)
    assert metrics.permutation_p("categorical", labels, labels, 999, seed=1) == pytest.approx(1 / 1000)
