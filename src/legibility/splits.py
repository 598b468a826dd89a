"""Train/validation/test splits: one stratified assignment of subjects, restricted per target.

Every subject is assigned once; a target's split keeps the subjects that have its value and
whose images for all of the target's models passed QC. So every model of a target is tested on
the same subjects, and no subject is in training for one target and testing for another.
"""

import numpy as np
import pandas as pd

from .seeds import unit_hash

SPLITS = ("train", "val", "test")


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


def assign(phenotypes: pd.DataFrame, blocks: dict, settings: dict, variables: dict, seed: int) -> pd.DataFrame:
    """Rows subject, stratum, split, assigned block by block (`blocks`: the shards), with strata
    (and tertiles) of the block's own, so a subject added to one block never moves a subject of
    another: only its shard's augmentation reruns.

    Within a stratum, subjects in a seeded random order take the splits by systematic sampling
    from a random start: each split gets its share of the stratum to within one subject, and a
    stratum of one subject goes to each split with the split's probability, so however small the
    blocks, the cohort's shares hold (rounding never favours one split)."""
    edges = np.cumsum([settings[s] for s in SPLITS])[:-1] / sum(settings[s] for s in SPLITS)
    rows = []
    for block, members in blocks.items():
        keys = strata(phenotypes.reindex(members), settings["stratify_by"], variables)
        for key, group in keys.groupby(keys, sort=True):
            order = sorted(group.index, key=lambda s: unit_hash(seed, "split", s))
            points = (np.arange(len(order)) + unit_hash(seed, "split-start", block, key)) / len(order)
            rows += zip(order, [key] * len(order), np.array(SPLITS)[np.searchsorted(edges, points, side="right")])
    return pd.DataFrame(rows, columns=["subject", "stratum", "split"]).sort_values("subject", ignore_index=True)


def target_split(subject_split: pd.Series, target: str, values: pd.Series, qc: pd.DataFrame, modalities) -> pd.DataFrame:
    """Rows subject, target, split (train/val/test/excluded) and the reason for an exclusion."""
    failed = qc[qc["modality"].isin(modalities) & (qc["status"] != "pass")]
    failures = failed.groupby("subject")["modality"].apply(lambda m: ", ".join(sorted(m)))
    rows = []
    for subject, split in subject_split.items():
        if subject in failures.index:
            reason = f"failed QC: {failures[subject]}"
        elif subject not in values.index:
            reason = "no row in the phenotype table"
        elif pd.isna(values[subject]):
            reason = f"{target} is missing"
        else:
            reason = ""
        rows.append({"subject": subject, "target": target, "split": "excluded" if reason else split, "reason": reason})
    return pd.DataFrame(rows, columns=["subject", "target", "split", "reason"])
