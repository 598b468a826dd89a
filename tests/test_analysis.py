"""The grid's analyses on synthetic grids whose answer is known: an input's effect comes back
from the mixed-effects model, dependent targets get the strongest edge of the target network,
and a grid too small for an analysis says so."""

import numpy as np
import pandas as pd
import pytest

from legibility import analysis
from legibility.grid import INPUT_ORDER

VARIABLES = {f"t{i}": {"type": "continuous", "block": "constitutional"} for i in range(8)} | {"alone": {"type": "binary", "block": "disease"}}


def synthetic_grid(effect=0.15, seed=0) -> pd.DataFrame:
    """Eight constitutional targets of different difficulty, each with twelve models reading
    random input sets: reading T1 adds `effect` to the score, connectivity 0.05, the rest nothing."""
    draw = np.random.default_rng(seed)
    rows = []
    for target in [t for t in VARIABLES if t != "alone"]:
        intercept = draw.uniform(0.1, 0.5)
        for _ in range(12):
            uses = {i: draw.random() < 0.5 for i in INPUT_ORDER}
            score = intercept + effect * uses["t1"] + 0.05 * uses["connectivity"] + draw.normal(0, 0.02)
            rows.append({"target": target, "score": score, "chance": 0.0, **{i: "yes" if u else "no" for i, u in uses.items()}})
    rows.append({"target": "alone", "score": 0.7, "chance": 0.5, **{i: "yes" if i == "t1" else "no" for i in INPUT_ORDER}})
    return pd.DataFrame(rows)


def test_a_known_input_effect_comes_back_within_its_standard_error():
    """Over twenty synthetic grids, T1's coefficient is positive, within one standard error of
    its true 0.15 about as often as a calibrated standard error allows (68%), never beyond three;
    inputs without an effect are not found."""
    errors = []
    for seed in range(20):
        effects = analysis.domain_effects(synthetic_grid(seed=seed), VARIABLES).set_index(["domain", "term"]).loc["constitutional"]
        assert effects.loc["t1", "coef"] > 0 and effects.loc["t1", "stars"] == "***"
        errors.append(abs(effects.loc["t1", "coef"] - 0.15) / effects.loc["t1", "se"])
        connectivity = effects.loc["connectivity"]
        assert abs(connectivity.coef - 0.05) < 3 * connectivity.se
        assert (effects.drop(["t1", "connectivity"]).p_value > 0.001).all()  # no effect where there is none
    assert 0.5 <= np.mean(np.array(errors) < 1) <= 0.85 and max(errors) < 3, errors


def test_a_domain_too_small_for_the_model_says_why():
    effects = analysis.domain_effects(synthetic_grid(), VARIABLES)
    for domain, note in (("disease", "random intercept per target needs two"), ("serology", "0 target")):
        row = effects[effects.domain == domain]
        assert len(row) == 1 and row.term.isna().all() and note in row.note.iloc[0]
    assert analysis.domain_effects_figure(effects) is not None


def test_inputs_always_read_together_are_named_not_fitted():
    grid = synthetic_grid()
    grid["flair"] = grid["t1"]  # every model that reads T1 reads FLAIR
    effects = analysis.domain_effects(grid, VARIABLES)
    fitted = effects[effects.domain == "constitutional"]
    assert "flair" not in set(fitted.term) and "flair: not separable from" in fitted.note.iloc[0]


def splits_of(subjects, targets, test_every=5):
    """A holdout split per target: every fifth subject (shifted by target) tested, one in five validation."""
    rows = []
    for k, target in enumerate(targets):
        for i, s in enumerate(subjects):
            part = "test" if (i + k) % test_every == 0 else "val" if (i + k) % test_every == 1 else "train"
            rows.append({"subject": s, "target": target, "part": part})
    return pd.DataFrame(rows)


