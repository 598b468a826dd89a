"""Confound regression (confounds.deconfound): least squares fitted on training subjects only,
equal to scikit-learn's; deconfounded models learn what the confounds do not explain."""

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from legibility import data
from legibility.confounds import Residualiser, VoxelResidualiser
from test_train import VARIABLES, cohort, spec  # noqa: F401  (the training tests' cohort)


def test_residuals_equal_sklearn_fitted_on_the_training_subjects():
    draw = np.random.default_rng(0)
    confounds, features = draw.normal(size=(40, 2)), draw.normal(size=(40, 5))
    features += confounds @ draw.normal(size=(2, 5))
    train, test = slice(0, 30), slice(30, 40)
    reference = LinearRegression().fit(confounds[train], features[train])
    ours = Residualiser().fit(confounds[train], features[train])
    assert np.allclose(ours.transform(confounds[test], features[test]), features[test] - reference.predict(confounds[test]))
    assert np.allclose(ours.transform(confounds[train], features[train]).mean(axis=0), 0)


def test_images_are_residualised_voxel_by_voxel_as_sklearn_would():
    draw = np.random.default_rng(1)
    age = draw.uniform(45, 80, 12)
    images = {f"{i:02d}": draw.normal(size=(2, 4, 4, 4)) + age[i] * draw.normal(size=(1, 4, 4, 4)) for i in range(12)}
    rows = {s: np.array([(a - 60) / 10]) for s, a in zip(images, age)}
    fitted = VoxelResidualiser().fit(rows, images.__getitem__)
    stacked = np.stack([images[s].ravel() for s in images])
    reference = LinearRegression().fit(np.stack(list(rows.values())), stacked)
    assert np.allclose(fitted.prediction(rows["03"]).ravel(), reference.predict(rows["03"][None])[0], atol=1e-5)


def test_a_deconfounded_models_target_and_features_keep_nothing_the_confounds_explain(cohort):  # noqa: F811
    """The cohort's images and region means carry age, and nothing else of the target: a model of
    age on residualised features and target (confounds: age itself, say) learns nothing; the
    residualisation is fitted on the training subjects, and the test subjects' features keep
    no age."""
    sources, phenotypes, split = cohort
    phenotypes.values["proxy"] = phenotypes.values["age"] * 2 + 1  # a confound, exactly linear in the target
    variables = {**VARIABLES, "proxy": {"type": "continuous", "block": "psychology"}}
    plain = spec("age", ("t1", "flair"))
    deconfounded = dataclasses.replace(plain, confounds=("proxy",), deconfound=True)
    target = data.deconfounded(deconfounded, split, phenotypes, variables)
    assert np.allclose(target.values["age"], 0, atol=1e-6)  # all of age is explained
    assert data.deconfounded(plain, split, phenotypes, variables) is phenotypes
    datasets, _ = data.build(deconfounded, split, target, variables, sources)
    raw, _ = data.build(plain, split, phenotypes, variables, sources)
    from legibility import baseline

    def image_means(sets):  # every subject's mean image intensity (originals), all splits
        return np.concatenate([[d.__getitems__([i])[0]["image"].mean().item() for i in range(len(d))] for d in sets.values()])

    def correlations(features, ages):  # of each feature with age, over every subject
        return np.abs([np.corrcoef(column, ages)[0, 1] for column in np.asarray(features).reshape(len(ages), -1).T])

    ages = np.concatenate([phenotypes.values.loc[d.subjects, "age"] for d in datasets.values()])
    assert correlations(image_means(raw), ages).min() > 0.9 and correlations(image_means(datasets), ages).max() < 0.3
    regions = {name: np.concatenate(list(baseline.features(s, sets, sources["regions"]).values())) for name, s, sets in
               (("raw", plain, raw), ("deconfounded", deconfounded, datasets))}  # fmt: skip
    assert correlations(regions["raw"], ages).max() > 0.9 and correlations(regions["deconfounded"], ages).max() < 0.3
    del phenotypes.values["proxy"]


def test_a_deconfounded_model_trains_and_says_so(cohort, tmp_path):  # noqa: F811
    from legibility import train

    sources, phenotypes, split = cohort
    model = dataclasses.replace(spec("age", ("t1", "serology")), confounds=("sex",), deconfound=True)
    summary = train.run(model, split, phenotypes, VARIABLES, sources, seed=2, out_dir=tmp_path)
    assert summary["confounds"] == ["sex"] and summary["deconfound"] and summary["variables_read"] == ["bmi"]
    assert np.isfinite(summary["test"]["r2"]) and np.isfinite(summary["baseline"]["test"]["r2"])


def test_a_confounds_only_model_reads_its_confounds(cohort, tmp_path):  # noqa: F811
    from legibility import train

    sources, phenotypes, split = cohort
    model = dataclasses.replace(spec("sex", ("confounds",), "binary"), confounds=("age", "bmi"))
    summary = train.run(model, split, phenotypes, VARIABLES, sources, seed=2, out_dir=tmp_path)
    assert summary["variables_read"] == ["age", "bmi"] and summary["fitted"]["metadata"]["columns"] == ["age", "bmi"]
    assert not summary["deconfound"] and summary["baseline"]["n_features"] == 2
