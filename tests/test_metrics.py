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


@pytest.mark.parametrize("target_type", ["binary", "continuous"])
def test_the_paired_interval_is_of_differences_on_the_same_resampled_subjects(target_type):
    """Each resample scores both models on the same drawn subjects (sklearn on each); the
    interval is the percentiles of those differences."""
    draw = np.random.default_rng(6)
    n = 50
    if target_type == "continuous":
        y_true = draw.normal(60, 8, n)
        y_a, y_b = y_true + draw.normal(0, 3, n), y_true + draw.normal(0, 6, n)
        score = skm.r2_score
    else:
        y_true = draw.integers(0, 2, n)
        y_a, y_b = (np.where(draw.random(n) < p, y_true, 1 - y_true) for p in (0.9, 0.7))
        score = skm.balanced_accuracy_score
    low, high = metrics.paired_bootstrap_ci(target_type, y_true, y_a, y_b, 300, seed=4)
    weights = np.random.default_rng(4).multinomial(n, np.full(n, 1 / n), size=300)  # the same draws
    differences = [score(y_true[d], y_a[d]) - score(y_true[d], y_b[d]) for d in (np.repeat(np.arange(n), w) for w in weights)]
    assert (low, high) == pytest.approx(tuple(np.percentile(differences, [2.5, 97.5])))
    assert low < score(y_true, y_a) - score(y_true, y_b) < high


def test_the_paired_permutation_p_swaps_predictions_within_subjects():
    """Against every one of the 2^10 swaps (exact), the Monte Carlo p agrees; the same
    predictions twice are no evidence (p = 1); a clear improvement on many subjects is."""
    import itertools

    draw = np.random.default_rng(7)
    y_true = draw.normal(size=10)
    y_a, y_b = y_true + draw.normal(0, 0.5, 10), y_true + draw.normal(0, 1.0, 10)
    observed = skm.r2_score(y_true, y_a) - skm.r2_score(y_true, y_b)
    swaps = np.array(list(itertools.product([False, True], repeat=10)))
    exact = np.mean([skm.r2_score(y_true, np.where(s, y_b, y_a)) - skm.r2_score(y_true, np.where(s, y_a, y_b)) >= observed - 1e-12
                     for s in swaps])  # fmt: skip
    assert metrics.paired_permutation_p("continuous", y_true, y_a, y_b, 4999, seed=2) == pytest.approx(exact, abs=0.02)
    assert metrics.paired_permutation_p("continuous", y_true, y_a, y_a, 99, seed=2) == 1.0
    labels = draw.integers(0, 3, 200)
    better, worse = np.where(draw.random(200) < 0.9, labels, 0), np.where(draw.random(200) < 0.5, labels, 0)
    assert metrics.paired_permutation_p("categorical", labels, better, worse, 999, seed=2) == pytest.approx(1 / 1000)
    assert metrics.paired_permutation_p("categorical", labels, worse, better, 999, seed=2) > 0.5  # one-sided
