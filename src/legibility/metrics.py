"""Test-set metrics, computed with scikit-learn (and scipy for Pearson's r)."""

import numpy as np
from scipy import stats
from sklearn import metrics as skm

def classification(y_true, probabilities, n_classes: int) -> dict:
    """`probabilities`: (n, n_classes). Binary metrics treat class 1 as positive."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(n_classes)
    out = {"balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred)}
    if n_classes == 2:
        out["auc"] = _safe(skm.roc_auc_score, y_true, probabilities[:, 1])
        out["f1"] = skm.f1_score(y_true, y_pred, zero_division=0)
        out["precision"] = skm.precision_score(y_true, y_pred, zero_division=0)
        out["recall"] = out["sensitivity"] = skm.recall_score(y_true, y_pred, zero_division=0)
        out["specificity"] = skm.recall_score(y_true, y_pred, pos_label=0, zero_division=0)
    else:
        out["auc"] = _safe(skm.roc_auc_score, y_true, probabilities, multi_class="ovr", average="macro", labels=labels)
        out["f1"] = skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        out["precision"] = skm.precision_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        out["recall"] = skm.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
    return {k: float(v) for k, v in out.items()}


def regression(y_true, y_pred) -> dict:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    out = {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": skm.r2_score(y_true, y_pred),
        "pearson_r": stats.pearsonr(y_true, y_pred)[0] if np.std(y_pred) > 0 else float("nan"),
    }
    return {k: float(v) for k, v in out.items()}


def headline(target_type: str) -> str:
    """The metric a target's models are compared on."""
    return "r2" if target_type == "continuous" else "balanced_accuracy"


def chance(target_type: str, n_classes: int = 2) -> float:
    """The headline metric of a model that knows nothing: R² 0, balanced accuracy 1/K."""
    return 0.0 if target_type == "continuous" else 1.0 / n_classes


def _safe(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError:  # a class absent from the test set
        return float("nan")


def resampled_scores(target_type: str, y_true, y_pred, weights):
    """The headline metric (and, for regression, MAE) of each resample of the test set, given
    as a (resamples x n) matrix of how often each subject is drawn: all resamples at once, the
    numbers sklearn gives on each resampled set (tested)."""
    y_true, y_pred, weights = np.asarray(y_true), np.asarray(y_pred), np.asarray(weights, float)
    n = weights.sum(axis=1)
    if target_type == "continuous":
        error = y_true - y_pred
        mean = weights @ y_true / n
        total = weights @ y_true**2 - n * mean**2
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1 - (weights @ error**2) / total
        return {"r2": r2, "mae": weights @ np.abs(error) / n}
    classes = np.unique(y_true)
    truth = (y_true[:, None] == classes[None, :]).astype(float)  # one-hot over the classes present
    per_class = weights @ truth
    hits = weights @ (truth * (y_true == y_pred)[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = hits / per_class
    return {"balanced_accuracy": np.nanmean(np.where(per_class > 0, recall, np.nan), axis=1)}


def bootstrap_ci(target_type: str, y_true, y_pred, resamples: int, seed: int, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals {metric: (low, high)} over test subjects drawn with replacement."""
    n = len(y_true)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    tail = (1 - level) / 2 * 100
    return {k: tuple(np.nanpercentile(v, [tail, 100 - tail])) for k, v in resampled_scores(target_type, y_true, y_pred, weights).items()}


def permutation_p(target_type: str, y_true, y_pred, permutations: int, seed: int, chunk: int = 250) -> float:
    """P-value of the headline metric against predictions shuffled across test subjects:
    (1 + shuffles scoring at least as well) / (1 + shuffles)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    observed = scores_of(target_type, y_true, y_pred[None, :])[0]
    if not np.isfinite(observed):  # no score (say, a constant truth): no evidence at all
        return 1.0
    draw, at_least = np.random.default_rng(seed), 0
    for done in range(0, permutations, chunk):
        shuffled = draw.permuted(np.tile(y_pred, (min(chunk, permutations - done), 1)), axis=1)
        at_least += int(np.sum(scores_of(target_type, y_true, shuffled) >= observed - 1e-12))
    return (1 + at_least) / (1 + permutations)


def scores_of(target_type, y_true, predictions):
    """The headline metric of each row of a (sets x n) matrix of predictions (scikit-learn's
    R² or balanced accuracy, tested)."""
    if target_type == "continuous":
        total = np.sum((y_true - y_true.mean()) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - np.sum((y_true[None, :] - predictions) ** 2, axis=1) / total
    classes = np.unique(y_true)
    truth = (y_true[:, None] == classes[None, :]).astype(float)
    return np.mean((predictions == y_true[None, :]) @ truth / truth.sum(axis=0), axis=1)


def paired_bootstrap_ci(target_type: str, y_true, y_a, y_b, resamples: int, seed: int, level: float = 0.95) -> tuple:
    """Percentile bootstrap interval of the headline metric of predictions `y_a` less that of
    `y_b`, each resample scoring both on the same drawn subjects (a paired interval)."""
    n = len(y_true)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    metric = headline(target_type)
    difference = resampled_scores(target_type, y_true, y_a, weights)[metric] - resampled_scores(target_type, y_true, y_b, weights)[metric]
    tail = (1 - level) / 2 * 100
    return tuple(np.nanpercentile(difference, [tail, 100 - tail]))


def paired_permutation_p(target_type: str, y_true, y_a, y_b, permutations: int, seed: int, chunk: int = 250) -> float:
    """One-sided p-value of the headline metric of `y_a` exceeding that of `y_b`, against
    swapping the two predictions of each subject at random (no difference between the models):
    (1 + swaps with a difference at least as large) / (1 + swaps)."""
    y_true, y_a, y_b = np.asarray(y_true), np.asarray(y_a), np.asarray(y_b)
    observed = np.subtract(*scores_of(target_type, y_true, np.stack([y_a, y_b])))
    if not np.isfinite(observed):
        return 1.0
    draw, at_least = np.random.default_rng(seed), 0
    for done in range(0, permutations, chunk):
        swap = draw.random((min(chunk, permutations - done), len(y_true))) < 0.5
        a, b = np.where(swap, y_b, y_a), np.where(swap, y_a, y_b)
        at_least += int(np.sum(scores_of(target_type, y_true, a) - scores_of(target_type, y_true, b) >= observed - 1e-12))
    return (1 + at_least) / (1 + permutations)


def skill(score, chance):
    """Skill above chance, (score - chance) / (1 - chance): 0 is chance and 1 perfect, for R²
    (chance 0) and balanced accuracy (chance 1/K) alike; NaN where chance is 1 (one class among
    the scored subjects, as in a tiny test set: there is no skill to measure)."""
    spread = 1 - np.asarray(chance, dtype=float)
    return (score - chance) / np.where(spread > 0, spread, np.nan)  # numbers, arrays and columns alike
