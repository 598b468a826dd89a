"""Inputs: which subjects have which images, and the phenotype table, checked before any work.

Problems are collected and reported together, each naming the file, row and column at fault.
"""

import difflib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .grid import ConfigError

LABEL = re.compile(r"^[A-Za-z0-9]+$")
MISSING = {"", "n/a", "na", "nan", "none", "null"}


def check_label(label: str, where: str) -> str:
    """A BIDS label (letters and digits): nothing that could change a path."""
    if not LABEL.match(label):
        raise ConfigError(f"{where}: subject label {label!r} is not a BIDS label (letters and digits only)")
    return label


def discover(root, templates: dict, include=(), exclude=(), stamps=None):
    """(subject -> {modality: path}, rejected) from the path templates: the files Snakemake's
    glob_wildcards finds (tested), but by listing only the folder level where `{subject}` first
    appears and checking each candidate's path, where glob_wildcards walks the whole tree once
    per template (a UK Biobank-sized tree, 23,810 subjects and four templates: 27 s; this: 0.8 s). A file whose label is
    not a BIDS label is rejected, not read: `rejected` lists it (subject, modality, path,
    reason) so QC can report it; other subjects go on. `stamps`, where given, is filled with
    each found path's stamp (see `stamp`), from the one stat that found it."""
    for label in (*include, *exclude):
        check_label(label, "inputs.include/exclude")
    found, rejected = {}, []
    stamps = {} if stamps is None else stamps
    for modality, pattern in templates.items():
        for subject, path_stamp in _labels(root, pattern).items():
            path = os.path.join(root, pattern.format(subject=subject))
            stamps[path] = path_stamp
            if LABEL.match(subject):
                found.setdefault(subject, {})[modality] = path
            else:
                reason = f"subject label {subject!r} is not a BIDS label (letters and digits only): not read"
                rejected.append({"subject": subject, "modality": modality, "path": path, "status": "fail", "reasons": reason})
    if include:
        found = {s: found.get(s, {}) for s in include}
    return {s: found[s] for s in sorted(found) if s not in set(exclude)}, rejected


def add_masks(images: dict, root, masks: dict) -> dict:
    """Each structural image's brain mask, as `<modality>_mask` beside it, where `masks` has a
    template for its modality: the path whether or not the file exists (QC reports a missing one)."""
    for subject, paths in images.items():
        for modality, pattern in masks.items():
            if modality in paths:
                paths[f"{modality}_mask"] = os.path.join(root, pattern.format(subject=subject))
    return images


def stamp(path):
    """[modification time in ns, size] of a file, None where it is missing: what reruns its QC."""
    try:
        st = os.stat(path)
    except OSError:  # missing, or under something that is not a folder: as os.path.exists says
        return None
    return [st.st_mtime_ns, st.st_size]


def _labels(root, pattern: str) -> dict:
    """label -> stamp, for the labels for which `pattern` names an existing path under `root` (a
    folder too, as for glob_wildcards: QC then reports it unreadable)."""
    parts = os.path.join(root, pattern).split("/")  # an absolute pattern ignores root
    level = next(i for i, part in enumerate(parts) if "{subject}" in part)
    literal = [re.escape(text) for text in parts[level].split("{subject}")]
    name = re.compile("(?P<subject>.+)".join(literal[:2]) + "".join("(?P=subject)" + text for text in literal[2:]))
    try:
        entries = os.listdir("/".join(parts[:level]) or "/")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    labels = sorted({m["subject"] for m in map(name.fullmatch, entries) if m})
    stamps = {s: stamp(os.path.join(root, pattern.format(subject=s))) for s in labels}
    return {s: path_stamp for s, path_stamp in stamps.items() if path_stamp is not None}


DERIVED = {"registration": "head_scale", "skullstrip": "tiv_ml"}  # source -> its QC table column


def add_derived(phenotypes, variables: dict, qc_table) -> None:
    """The variables derived from the images, from the QC table (whose structural rows carry
    them; NaN where there is none): `source: registration`, each subject's head scale;
    `source: skullstrip`, the intracranial volume of its learned brain mask."""
    for name, spec in variables.items():
        column = DERIVED.get(spec.get("source", "table"))
        if column:
            values = qc_table.groupby(qc_table["subject"].astype(str))[column].max()
            phenotypes.values[name] = values.reindex(phenotypes.values.index).astype(float)


