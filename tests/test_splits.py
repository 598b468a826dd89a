"""Splits: per target, stratified by the target itself, deterministic, drawn shard by shard, and
shared by every model of the target; k folds that predict every subject once."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, train_test_split

from legibility import shards, splits

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
HOLDOUT = {**FRACTIONS, "scheme": "holdout", "folds": 5, "stratify_by": ["age"]}
KFOLD = {**HOLDOUT, "scheme": "kfold"}


def cohort(n=300, seed=0):
    draw = np.random.default_rng(seed)
    return pd.DataFrame(
        {"sex": draw.integers(0, 2, n).astype(float), "age": draw.uniform(45, 80, n), "rare": (draw.random(n) < 0.1).astype(float)},
        index=pd.Index([f"{i:04d}" for i in range(n)], name="subject"),
    )


VARIABLES = {"sex": {"type": "binary"}, "age": {"type": "continuous"}, "rare": {"type": "binary"}}


def assign(table, seed, n_blocks=1, target="sex", settings=HOLDOUT):
    return splits.assign(table, target, shards.members(table.index, n_blocks), settings, VARIABLES, seed).set_index("subject")


def deviation(assigned, keys, shares):
    """Largest difference, over strata and parts, between a part's count and its share of the stratum."""
    table = pd.crosstab(keys, assigned)
    return max(abs(table[s] - table.sum(axis=1) * share).max() for s, share in shares.items())


def test_assignment_is_deterministic_and_proportional():
    table = cohort()
    first = assign(table, seed=1)
    assert first.equals(assign(table, seed=1))
    assert not first.equals(assign(table, seed=2))
    counts = first.part.value_counts()
    assert abs(counts["train"] - 180) <= 2 and abs(counts["val"] - 60) <= 2 and abs(counts["test"] - 60) <= 2
    # strata: the target's own classes, then the tertiles of stratify_by
    assert set(first.stratum) == {f"|{s}|{a}" for s in ("0.0", "1.0") for a in ("low", "mid", "high")}


