import numpy as np
import pandas as pd
from scipy import stats

from legibility import brain_age


def predictions(seed, n_val=60, n_test=90):
    """An age model that regresses to the mean: it keeps 60% of each subject's distance from 62."""
    draw = np.random.default_rng(seed)
    age = draw.uniform(45, 80, n_val + n_test)
    predicted = 62 + 0.6 * (age - 62) + draw.normal(0, 3, age.size)
    split = ["val"] * n_val + ["test"] * n_test
    return pd.DataFrame({"subject": [f"{i:03d}" for i in range(age.size)], "split": split, "true": age, "prediction": predicted})


def test_the_corrected_gap_is_uncorrelated_with_age_where_fitted_and_far_less_on_test():
    table, summary = brain_age.table({"holdout": predictions(0)})
    r = summary["correlation_with_age"]
    assert r["val"]["gap"] < -0.5 and r["test"]["gap"] < -0.5  # regression to the mean
    assert abs(r["val"]["corrected_gap"]) < 0.05
    assert abs(r["test"]["corrected_gap"]) < abs(r["test"]["gap"]) / 4
    val = table[table.split == "val"]
    fit = stats.linregress(val.age, val.gap)  # the published formula, by hand
    correction = summary["corrections"]["holdout"]
    assert np.isclose(correction["alpha"], fit.intercept) and np.isclose(correction["beta"], fit.slope)
    assert np.allclose(table.corrected_gap, table.gap - (fit.intercept + fit.slope * table.age))


def test_each_fold_is_corrected_by_its_own_validation_subjects_only():
    folds = {"fold-1": predictions(1), "fold-2": predictions(2)}
    before, summary = brain_age.table(folds)
    changed = {**folds, "fold-2": folds["fold-2"].assign(prediction=lambda t: t.prediction.where(t.split == "val", t.prediction + 5))}
    after, _ = brain_age.table(changed)  # fold 2's test predictions moved: its correction did not
    assert summary["corrections"] == brain_age.table(changed)[1]["corrections"]
    moved = after.fold.eq("fold-2") & after.split.eq("test")
    assert np.allclose(after.corrected_gap[moved], before.corrected_gap[moved] + 5)
    assert np.allclose(after.corrected_gap[~moved], before.corrected_gap[~moved])


def test_a_fold_with_too_few_validation_subjects_stays_uncorrected_saying_why():
    """A small cohort's fold with one validation subject (as a 12-subject holdout can give)
    does not stop the run: its gaps are kept, its corrected gaps are missing, and why is said."""
    folds = {"fold-1": predictions(1), "fold-2": predictions(2, n_val=1)}
    table, summary = brain_age.table(folds)
    small = table.fold == "fold-2"
    assert table.corrected_gap[small].isna().all() and table.gap[small].notna().all() and table.corrected_gap[~small].notna().all()
    assert "at least two ages" in summary["corrections"]["fold-2"]["reason"] and "reason" not in summary["corrections"]["fold-1"]