def test_dependent_targets_get_the_strongest_edge_from_training_subjects_only():
    """Two dependent targets among independent ones: their MI is the strongest, beyond every
    permutation, the others within chance; and only training subjects are read."""
    draw = np.random.default_rng(1)
    subjects = [f"{i:03d}" for i in range(300)]
    a = draw.normal(size=300)
    values = pd.DataFrame({"a": a, "b": a + draw.normal(0, 0.5, 300), "c": draw.normal(size=300), "d": (draw.random(300) < 0.5).astype(float)},
                          index=subjects)  # fmt: skip
    types = {"a": "continuous", "b": "continuous", "c": "continuous", "d": "binary"}
    splits = splits_of(subjects, list(values))
    mi, null, p = analysis.mutual_information(values, types, splits, ["holdout"], None, 3, seed=0, permutations=50)
    pairs = {(x, y): mi.loc[x, y] for i, x in enumerate(mi.index) for y in mi.index[i + 1 :]}
    assert max(pairs, key=pairs.get) == ("a", "b") and pairs[("a", "b")] > 5 * max(v for k, v in pairs.items() if k != ("a", "b"))
    # subjects that train for neither a nor b never enter: changing their values changes nothing
    training = set(splits[(splits.part == "train") & splits.target.isin(["a", "b"])].subject)
    untouched = [s for s in subjects if s not in training]
    shuffled = values.copy()
    shuffled.loc[untouched, ["a", "b"]] = draw.normal(size=(len(untouched), 2))
    assert analysis.mutual_information(shuffled, types, splits, ["holdout"], None, 3, seed=0)[0].loc["a", "b"] == pytest.approx(mi.loc["a", "b"])
    # the dependent pair beats every permutation; independent ones are within chance
    assert p.loc["a", "b"] == pytest.approx(1 / 51) and all(p.loc[x, y] > 0.05 for x, y in pairs if (x, y) != ("a", "b"))
    central = analysis.centrality(analysis.excess(mi, null))
    assert central[["a", "b"]].min() > central[["c", "d"]].max()


def test_the_network_table_and_figure_from_a_grid():
    performance = pd.DataFrame({"target": ["x", "x", "y", "y", "z"], "cell": ["t1", "mind", "t1", "mind", "t1"],
                                "score": [0.9, 0.3, 0.8, 0.35, 0.1], "chance": [0.5, 0.5, 0.0, 0.0, 0.0]})  # fmt: skip
    similarity = analysis.profile_similarity(performance)
    # skills: x 0.8, -0.4; y 0.8, 0.35; z 0.1
    assert similarity.loc["x", "y"] == pytest.approx(np.mean([1 / 1, 1 / (1 + 0.75)]))
    assert similarity.loc["y", "z"] == pytest.approx(1 / (1 + 0.7))
    mi = pd.DataFrame([[0, 0.5, 0.1], [0.5, 0, 0.2], [0.1, 0.2, 0]], index=list("xyz"), columns=list("xyz"))
    null = pd.DataFrame(0.02, index=mi.index, columns=mi.columns)
    p = pd.DataFrame([[1, 0.01, 0.3], [0.01, 1, 0.04], [0.3, 0.04, 1]], index=mi.index, columns=mi.columns)
    best = pd.Series({"x": 0.8, "y": 0.8, "z": 0.1})
    table = analysis.network_table(mi, null, p, similarity, best, share=0.6)
    edges = table[table.kind == "edge"].set_index(["target", "other"])
    assert edges.mi_drawn.to_dict() == {("x", "y"): True, ("x", "z"): False, ("y", "z"): True}  # the strongest 60% of 3
    assert edges.loc[("x", "y"), "mi_p_value"] == 0.01
    assert analysis.network_figure(mi, null, p, similarity, best, 0.6, seed=0) is not None


def test_training_cost_per_input_set():
    from scipy import stats

    runs = pd.DataFrame({"cell": ["t1"] * 4 + ["mind"] * 2, "device": ["cpu"] * 6, "threads": [2] * 4 + [1] * 2,
                         "wall_seconds": [10.0, 12.0, 11.0, 13.0, 3.0, 5.0], "max_rss_mb": [900, 950, 920, 910, 300, 310]})  # fmt: skip
    costs = analysis.cost_table(runs, 0.95).set_index("cell")
    low, high = stats.t.interval(0.95, 3, loc=11.5, scale=stats.sem([10.0, 12.0, 11.0, 13.0]))
    assert costs.loc["t1", ["ci_low", "ci_high"]].tolist() == pytest.approx([low, high])
    assert costs.loc["t1", "device_hours"] == pytest.approx(2 * 46 / 3600) and costs.loc["mind", "jobs"] == 2
    assert analysis.cost_figure(runs, costs.reset_index(), seed=0) is not None
