"""The brain-age gap of a continuous age model, with the standard linear bias correction.

A model's predictions regress to the cohort mean, so its raw gap (predicted age less age) falls
with age by construction. The correction (Smith et al. 2019, NeuroImage 200:528; Beheshti et
al. 2019, NeuroImage: Clinical 24:102063) fits the gap's linear trend on age,

    gap = alpha + beta * age,        by least squares on the validation subjects only,

and subtracts it from every subject's gap: corrected_gap = gap - (alpha + beta * age). The fit
never sees a test subject; in k-fold each fold's correction comes from its own validation
subjects and corrects its own test subjects, so every test subject is corrected out of fold.
"""

import numpy as np
import pandas as pd
from scipy import stats


def fit_correction(age, predicted) -> dict:
    """alpha and beta of the gap's least-squares line on age."""
    age, gap = np.asarray(age, float), np.asarray(predicted, float) - np.asarray(age, float)
    if len(age) < 3 or np.ptp(age) == 0:
        raise ValueError(f"the brain-age correction needs validation subjects of at least two ages (has {len(age)})")
    fit = stats.linregress(age, gap)
    return {"alpha": float(fit.intercept), "beta": float(fit.slope), "n": int(len(age))}


def corrected_gap(age, predicted, correction: dict):
    age = np.asarray(age, float)
    return np.asarray(predicted, float) - age - (correction["alpha"] + correction["beta"] * age)


def table(folds: dict):
    """From {fold: predictions.tsv frame} of one model: (each val and test subject's age,
    predicted age, gap and corrected gap, and the corrections per fold with the correlation
    of each gap with age per split)."""
    rows, corrections = [], {}
    for fold, predictions in folds.items():
        val = predictions[predictions["split"] == "val"]
        try:
            correction = fit_correction(val["true"], val["prediction"])
        except ValueError as error:  # too few validation subjects: the gaps stay uncorrected, saying why
            correction = {"alpha": float("nan"), "beta": float("nan"), "n": int(len(val)), "reason": str(error)}
        frame = predictions[predictions["split"].isin(["val", "test"])]
        rows.append(pd.DataFrame({
            "subject": frame["subject"].astype(str), "fold": fold, "split": frame["split"], "age": frame["true"],
            "predicted_age": frame["prediction"], "gap": frame["prediction"] - frame["true"],
            "corrected_gap": corrected_gap(frame["true"], frame["prediction"], correction),
        }))  # fmt: skip
        corrections[fold] = correction
    out = pd.concat(rows, ignore_index=True)
    correlations = {
        split: {gap: float(np.corrcoef(part["age"], part[gap])[0, 1]) if len(part) > 2 else float("nan") for gap in ("gap", "corrected_gap")}
        for split, part in out.groupby("split")
    }  # fmt: skip
    return out, {"formula": "corrected_gap = (predicted_age - age) - (alpha + beta * age); alpha, beta: least squares on validation subjects",
                 "corrections": corrections, "correlation_with_age": correlations}  # fmt: skip
