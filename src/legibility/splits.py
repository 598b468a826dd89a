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
        if variables[name]["type"] == "continuous":  # by rank: ties and tiny blocks need no special case
            n = values.notna().sum()
            values = pd.cut(values.rank(method="first"), [0, n / 3, 2 * n / 3, max(n, 1)], labels=["low", "mid", "high"])
        key = key + "|" + values.astype(str).where(values.notna(), "missing")
    return key


def assign(phenotypes: pd.DataFrame, blocks: dict, settings: dict, variables: dict, seed: int) -> pd.DataFrame:
    """Rows subject, stratum, split, assigned block by block (`blocks`: the shards), with
    strata (and tertiles) of the block's own, so a subject added to one block never moves a
    subject of another: only its shard's augmentation reruns."""
    parts = []
    for members in blocks.values():
        keys = strata(phenotypes.reindex(members), settings["stratify_by"], variables)
        split = _assign_block(members, keys, settings, seed)
        parts.append(pd.DataFrame({"subject": split.index, "stratum": keys[split.index].to_numpy(), "split": split.to_numpy()}))
    return pd.concat(parts).sort_values("subject", ignore_index=True)


def _assign_block(subjects, keys, fractions: dict, seed: int) -> pd.Series:
    """Subject -> split. Within each stratum, subjects in a seeded random order fill the splits
    in proportion (largest remainder), so every stratum, however small, is split as evenly as
    its size allows."""
    keys = pd.Series(keys, index=list(subjects)).sort_index()
    shares = np.array([fractions[s] for s in SPLITS], dtype=float)
    shares /= shares.sum()
    out = {}
    for key, group in keys.groupby(keys, sort=True):
        order = sorted(group.index, key=lambda s: unit_hash(seed, "split", s))
        counts = _largest_remainder(len(order) * shares, tie_break=unit_hash(seed, "split-stratum", key))
        for split, chunk in zip(SPLITS, np.split(np.array(order, dtype=object), np.cumsum(counts)[:-1])):
            out.update(dict.fromkeys(chunk, split))
    return pd.Series(out, name="split").sort_index()


def _largest_remainder(expected, tie_break):
    counts = np.floor(expected).astype(int)
    remainder = expected - counts
    # rotate which split wins ties, so tiny strata do not all favour the same split
    rotation = np.roll(np.arange(len(expected)), int(tie_break * len(expected)))
    order = sorted(range(len(expected)), key=lambda i: (-round(remainder[i], 9), rotation[i]))
    counts[order[: int(round(expected.sum())) - counts.sum()]] += 1
    return counts


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
