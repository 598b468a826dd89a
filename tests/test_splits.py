"""Splits: stratified, deterministic, and shared by every model of a target."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from legibility import shards, splits

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def cohort(n=300, seed=0):
    draw = np.random.default_rng(seed)
    return pd.DataFrame(
        {"sex": draw.integers(0, 2, n).astype(float), "age": draw.uniform(45, 80, n)},
        index=pd.Index([f"{i:04d}" for i in range(n)], name="subject"),
    )


VARIABLES = {"sex": {"type": "binary"}, "age": {"type": "continuous"}}
SETTINGS = {**FRACTIONS, "stratify_by": ["sex", "age"]}


def assign(table, seed, n_blocks=1):
    return splits.assign(table, shards.members(table.index, n_blocks), SETTINGS, VARIABLES, seed).set_index("subject")


def deviation(assigned, keys):
    """Largest difference, over strata and splits, between a split's count and its share of the stratum."""
    table = pd.crosstab(keys, assigned)
    return max(abs(table[s] - table.sum(axis=1) * FRACTIONS[s]).max() for s in FRACTIONS)


def test_assignment_is_deterministic_and_proportional():
    table = cohort()
    first = assign(table, seed=1)
    assert first.equals(assign(table, seed=1))
    assert not first.equals(assign(table, seed=2))
    counts = first.split.value_counts()
    assert abs(counts["train"] - 180) <= 2 and abs(counts["val"] - 60) <= 2 and abs(counts["test"] - 60) <= 2
    assert set(first.stratum) == {f"|{s}|{a}" for s in ("0.0", "1.0") for a in ("low", "mid", "high")}


def test_stratification_is_as_tight_as_scikit_learns():
    """Every stratum is split to within one subject of each share, as by sklearn's two-stage
    stratified split (the reference)."""
    table = cohort()
    for seed in range(5):
        ours = assign(table, seed=seed)
        keys = ours.stratum
        rest, test = train_test_split(table.index, test_size=0.2, stratify=keys, random_state=seed)
        train, val = train_test_split(rest, test_size=0.25, stratify=keys[rest], random_state=seed)
        sklearn = pd.Series({**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")})
        assert deviation(ours.split, keys) < 1 and deviation(sklearn[keys.index], keys) < 1.5


def test_a_new_subject_moves_no_one_outside_its_shard():
    """Blocks are the shards: adding subjects re-draws only their own shards' splits."""
    table = cohort(600)
    before = assign(table, seed=4, n_blocks=8)
    new = pd.DataFrame({"sex": [1.0, 0.0], "age": [50.0, 77.0]}, index=["new1", "new2"])
    after = assign(pd.concat([table, new]), seed=4, n_blocks=8)
    touched = {shards.shard_of(s, 8) for s in new.index}
    others = [s for s in table.index if shards.shard_of(s, 8) not in touched]
    assert len(others) > 400
    assert after.loc[others].equals(before.loc[others])
    counts = after.split.value_counts()  # per-shard strata still give the cohort its shares
    assert abs(counts["test"] / len(after) - FRACTIONS["test"]) < 0.02


def test_tiny_strata_are_split_where_scikit_learn_refuses():
    table = cohort(40)
    keys = pd.Series(["common"] * 39 + ["rare"], index=table.index)
    with pytest.raises(ValueError):
        train_test_split(table.index, test_size=0.2, stratify=keys)
    assigned = splits.assign(table.assign(stratum=keys), {0: list(table.index)}, {**FRACTIONS, "stratify_by": ["stratum"]},
                             {"stratum": {"type": "categorical"}}, seed=0)  # fmt: skip
    assert assigned.split.notna().all() and len(assigned) == 40


def test_tiny_shards_keep_the_cohorts_shares():
    """Shards of one or two subjects: rounding must not send them all to one split."""
    table = cohort(1200)
    for n_blocks in (600, 1200):
        counts = assign(table, seed=5, n_blocks=n_blocks).split.value_counts(normalize=True)
        assert all(abs(counts[s] - FRACTIONS[s]) < 0.04 for s in FRACTIONS), counts
    unknown = assign(table.iloc[:2].assign(age=np.nan), seed=0)  # a shard where no one has an age
    assert set(unknown.stratum) <= {"|0.0|missing", "|1.0|missing"}


def test_missing_stratification_values_form_their_own_stratum():
    table = cohort(30)
    table.loc[table.index[:3], "age"] = np.nan
    keys = splits.strata(table, ["age"], VARIABLES)
    assert (keys == "|missing").sum() == 3
    assert (keys.value_counts().drop("|missing") == 9).all()  # tertiles of the 27 with an age


def test_target_split_excludes_with_reasons():
    assigned = pd.Series({"01": "train", "02": "test", "03": "val", "04": "train", "05": "test"})
    values = pd.Series({"01": 1.0, "02": np.nan, "03": 0.0, "04": 1.0})
    qc = pd.DataFrame({"subject": ["01", "03", "03", "04"], "modality": ["t1", "t1", "bold", "t1"],
                       "status": ["pass", "pass", "fail", "fail"]})  # fmt: skip
    result = splits.target_split(assigned, "sex", values, qc, ["t1", "bold"]).set_index("subject")
    assert result.loc["01", "split"] == "train"
    assert result.loc["02", "reason"] == "sex is missing"
    assert result.loc["03", "reason"] == "failed QC: bold"
    assert result.loc["04", "reason"] == "failed QC: t1"
    assert result.loc["05", "reason"] == "no row in the phenotype table"
    assert (result.loc[["02", "03", "04", "05"], "split"] == "excluded").all()
    # a target whose models read no image ignores image QC
    only_metadata = splits.target_split(assigned, "sex", values, qc, []).set_index("subject")
    assert only_metadata.loc["04", "split"] == "train"
