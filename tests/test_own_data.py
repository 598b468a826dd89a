"""A user's own data, as a new user runs it: their own folder layout (UK Biobank's), phenotype
columns and coding, their own config file and nothing of the demo's. (An fMRIPrep-style folder,
images with scalp and brain masks, is tests/test_bad_inputs.py's study.)"""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, validated
from legibility import demo
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow

SUBJECTS = 12  # four a fold
WORKFLOW = ("Snakefile", "workflow", "config", "profiles", "scripts", "src", "envs")  # of a checkout
# small and quick: what matters here is whose settings the run uses, not what it learns
QUICK = {
    "shards": 1,
    "skullstrip": {"input_size": 160, "threads": 1},  # quick (Dice 0.965 with true brains)
    "preprocess": {"resolutions": [64]},
    "augment": {"copies": 1},
    "training": {"epochs": 2, "patience": 2, "threads": 1, "without_images": {"threads": 1}},
    "model": {"channels": [4, 8], "metadata_hidden": [8], "head_hidden": 8},
}


def readme_command(pattern: str) -> list:
    """The README's command matching `pattern`, as arguments (the venv's snakemake)."""
    readme = (ROOT / "README.md").read_text()
    line = re.search(rf"^{pattern}$", readme, flags=re.M)
    assert line, f"the README has no command matching {pattern!r}"
    return [SNAKEMAKE, *shlex.split(line.group(0))[1:]]


def make_t1s(root, rows: dict, template: str):
    """Demo-generated brain-extracted T1s at `template`'s paths (`rows`: subject -> sex, age)."""
    prepared = demo._prepared_template()
    for subject, row in rows.items():
        path = root / template.format(subject=subject)
        path.parent.mkdir(parents=True)
        demo.make_subject(SimpleNamespace(subject=subject, hypertension="no", **row), 5, {"t1": path}, set(), prepared=prepared)


@pytest.fixture(scope="module")
def uk_biobank(tmp_path_factory):
    """A UK Biobank-style folder (<eid>/T1/...), a comma-separated table keyed by eid with 0/1
    codes and none of the demo's columns, run with the README's command for own data from a
    fresh copy of the workflow."""
    workdir = tmp_path_factory.mktemp("ukb")
    draw = np.random.default_rng(7)
    eids = [str(1000001 + i) for i in range(SUBJECTS)]
    male = np.arange(SUBJECTS) % 2
    table = pd.DataFrame({
        "eid": eids, "male": male, "age_at_scan": draw.uniform(45, 80, SUBJECTS).round(1),
        "waist_cm": (85 + 8 * male + draw.normal(0, 8, SUBJECTS)).round(1), "current_smoker": draw.integers(0, 2, SUBJECTS),
    })  # fmt: skip
    table.to_csv(workdir / "phenotypes.csv", index=False)
    rows = {e: {"sex": "M" if m else "F", "age": a} for e, m, a in zip(eids, male, table.age_at_scan)}
    make_t1s(workdir / "imaging", rows, "{subject}/T1/T1_brain_to_MNI.nii.gz")

    checkout = workdir / "legibility"  # what a user has after cloning
    shutil.copytree(ROOT, checkout, ignore=lambda folder, names: [n for n in names if Path(folder) == ROOT and n not in WORKFLOW])
    user = {
        **QUICK,
        "inputs": {"root": str(workdir / "imaging"), "templates": {"t1": "{subject}/T1/T1_brain_to_MNI.nii.gz"}},
        "phenotypes": {
            "path": str(workdir / "phenotypes.csv"), "subject_column": "eid", "strip_prefix": "",
            "variables": {
                "male": {"type": "binary", "block": "constitutional", "levels": [0, 1]},
                "age_at_scan": {"type": "continuous", "block": "constitutional"},
                "waist_cm": {"type": "continuous", "block": "constitutional"},
                "current_smoker": {"type": "binary", "block": "psychology", "levels": [0, 1]},
            },
        },
        "split": {"folds": 3},  # k-fold, the default scheme, with three folds: a quick run
        "registration": {"levels_mm": [8]},
        "grid": [{"targets": ["male"], "input_sets": [["t1"]]}, {"targets": ["current_smoker"], "input_sets": [["constitutional"]]}],
    }  # fmt: skip
    (checkout / "config" / "my_study.yaml").write_text(yaml.safe_dump(user, sort_keys=False))
    command = readme_command(r"snakemake --configfile config/my_study\.yaml --cores all")
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-6000:]
    return SimpleNamespace(results=checkout / "results", user=user)


def test_a_users_config_is_their_file_plus_schema_defaults(uk_biobank):
    effective = yaml.safe_load((uk_biobank.results / "config.yaml").read_text())
    assert effective == validated(uk_biobank.user)
    # the settings the demo changes take the schema's defaults, not the demo's
    demo_config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert effective["atlas"] == {"source": "package", "name": "aal", "n_regions": 100} != demo_config["atlas"]
    assert effective["connectivity"]["drop_volumes"] == 5 and effective["training"]["gpu"] == 1
    assert effective["model"]["connectivity_hidden"] == [256, 64] and not effective["demo"]["enabled"]
    assert set(effective["phenotypes"]["variables"]) == {"male", "age_at_scan", "waist_cm", "current_smoker"}


def test_a_uk_biobank_folder_runs_end_to_end(uk_biobank):
    qc_table = read_tsv(uk_biobank.results / "qc.tsv")
    assert len(qc_table) == SUBJECTS and (qc_table.status == "pass").all()
    assert qc_table.path.str.endswith("/T1/T1_brain_to_MNI.nii.gz").all()
    performance = read_tsv(uk_biobank.results / "performance.tsv").set_index("model")
    assert set(performance.index) == {"male__t1__64", "current_smoker__constitutional"}
    splits = read_tsv(uk_biobank.results / "splits.tsv")
    assert set(splits.subject) == {str(1000001 + i) for i in range(SUBJECTS)}


def test_k_fold_predicts_every_subject_once_out_of_fold(uk_biobank):
    splits = read_tsv(uk_biobank.results / "splits.tsv")
    performance = read_tsv(uk_biobank.results / "performance.tsv").set_index("model")
    for model, target in (("male__t1__64", "male"), ("current_smoker__constitutional", "current_smoker")):
        parts = splits[splits.target == target].set_index("subject")["part"].astype(str)
        predictions = read_tsv(uk_biobank.results / "test_predictions" / f"{model}.tsv").set_index("subject")
        assert sorted(predictions.index) == sorted(parts.index)  # every eligible subject, once
        assert (predictions["fold"] == "fold-" + parts[predictions.index]).all()  # by the fold that left it out
        assert performance.loc[model, "folds"] == 3 and performance.loc[model, "n_test"] == SUBJECTS
        for fold in ("fold-1", "fold-2", "fold-3"):
            held_out = json.loads((uk_biobank.results / "models" / model / fold / "metrics.json").read_text())
            assert held_out["n_test"] == (parts == fold[-1]).sum() and held_out["n_val"] == (parts == str(int(fold[-1]) % 3 + 1)).sum()
