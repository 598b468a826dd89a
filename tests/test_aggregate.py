"""The performance and legibility tables, and the figures."""

import json

import numpy as np
import pandas as pd
import pytest

from legibility import aggregate, metrics
from legibility.io import write_tsv

STATISTICS = {"bootstrap": 500, "confidence": 0.95, "permutations": 499, "fdr": 0.05}


def write_model(folder, model, target, target_type, inputs, truth, prediction, n_classes=2):
    """A model folder as the train rule writes it (metrics.json and predictions.tsv)."""
    headline = metrics.headline(target_type)
    if target_type == "continuous":
        test = metrics.regression(truth, prediction)
    else:
        test = metrics.classification(truth, np.eye(n_classes)[prediction], n_classes)
    path = folder / model
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "model": model, "target": target, "target_type": target_type, "inputs": inputs,
        "resolution": 64 if "t1" in inputs else None, "kind": "fusion", "n_train": 10, "n_val": 3, "n_test": len(truth),
        "n_parameters": 5, "epochs": 2, "best_epoch": 1, "wall_seconds": 1.0, "device": "cpu",
        "chance": metrics.chance(target_type, n_classes), "test": test,
        "baseline": {"method": "ridge", "test": {headline: test[headline] / 2}},
    }))  # fmt: skip
    write_tsv(path / "predictions.tsv", pd.DataFrame({"subject": [f"{i:03d}" for i in range(len(truth))], "split": "test",
                                                      "true": truth, "prediction": prediction}))  # fmt: skip
    return path


@pytest.fixture
def table(tmp_path):
    draw = np.random.default_rng(0)
    age = draw.normal(60, 8, 80)
    sex = draw.integers(0, 2, 80)
    smoking = draw.integers(0, 3, 80)
    folders = [
        write_model(tmp_path, "age__t1__64", "age", "continuous", ["t1"], age, age + draw.normal(0, 4, 80)),
        write_model(tmp_path, "age__connectivity", "age", "continuous", ["connectivity"], age, draw.normal(60, 8, 80)),
        write_model(tmp_path, "sex__t1__64", "sex", "binary", ["t1"], sex, np.where(draw.random(80) < 0.9, sex, 1 - sex)),
        write_model(tmp_path, "smoking__constitutional", "smoking", "categorical", ["constitutional"], smoking,
                    draw.integers(0, 3, 80), n_classes=3),
    ]  # fmt: skip
    return aggregate.performance_table(folders, STATISTICS, seed=1)


def test_one_row_per_model_with_input_flags(table):
    assert list(table["model"]) == ["age__t1__64", "age__connectivity", "sex__t1__64", "smoking__constitutional"]
    assert table.loc[0, "t1"] == "yes" and table.loc[0, "connectivity"] == "no"
    assert table.loc[1, "input_set"] == "connectivity" and table["resolution"].isna().tolist() == [False, True, False, True]
    assert table.loc[3, "chance"] == pytest.approx(1 / 3)  # three classes
    assert table.loc[0, "baseline_score"] == pytest.approx(table.loc[0, "score"] / 2)  # the linear baseline beside the model
    assert list(table.columns[:4]) == ["model", "target", "target_type", "input_set"]


def test_intervals_p_values_and_verdicts(table):
    assert (table["ci_low"] <= table["score"]).all() and (table["score"] <= table["ci_high"]).all()
    assert table.loc[0, "mae_ci_low"] < table.loc[0, "mae"] < table.loc[0, "mae_ci_high"]
    assert table.loc[0, "p_value"] == pytest.approx(1 / 500) and table.loc[2, "p_value"] == pytest.approx(1 / 500)
    assert (table["q_value"] >= table["p_value"]).all()  # Benjamini-Hochberg never lowers a p-value
    assert table["legible"].tolist() == ["yes", "no", "yes", "no"]
    verdicts = aggregate.legibility_table(table).set_index("target")
    assert verdicts.loc["age", "best_input_set"] == "t1" and verdicts.loc["age", "verdict"] == "legible"
    assert verdicts.loc["smoking", "verdict"] == "not legible" and verdicts.loc["smoking", "legible_from"] == ""


def test_figures(table):
    figure = aggregate.grid_figure(table)
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (3, 3)  # targets x input sets
    columns = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert columns == ["t1", "connectivity", "constitutional"]  # canonical input order
    assert np.ma.is_masked(image[1, 1])  # sex has no connectivity model
    per_target = aggregate.target_figure(table, "age")
    assert [t.get_text() for t in per_target.axes[0].get_yticklabels()] == ["t1", "connectivity"]
