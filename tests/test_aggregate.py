"""The performance table and grid figure."""

import json

import numpy as np
import pytest

from legibility import aggregate, metrics


def write_metrics(path, model, target, target_type, inputs, score, n_classes=2):
    headline = metrics.headline(target_type)
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "model": model, "target": target, "target_type": target_type, "inputs": inputs,
        "resolution": 64 if "t1" in inputs else None, "kind": "fusion", "n_train": 10, "n_val": 3, "n_test": 4,
        "n_parameters": 5, "epochs": 2, "best_epoch": 1, "wall_seconds": 1.0, "device": "cpu",
        "chance": metrics.chance(target_type, n_classes), "test": {headline: score}, "baseline": {"method": "ridge", "test": {headline: score / 2}},
    }))  # fmt: skip
    return path / "metrics.json"


@pytest.fixture
def table(tmp_path):
    paths = [
        write_metrics(tmp_path / "a", "age__t1__64", "age", "continuous", ["t1"], 0.6),
        write_metrics(tmp_path / "b", "age__connectivity", "age", "continuous", ["connectivity"], 0.2),
        write_metrics(tmp_path / "c", "smoking__constitutional", "smoking", "categorical", ["constitutional"], 1 / 3, 3),
    ]
    return aggregate.performance_table(paths)


def test_one_row_per_model_with_input_flags(table):
    assert list(table["model"]) == ["age__t1__64", "age__connectivity", "smoking__constitutional"]
    assert table.loc[0, "t1"] == "yes" and table.loc[0, "connectivity"] == "no"
    assert table.loc[1, "input_set"] == "connectivity" and table["resolution"].isna().tolist() == [False, True, True]
    assert table.loc[2, "chance"] == pytest.approx(1 / 3)  # three classes
    assert table.loc[0, "baseline_score"] == pytest.approx(0.3)  # the linear baseline beside the model
    assert list(table.columns[:4]) == ["model", "target", "target_type", "input_set"]


def test_grid_figure_marks_chance_as_zero_skill(table):
    figure = aggregate.grid_figure(table)
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (2, 3)  # targets x input sets
    columns = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert columns == ["t1", "connectivity", "constitutional"]  # canonical input order
    assert image[1, 2] == pytest.approx(0)  # smoking at 1/3 balanced accuracy is chance, not below it
    assert image[0, 0] == pytest.approx(0.6) and np.ma.is_masked(image[1, 0])