def test_stratification_is_as_tight_as_scikit_learns():
    """Every stratum is split to within one subject of each share, as by sklearn's two-stage
    stratified split (the reference), and k-fold parts as by StratifiedKFold."""
    table = cohort()
    for seed in range(5):
        ours = assign(table, seed=seed)
        keys = ours.stratum
        rest, test = train_test_split(table.index, test_size=0.2, stratify=keys, random_state=seed)
        train, val = train_test_split(rest, test_size=0.25, stratify=keys[rest], random_state=seed)
        sklearn = pd.Series({**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")})
        assert deviation(ours.part, keys, FRACTIONS) < 1 and deviation(sklearn[keys.index], keys, FRACTIONS) < 1.5
        folds = assign(table, seed=seed, settings=KFOLD)
        reference = pd.Series("", index=table.index)
        for k, (_, rows) in enumerate(StratifiedKFold(5, shuffle=True, random_state=seed).split(table, folds.stratum), 1):
            reference.iloc[rows] = str(k)
        shares = {str(k): 0.2 for k in range(1, 6)}
        assert deviation(folds.part, folds.stratum, shares) < 1 and deviation(reference, folds.stratum, shares) < 1.5


def test_a_rare_class_is_in_every_part():
    """Stratified by the target's own classes: a 10% class reaches validation and test, and under
    k-fold every fold's training, validation and test subjects."""
    table = cohort(100)
    holdout = assign(table, seed=3, target="rare")
    rare = int(table["rare"].sum())
    for part, share in FRACTIONS.items():  # its share, to within one per stratum (the age tertiles)
        count = (table.loc[holdout.index[holdout.part == part], "rare"] == 1).sum()
        assert count > 0 and abs(count - share * rare) <= 3
    folds = assign(table, seed=3, target="rare", settings=KFOLD).reset_index()
    for fold in splits.folds(KFOLD):
        roles = splits.fold_roles(folds, fold, 5).set_index("subject")["split"]
        assert all((table.loc[roles.index[roles == r], "rare"] == 1).any() for r in ("train", "val", "test")), fold


def test_folds_test_every_subject_once_and_validate_on_the_next():
    table = cohort(100).reset_index()
    folds = splits.assign(table.set_index("subject"), "sex", {0: list(table.subject)}, KFOLD, VARIABLES, seed=0)
    assert splits.folds(KFOLD) == ["fold-1", "fold-2", "fold-3", "fold-4", "fold-5"] and splits.folds(HOLDOUT) == ["holdout"]
    tested = []
    for k, fold in enumerate(splits.folds(KFOLD), 1):
        roles = splits.fold_roles(folds, fold, 5).set_index("subject")["split"]
        assert set(roles.index[roles == "test"]) == set(folds.subject[folds.part == str(k)])
        assert set(roles.index[roles == "val"]) == set(folds.subject[folds.part == str(k % 5 + 1)])
        assert (roles == "train").sum() == len(roles) - (roles != "train").sum() and len(roles) == 100
        tested += list(roles.index[roles == "test"])
    assert sorted(tested) == sorted(table.subject)  # every subject predicted once, out of fold


def test_a_new_subject_moves_no_one_outside_its_shard():
    """Blocks are the shards: adding subjects re-draws only their own shards' parts."""
    table = cohort(600)
    before = assign(table, seed=4, n_blocks=8)
    new = pd.DataFrame({"sex": [1.0, 0.0], "age": [50.0, 77.0], "rare": [0.0, 0.0]}, index=["new1", "new2"])
    after = assign(pd.concat([table, new]), seed=4, n_blocks=8)
    touched = {shards.shard_of(s, 8) for s in new.index}
    others = [s for s in table.index if shards.shard_of(s, 8) not in touched]
    assert len(others) > 400
    assert after.loc[others].equals(before.loc[others])
    counts = after.part.value_counts()  # per-shard strata still give the cohort its shares
    assert abs(counts["test"] / len(after) - FRACTIONS["test"]) < 0.02


def test_tiny_shards_keep_the_cohorts_shares():
    """Shards of one or two subjects: rounding must not send them all to one part."""
    table = cohort(1200)
    for n_blocks in (600, 1200):
        counts = assign(table, seed=5, n_blocks=n_blocks).part.value_counts(normalize=True)
        assert all(abs(counts[s] - FRACTIONS[s]) < 0.04 for s in FRACTIONS), counts


def test_subjects_without_the_target_are_not_drawn():
    table = cohort(30)
    table.loc[table.index[:3], "sex"] = np.nan
    assert set(assign(table, seed=0).index) == set(table.index[3:])


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
    subjects = ["01", "02", "03", "04", "05"]
    result = splits.target_split(subjects, assigned, "sex", values, qc, ["t1", "bold"]).set_index("subject")
    assert result.loc["01", "part"] == "train"
    assert result.loc["02", "reason"] == "sex is missing"
    assert result.loc["03", "reason"] == "failed QC: bold"
    assert result.loc["04", "reason"] == "failed QC: t1"
    assert result.loc["05", "reason"] == "no row in the phenotype table"
    assert (result.loc[["02", "03", "04", "05"], "part"] == "excluded").all()
    # a target whose models read no image ignores image QC
    only_metadata = splits.target_split(subjects, assigned, "sex", values, qc, []).set_index("subject")
    assert only_metadata.loc["04", "part"] == "train"
    with pytest.raises(ValueError):
        splits.fold_roles(result.reset_index(), "fold-x", 5)


def test_a_declared_site_stratifies_every_split():
    """confounds.site joins stratify_by: each site's subjects take the parts' shares."""
    config = {"split": {**KFOLD, "stratify_by": ["age"]}, "confounds": {"site": "site", "variables": [], "deconfound": False}}
    settings = splits.settings_of(config)
    assert settings["stratify_by"] == ["age", "site"] and config["split"]["stratify_by"] == ["age"]  # the config unchanged
    table = cohort().assign(site=np.repeat([0.0, 1.0, 2.0], 100))
    variables = {**VARIABLES, "site": {"type": "categorical"}}
    assigned = splits.assign(table, "sex", shards.members(table.index, 1), settings, variables, seed=3).set_index("subject")
    counts = pd.crosstab(table["site"], assigned["part"])
    assert (counts.sub(counts.sum(axis=1) / 5, axis=0).abs() <= 3).all().all()  # a fifth of each site in each fold
    assert splits.settings_of({**config, "confounds": {**config["confounds"], "site": None}})["stratify_by"] == ["age"]