class Phenotypes:
    """The phenotype table, validated against the variable declarations.

    `values` holds numbers: continuous as read, binary as 0/1 (1 = second level), categorical as
    level codes 0..K-1; missing values are NaN. `levels` maps discrete variables to their levels.
    """

    def __init__(self, values: pd.DataFrame, levels: dict):
        self.values, self.levels = values, levels

    def label(self, variable: str, codes):
        """Level names of codes (for tables people read)."""
        names = np.array(self.levels[variable], dtype=object)
        return [names[int(c)] if pd.notna(c) else None for c in codes]


def read_phenotypes(path, subject_column: str, strip_prefix: str, variables: dict, with_images=None, raw=None) -> Phenotypes:
    """Load and validate; raises ConfigError listing every problem found.

    With `with_images` (the subjects that have images), a row for any other subject is a
    problem too: usually a mismatch of labels (check subject_column and strip_prefix).
    `raw`, the table as strings, stands in for a file not written yet (the demo's)."""
    path = Path(path)
    if raw is None and not path.exists():
        raise ConfigError(f"phenotypes.path: {path} does not exist")
    if raw is None:
        raw = pd.read_csv(path, sep="," if path.suffix.lower() == ".csv" else "\t", dtype=str, keep_default_na=False)
    problems = []

    def known(column):
        if column in raw.columns:
            return True
        close = difflib.get_close_matches(column, raw.columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{path}: no column {column!r}{hint}")
        return False

    if not known(subject_column):
        raise ConfigError("\n".join(problems))
    subjects = raw[subject_column].str.strip()
    subjects = subjects.str.removeprefix(strip_prefix) if strip_prefix else subjects
    for row, label in subjects.items():
        if not LABEL.match(label):
            problems.append(f"{path}, row {row + 2}, column {subject_column!r}: {label!r} is not a BIDS subject label")
    if with_images is not None:
        strangers = subjects[~subjects.isin(set(with_images)) & subjects.str.match(LABEL.pattern)]
        for row, label in list(strangers.items())[:10]:
            problems.append(f"{path}, row {row + 2}, column {subject_column!r}: subject {label!r} has no images")
        if len(strangers) > 10:
            problems.append(f"{path}: {len(strangers) - 10} more rows of subjects without images")
    for label in subjects[subjects.duplicated()].unique():
        rows = ", ".join(str(r + 2) for r in subjects.index[subjects == label])
        problems.append(f"{path}, rows {rows}, column {subject_column!r}: subject {label!r} appears more than once")

    values, levels = {}, {}
    for name, spec in variables.items():
        if spec.get("source", "table") != "table":  # derived by a job (add_derived), not read here
            continue
        if not known(name):
            continue
        column = raw[name].str.strip()
        missing = column.str.lower().isin(MISSING)
        if spec["type"] == "continuous":
            numbers = pd.to_numeric(column.where(~missing), errors="coerce")
            for row in column.index[numbers.isna() & ~missing][:5]:
                problems.append(f"{path}, row {row + 2}, column {name!r}: {column[row]!r} is not a number")
            values[name] = numbers
            continue
        allowed = [str(level) for level in spec.get("levels", [])] or sorted(column[~missing].unique())
        if spec["type"] == "binary" and len(allowed) != 2:
            problems.append(f"{path}, column {name!r}: a binary variable needs exactly 2 levels, found {allowed}")
            continue
        unknown = ~missing & ~column.isin(allowed)
        for row in column.index[unknown][:5]:
            close = difflib.get_close_matches(column[row], allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path}, row {row + 2}, column {name!r}: {column[row]!r} is not one of {allowed}{hint}")
        values[name] = column.map({level: float(i) for i, level in enumerate(allowed)}).where(~missing)
        levels[name] = allowed
    if problems:
        raise ConfigError("phenotype table problems:\n  " + "\n  ".join(problems))
    frame = pd.DataFrame(values, index=raw.index).astype(float)
    frame.index = pd.Index(subjects.to_numpy(), name="subject")
    return Phenotypes(frame, levels)
