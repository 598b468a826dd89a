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
