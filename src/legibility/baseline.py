"""The linear baseline of every cell: the same split and inputs, scikit-learn's ridge or
logistic regression with the penalty chosen by cross-validation on the training split.

Images enter as atlas-region means (of the preprocessed cubes, so the atlas must be in the
images' space, as for UK Biobank's MNI-registered scans); connectivity and metadata as the
deep model sees them. Every feature is scaled on the training split only.
"""

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from .confounds import residualised
from .data import standardise
from .io import read_tsv
from .splits import SPLITS

ALPHAS = np.logspace(-2, 5, 15)  # ridge penalties tried
CS = np.logspace(-4, 2, 13)  # inverse logistic penalties tried
FOLDS = 5


def features(spec, datasets, regions=None, fitted=None) -> dict:
    """{split: (subjects x features) float array} of the model's inputs; the region means'
    scaling on the training split goes in `fitted["regions"]` where `fitted` is given."""
    parts = {split: [] for split in SPLITS}
    if spec.images:
        table = read_tsv(regions).set_index(["subject", "modality"])
        per_split = []
        for split in SPLITS:
            subjects = datasets[split].subjects
            missing = [f"sub-{s} {m}" for s in subjects for m in spec.images if (s, m) not in table.index]
            if missing:
                raise ValueError(f"{spec.name}: no region means for {', '.join(missing[:10])}")
            per_split.append(np.hstack([table.loc[[(s, m) for s in subjects]].to_numpy(float) for m in spec.images])
                             if subjects else np.zeros((0, len(spec.images) * table.shape[1])))  # fmt: skip
        scaled, mean, std = standardise(*per_split)
        scaled = dict(zip(SPLITS, scaled))
        if fitted is not None:
            fitted["regions"] = {"columns": [f"{m}:{c}" for m in spec.images for c in table.columns], "mean": mean.tolist(), "std": std.tolist()}
        if datasets["train"].confounds is not None:  # deconfound, as the model's other features are
            scaled = residualised(datasets["train"].confounds, scaled, {s: datasets[s].confounds for s in SPLITS})
        for split in SPLITS:
            parts[split].append(scaled[split])
    for split in SPLITS:  # connectivity, MIND and metadata arrive scaled (and deconfounded) already
        parts[split] += list(datasets[split].vectors.values())
    return {split: np.hstack(parts[split]).astype(np.float64) for split in SPLITS}


def fit(spec, datasets, X: dict, n_classes: int):
    """Fit on the training split; returns (description, outputs, (weight, bias)) where outputs
    are on the deep model's scale (standardised values, a logit, or log-probabilities per
    class), outputs[split] = X @ weight.T + bias (up to a constant per subject for classes), and
    outputs["cross_fitted"] are the training subjects' outputs each from a fit that left it out
    (inner folds, with the penalty chosen): what the network's training starts from, as its
    residuals there are honest where the full fit interpolates the training subjects."""
    y = datasets["train"].targets
    if spec.target_type == "continuous":
        model = RidgeCV(alphas=ALPHAS).fit(X["train"], y)
        described = {"method": "ridge", "alpha": float(model.alpha_)}
        refit, inner = Ridge(alpha=model.alpha_), KFold(min(FOLDS, len(y)))
        weight, bias = model.coef_[None, :], np.atleast_1d(model.intercept_)
    else:
        y = y.astype(int)
        folds = min(FOLDS, np.bincount(y)[np.unique(y)].min())
        if folds >= 2:
            model = LogisticRegressionCV(Cs=CS, l1_ratios=(0.0,), cv=StratifiedKFold(folds), class_weight="balanced",
                                         scoring="neg_log_loss", max_iter=5000, use_legacy_attributes=False).fit(X["train"], y)  # fmt: skip
            described = {"method": "logistic", "C": float(np.ravel(model.C_)[0])}
        else:  # a class with one training subject cannot be cross-validated
            model = LogisticRegression(class_weight="balanced", max_iter=5000).fit(X["train"], y)
            described = {"method": "logistic", "C": 1.0}
        refit = LogisticRegression(C=described["C"], class_weight="balanced", max_iter=5000)
        inner = StratifiedKFold(folds) if folds >= 2 else None
        if spec.target_type == "binary":  # the log odds of class 1
            weight, bias = model.coef_, model.intercept_
        else:  # a class absent from training keeps a probability of about 1e-12
            weight, bias = np.zeros((n_classes, X["train"].shape[1])), np.full(n_classes, np.log(1e-12))
            weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    outputs = {split: _outputs(spec, _rowwise(model.predict, X[split])[:, None] if spec.target_type == "continuous"
                               else _probabilities(_rowwise(model.predict_proba, X[split]), model.classes_, n_classes)) for split in SPLITS}  # fmt: skip
    if inner is None:
        outputs["cross_fitted"] = outputs["train"]
    elif spec.target_type == "continuous":
        outputs["cross_fitted"] = cross_val_predict(refit, X["train"], y, cv=inner)[:, None]
    else:
        with warnings.catch_warnings():  # an inner fold may lack a rare class: its probability is 0 there
            warnings.simplefilter("ignore", RuntimeWarning)
            probabilities = cross_val_predict(refit, X["train"], y, cv=inner, method="predict_proba")
        outputs["cross_fitted"] = _outputs(spec, _probabilities(probabilities, np.unique(y), n_classes))
    described["n_features"] = int(X["train"].shape[1])
    described["estimator"] = {"coef": model.coef_.tolist(), "intercept": np.ravel(model.intercept_).tolist(),
                              **({"classes": model.classes_.tolist()} if spec.target_type != "continuous" else {})}  # fmt: skip
    return described, outputs, (weight, bias)


def outputs_of(spec, estimator: dict, X, n_classes: int):
    """The full fit's outputs for features X (as `fit` gives them for a split), from its
    recorded coefficients (`estimator`): scikit-learn's own prediction, the same computation."""
    if spec.target_type == "continuous":
        model = Ridge()
        model.coef_, model.intercept_ = np.array(estimator["coef"]), estimator["intercept"][0]
        model.n_features_in_ = model.coef_.shape[-1]
        return _rowwise(model.predict, X)[:, None]
    model = LogisticRegression()
    model.coef_, model.intercept_, model.classes_ = (np.array(estimator[k]) for k in ("coef", "intercept", "classes"))
    model.n_features_in_ = model.coef_.shape[1]
    return _outputs(spec, _probabilities(_rowwise(model.predict_proba, X), model.classes_, n_classes))


def _rowwise(predict, X):
    """`predict` one subject at a time: the last bits of a matrix product depend on how many rows
    it has (BLAS blocks them), and a bundle must predict each subject as its training job did."""
    return np.concatenate([predict(X[i : i + 1]) for i in range(len(X))]) if len(X) else predict(X)


def _probabilities(present, classes, n_classes):
    """Probabilities over every class from those of the classes a model knows (1e-12 elsewhere)."""
    probabilities = np.full((len(present), n_classes), 1e-12)
    probabilities[:, classes] = np.maximum(present, 1e-12)
    return probabilities


def _outputs(spec, values):
    """Regression outputs as they are; class probabilities as a logit (binary) or log-probabilities."""
    if spec.target_type == "continuous":
        return values
    logp = np.log(values)
    return logp[:, 1:] - logp[:, :1] if spec.target_type == "binary" else logp
