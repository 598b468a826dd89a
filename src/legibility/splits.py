"""Splits, one per target: a holdout (train, validation and test shares) or k folds, drawn
shard by shard and stratified by the target's own classes (tertiles for a continuous target)
and by `split.stratify_by`.

Every model of a target uses its split, so all are tested on the same subjects. A target's split
keeps the subjects that have its value and whose images for all of the target's models passed
QC; the draw itself ignores QC, so an image failing QC never moves another subject. Under k-fold,
fold k tests on part k, validates (early stopping, model selection) on part k + 1 and trains on
the other k - 2 parts, so every eligible subject is predicted once, by a model that never saw it.
"""

import numpy as np
import pandas as pd

from .seeds import unit_hash

SPLITS = ("train", "val", "test")
HOLDOUT = "holdout"


def strata(phenotypes: pd.DataFrame, stratify_by, variables: dict) -> pd.Series:
    """A stratum label per subject: levels of discrete variables, tertiles of continuous ones."""
    key = pd.Series("", index=phenotypes.index)
    for name in stratify_by:
        values = phenotypes[name]
        n = values.notna().sum()
        if variables[name]["type"] == "continuous" and n:  # by rank: ties and tiny blocks need no special case
            values = pd.cut(values.rank(method="first"), [0, n / 3, 2 * n / 3, n], labels=["low", "mid", "high"])
        key = key + "|" + values.astype(str).where(values.notna(), "missing")
    return key


def settings_of(config: dict) -> dict:
    """The split settings: stratified by the site too, where one is declared (confounds.site)."""
    site = config["confounds"]["site"]
    return {**config["split"], "stratify_by": list(dict.fromkeys([*config["split"]["stratify_by"], *([site] if site else [])]))}


def parts(settings: dict) -> tuple:
    """The parts subjects are drawn into and their shares: train/val/test, or folds 1..k."""
    if settings["scheme"] == "kfold":
        return tuple(str(k) for k in range(1, settings["folds"] + 1)), np.ones(settings["folds"])
    return SPLITS, np.array([settings[s] for s in SPLITS], dtype=float)


def folds(settings: dict) -> list:
    """The training jobs of a model: one per fold, or the one holdout."""
    return [f"fold-{k}" for k in range(1, settings["folds"] + 1)] if settings["scheme"] == "kfold" else [HOLDOUT]


def assign(phenotypes: pd.DataFrame, target: str, blocks: dict, settings: dict, variables: dict, seed: int) -> pd.DataFrame:
    """Rows subject, stratum, part for the subjects with a value of `target`, drawn block by block
    (`blocks`: the shards) with strata (and tertiles) of the block's own, so a subject added to
    one block never moves a subject of another.

    Within a stratum, subjects in a seeded random order take the parts by systematic sampling
    from a random start: each part gets its share of the stratum to within one subject, and a
    stratum of one subject goes to each part with the part's probability, so however small the
    blocks, the cohort's shares hold (rounding never favours one part)."""
    names, shares = parts(settings)
    edges = np.cumsum(shares)[:-1] / shares.sum()
    by = [target, *(n for n in settings["stratify_by"] if n != target)]
    rows = []
    for block, members in blocks.items():
        present = phenotypes.reindex(members)
        present = present[present[target].notna()]
        keys = strata(present, by, variables)
        for key, group in keys.groupby(keys, sort=True):
            order = sorted(group.index, key=lambda s: unit_hash(seed, "split", s))
            points = (np.arange(len(order)) + unit_hash(seed, "split-start", target, block, key)) / len(order)
            rows += zip(order, [key] * len(order), np.array(names)[np.searchsorted(edges, points, side="right")])
    return pd.DataFrame(rows, columns=["subject", "stratum", "part"]).sort_values("subject", ignore_index=True)


def target_split(subjects, assigned: pd.Series, target: str, values: pd.Series, qc: pd.DataFrame, modalities) -> pd.DataFrame:
    """Rows subject, target, part (train/val/test or a fold number, or excluded) and the reason
    for an exclusion, for every subject with images."""
    failed = qc[qc["modality"].isin(modalities) & (qc["status"] != "pass")]
    failures = failed.groupby("subject")["modality"].apply(lambda m: ", ".join(sorted(m)))
    rows = []
    for subject in subjects:
        if subject in failures.index:
            reason = f"failed QC: {failures[subject]}"
        elif subject not in values.index:
            reason = "no row in the phenotype table"
        elif pd.isna(values[subject]):
            reason = f"{target} is missing"
        else:
            reason = ""
        rows.append({"subject": subject, "target": target, "part": "excluded" if reason else assigned[subject], "reason": reason})
    return pd.DataFrame(rows, columns=["subject", "target", "part", "reason"])


def fold_roles(table: pd.DataFrame, fold: str, n_folds: int) -> pd.DataFrame:
    """Rows subject, split (train, val or test) of one training job: the holdout's parts, or for
    fold k, test on part k, validation on part k + 1 (cyclically) and training on the rest."""
    table = table[table["part"].astype(str) != "excluded"]
    part = table["part"].astype(str)
    if fold == HOLDOUT:
        split = part
    else:
        k = int(fold.removeprefix("fold-"))
        split = np.where(part == str(k), "test", np.where(part == str(k % n_folds + 1), "val", "train"))
    return pd.DataFrame({"subject": table["subject"].astype(str).to_numpy(), "split": split})
