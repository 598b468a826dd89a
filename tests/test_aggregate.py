"""The performance and legibility tables, and the figures, from every model's folds."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control
from sklearn import metrics as skm

from legibility import aggregate, metrics
from legibility.io import write_tsv

STATISTICS = {"bootstrap": 500, "confidence": 0.95, "permutations": 499, "fdr": 0.05}
LEVELS = {"binary": ["F", "M"], "categorical": ["never", "former", "current"]}


def write_model(folder, model, target, target_type, inputs, truth, prediction, baseline=None, val=(0.5, 0.4), folds=5, degenerate="",
                best_epoch=7):
    """A model's fold folders as the train rule writes them: subjects split over `folds` folds,
    each fold's metrics.json (with validation scores `val` = (model, baseline)) and test rows of
    predictions.tsv. Returns the folders."""
    baseline = prediction if baseline is None else baseline
    headline = metrics.headline(target_type)
    parts = np.array_split(np.arange(len(truth)), folds)
    folders = []
    for k, rows in enumerate(parts, 1):
        name = f"fold-{k}" if folds > 1 else "holdout"
        path = folder / model / name
        path.mkdir(parents=True)
        table = pd.DataFrame({"subject": [f"{i:03d}" for i in rows], "fold": name, "split": "test"})
        fold_metrics = {}
        for prefix, values in (("", prediction[rows]), ("baseline_", baseline[rows])):
            if target_type == "continuous":
                table[f"{prefix}prediction"] = values
                fold_metrics[prefix] = metrics.regression(truth[rows], values)
            else:
                probabilities = np.eye(len(LEVELS[target_type]))[values]
                table[f"{prefix}prediction"] = np.array(LEVELS[target_type])[values]
                for i, level in enumerate(LEVELS[target_type]):
                    table[f"{prefix}p_{level}"] = probabilities[:, i]
                fold_metrics[prefix] = metrics.classification(truth[rows], probabilities, len(LEVELS[target_type]))
        table.insert(3, "true", truth[rows] if target_type == "continuous" else np.array(LEVELS[target_type])[truth[rows]])
        write_tsv(path / "predictions.tsv", table)
        (path / "metrics.json").write_text(json.dumps({
            "model": model, "fold": name, "target": target, "target_type": target_type, "inputs": inputs,
            "resolution": 64 if "t1" in inputs else None, "kind": "fusion", "n_train": 10, "n_val": 3, "n_test": len(rows),
            "n_parameters": 5, "epochs": 20, "best_epoch": best_epoch, "wall_seconds": 1.0, "device": "cpu", "degenerate": degenerate,
            "val": {headline: val[0]}, "test": fold_metrics[""],
            "baseline": {"method": "ridge", "val": {headline: val[1]}, "test": fold_metrics["baseline_"]},
        }))  # fmt: skip
        folders.append(path)
    return folders


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("grid")
    draw = np.random.default_rng(0)
    age = draw.normal(60, 8, 80)
    sex = draw.integers(0, 2, 80)
    smoking = draw.integers(0, 3, 80)
    folders = {
        "age__t1__64": write_model(tmp_path, "age__t1__64", "age", "continuous", ["t1"], age, age + draw.normal(0, 4, 80),
                                   baseline=age + draw.normal(0, 6, 80), val=(0.7, 0.5)),
        "age__connectivity": write_model(tmp_path, "age__connectivity", "age", "continuous", ["connectivity"], age,
                                         draw.normal(60, 8, 80), val=(0.9, -0.1)),  # best on validation, not on test
        "sex__t1__64": write_model(tmp_path, "sex__t1__64", "sex", "binary", ["t1"], sex, np.where(draw.random(80) < 0.9, sex, 1 - sex)),
        "smoking__constitutional": write_model(tmp_path, "smoking__constitutional", "smoking", "categorical", ["constitutional"],
                                               smoking, draw.integers(0, 3, 80), degenerate="predicts 'never' for every test subject"),
    }  # fmt: skip
    loaded = aggregate.load(folders)
    table = aggregate.performance_table(loaded, STATISTICS, seed=1)
    return loaded, table, aggregate.legibility_table(table, loaded, STATISTICS, seed=1), (age, sex, smoking)


def test_one_row_per_model_with_input_flags(grid):
    _, table, _, _ = grid
    assert list(table["model"]) == ["age__t1__64", "age__connectivity", "sex__t1__64", "smoking__constitutional"]
    assert table.loc[0, "t1"] == "yes" and table.loc[0, "connectivity"] == "no"
    assert table.loc[1, "input_set"] == "connectivity" and table["resolution"].isna().tolist() == [False, True, False, True]
    assert list(table.columns[:4]) == ["model", "target", "target_type", "input_set"]
    assert (table["folds"] == 5).all() and (table["n_test"] == 80).all()  # every subject, out of fold
    assert table.loc[3, "degenerate"].startswith("fold-1: predicts 'never'")


def test_pooled_out_of_fold_metrics_equal_sklearn_on_all_subjects(grid):
    loaded, table, _, (age, sex, _) = grid
    predictions = loaded["age__t1__64"]["predictions"]
    assert table.loc[0, "score"] == pytest.approx(skm.r2_score(age, predictions["prediction"]))
    assert table.loc[0, "baseline_score"] == pytest.approx(skm.r2_score(age, predictions["baseline_prediction"]))
    per_fold = [skm.r2_score(age[rows], predictions["prediction"].to_numpy()[rows]) for rows in np.array_split(np.arange(80), 5)]
    assert table.loc[0, "score_fold_mean"] == pytest.approx(np.mean(per_fold))
    assert table.loc[0, "score_fold_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    predicted = (loaded["sex__t1__64"]["predictions"]["prediction"] == "M").astype(int)
    assert table.loc[2, "score"] == pytest.approx(skm.balanced_accuracy_score(sex, predicted))
    assert table.loc[2, "val_score"] == 0.5 and table.loc[2, "baseline_val_score"] == 0.4


def test_intervals_p_values_and_one_fdr_family(grid):
    _, table, _, _ = grid
    for prefix, score in (("", "score"), ("baseline_", "baseline_score")):
        assert (table[f"{prefix}ci_low"] <= table[score]).all() and (table[score] <= table[f"{prefix}ci_high"]).all()
    assert table.loc[0, "mae_ci_low"] < table.loc[0, "mae"] < table.loc[0, "mae_ci_high"]
    assert table.loc[0, "p_value"] == pytest.approx(1 / 500) and table.loc[2, "p_value"] == pytest.approx(1 / 500)
    family = false_discovery_control(np.concatenate([table["p_value"], table["baseline_p_value"]]), method="bh")
    assert np.allclose(np.concatenate([table["q_value"], table["baseline_q_value"]]), family)
    assert table["legible"].tolist() == ["yes", "no", "yes", "no"]
    assert table.loc[3, "chance"] == pytest.approx(1 / 3)  # three classes present


def test_a_network_below_its_baseline_is_marked(tmp_path):
    draw = np.random.default_rng(2)
    age = draw.normal(60, 8, 60)
    folders = write_model(tmp_path, "age__t1__64", "age", "continuous", ["t1"], age, age + draw.normal(0, 8, 60),
                          baseline=age + draw.normal(0, 3, 60), folds=1)  # fmt: skip
    row = aggregate.performance_table(aggregate.load({"age__t1__64": folders}), STATISTICS, seed=1).iloc[0]
    assert row.baseline_score - row.score > 0.05 and "below its linear baseline on unseen subjects" in row.degenerate


@pytest.mark.parametrize("best_epoch, says", [(0, "linear start"), (1, "epoch 1 of 20"), (7, "trained")])
def test_which_weights_were_kept_is_said(tmp_path, best_epoch, says):
    age = np.random.default_rng(3).normal(60, 8, 30)
    folders = write_model(tmp_path, "age__t1__64", "age", "continuous", ["t1"], age, age, folds=1, best_epoch=best_epoch)
    row = aggregate.performance_table(aggregate.load({"age__t1__64": folders}), STATISTICS, seed=1).iloc[0]
    assert row.kept.startswith(says) and row.best_epoch == str(best_epoch)


def test_chance_counts_the_classes_present():
    assert aggregate.chance("categorical", ["a", "b", "a"]) == 0.5  # balanced accuracy averages these two only
    assert aggregate.chance("continuous", [1.0, 2.0]) == 0.0


def test_one_class_among_the_scored_subjects_leaves_the_cell_blank(grid):
    """A tiny test set can hold one class of a binary target: chance is then 1, and there is no
    skill to draw (the run once failed there, dividing by zero)."""
    _, table, _, _ = grid
    table = table.copy()
    sex = table.index[table.target == "sex"][0]
    table.loc[sex, "chance"] = 1.0
    assert np.isnan(metrics.skill(0.7, 1.0)) and metrics.skill(0.75, 0.5) == 0.5
    columns = metrics.skill(pd.Series([0.75, 0.7, 0.4]), pd.Series([0.5, 1.0, 0.0]))  # as the analyses call it
    assert np.allclose(columns, [0.5, np.nan, 0.4], equal_nan=True)
    image = aggregate.grid_figure(table).axes[0].images[0].get_array()
    assert np.ma.is_masked(image[list(dict.fromkeys(table.target)).index("sex"), 0])


def test_a_score_that_is_not_finite_is_no_evidence():
    constant = np.full(20, 3.0)  # R² of a constant truth is undefined
    assert metrics.permutation_p("continuous", constant, np.arange(20.0), 99, seed=0) == 1.0


def test_target_verdicts_simes_then_benjamini_hochberg_across_targets(grid):
    _, table, legibility, _ = grid
    verdicts = legibility.set_index("target")
    for target, models in table.groupby("target"):
        p = np.sort(np.concatenate([models["p_value"], models["baseline_p_value"]]))
        assert verdicts.loc[target, "p_value"] == pytest.approx(min(len(p) * p / np.arange(1, len(p) + 1)))
    assert np.allclose(legibility["q_value"], false_discovery_control(legibility["p_value"], method="bh"))
    assert verdicts.loc["age", "verdict"] == "legible" and verdicts.loc["age", "legible_from"] == "t1"
    assert verdicts.loc["smoking", "verdict"] == "not legible" and verdicts.loc["smoking", "legible_from"] == ""


def test_the_best_input_set_is_chosen_on_validation_and_scored_on_test(grid):
    loaded, table, legibility, (age, _, _) = grid
    verdicts = legibility.set_index("target")
    # connectivity scored best on validation in every fold, though it predicts nothing: the
    # choice is honest, and so is its score (what the choice gives on test subjects)
    assert verdicts.loc["age", "best_input_set"] == "connectivity"
    assert verdicts.loc["age", "chosen"] == "connectivity (model) in 5 of 5"
    assert verdicts.loc["age", "score"] == pytest.approx(table.loc[1, "score"])
    assert verdicts.loc["age", "score"] < table.loc[0, "score"]


def test_figures(grid):
    _, table, legibility, _ = grid
    figure = aggregate.grid_figure(table, dict(zip(legibility["target"], legibility["best_input_set"])))
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (3, 3)  # targets x input sets
    columns = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert columns == ["t1", "connectivity", "constitutional"]  # canonical input order
    assert np.ma.is_masked(image[1, 1])  # sex has no connectivity model
    per_target = aggregate.target_figure(table, "age")
    assert [t.get_text() for t in per_target.axes[0].get_yticklabels()] == ["t1", "connectivity"]


def test_models_of_one_input_set_get_cells_of_their_own():
    assert aggregate.cell(["t1"], 64, "fusion") == "t1" and aggregate.cell(["connectivity"], None, "fusion") == "connectivity"
    assert aggregate.cell(["t1"], 64, "sfcn") == "t1 (sfcn)" and aggregate.cell(["t1", "flair"], 128, "fusion") == "t1+flair (128³)"


def test_increments_over_the_metadata_and_confounds_comparators(tmp_path):
    """A cell of T1 and metadata against its metadata alone and the confounds alone: its
    increments are the score differences on the same subjects, with paired intervals and p in
    one family; T1 alone, no better than the confounds, is marked so."""
    draw = np.random.default_rng(8)
    bp = draw.normal(130, 15, 90)
    noise = {"bp__t1+constitutional__64": 5, "bp__constitutional": 10, "bp__confounds": 11, "bp__t1__64": 14}
    inputs = {"bp__t1+constitutional__64": ["t1", "constitutional"], "bp__constitutional": ["constitutional"], "bp__confounds": ["confounds"],
              "bp__t1__64": ["t1"]}  # fmt: skip
    folders = {m: write_model(tmp_path, m, "bp", "continuous", inputs[m], bp, bp + draw.normal(0, noise[m], 90)) for m in noise}
    loaded = aggregate.load(folders)
    table = aggregate.performance_table(loaded, STATISTICS, seed=1).set_index("model")
    mixed = table.loc["bp__t1+constitutional__64"]
    assert mixed.comparator == "bp__constitutional" and mixed.confounds_comparator == "bp__confounds"
    assert mixed.delta_score == pytest.approx(mixed.score - table.loc["bp__constitutional", "score"])
    assert mixed.confounds_delta_score == pytest.approx(mixed.score - table.loc["bp__confounds", "score"])
    assert mixed.delta_ci_low < mixed.delta_score < mixed.delta_ci_high and mixed.delta_ci_low > 0
    assert mixed.adds_to_metadata == "yes" and mixed.beats_confounds == "yes"
    assert table.loc["bp__t1__64", "beats_confounds"] == "no" and table.loc["bp__t1__64", "confounds_delta_score"] < 0
    assert pd.isna(table.loc["bp__t1__64", "comparator"]) and pd.isna(table.loc["bp__t1__64", "adds_to_metadata"])
    assert pd.isna(table.loc["bp__confounds", "confounds_comparator"])  # not its own comparator
    p = table[["delta_p_value", "confounds_delta_p_value"]].to_numpy().ravel()
    q = table[["delta_q_value", "confounds_delta_q_value"]].to_numpy().ravel()
    assert np.allclose(q[np.isfinite(p)], false_discovery_control(p[np.isfinite(p)], method="bh"))
    verdict = aggregate.legibility_table(table.reset_index(), loaded, STATISTICS, seed=1).iloc[0]
    assert verdict.imaging_adds == "yes" and verdict.imaging_adds_from == "t1+constitutional"
    assert verdict.beyond_confounds_from == "t1+constitutional"
    figure = aggregate.grid_figure(table.reset_index())
    columns = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    marked = {columns[round(t.get_position()[0] - 0.45)] for t in figure.axes[0].texts if t.get_text() == "c"}
    assert marked == {"t1", "constitutional"}  # neither beats the confounds by more than chance
