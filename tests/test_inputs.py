"""Inputs: discovery by path templates and phenotype-table validation with clear messages."""

import os

import pandas as pd
import pytest

from legibility.grid import ConfigError
from legibility.inputs import add_derived, add_masks, check_label, discover, read_phenotypes

VARIABLES = {
    "sex": {"type": "binary", "block": "constitutional", "levels": ["F", "M"]},
    "age": {"type": "continuous", "block": "constitutional"},
    "smoking": {"type": "categorical", "block": "psychology", "levels": ["never", "former", "current"]},
}


def write(tmp_path, text, name="participants.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_table_is_encoded(tmp_path):
    path = write(tmp_path, "participant_id\tsex\tage\tsmoking\nsub-01\tF\t61.5\tnever\nsub-02\tM\tn/a\tcurrent\n")
    table = read_phenotypes(path, "participant_id", "sub-", VARIABLES)
    assert list(table.values.index) == ["01", "02"]
    assert table.values.loc["02", "sex"] == 1.0 and table.values.loc["02", "smoking"] == 2.0
    assert table.values["age"].isna().tolist() == [False, True]
    assert table.label("smoking", [2.0, float("nan")]) == ["current", None]


def test_the_head_scale_from_registration_is_a_variable_without_a_column(tmp_path):
    path = write(tmp_path, "participant_id\tsex\tage\tsmoking\nsub-01\tF\t61.5\tnever\nsub-02\tM\t70\tcurrent\n")
    variables = {**VARIABLES, "head": {"type": "continuous", "block": "constitutional", "source": "registration"}}
    table = read_phenotypes(path, "participant_id", "sub-", variables)  # no column 'head': not a problem
    qc = pd.DataFrame({"subject": ["01", "01", "01", "02"], "modality": ["t1", "flair", "bold", "t1"],
                       "head_scale": [1.05, 1.05, None, None]})  # fmt: skip
    add_derived(table, variables, qc)
    assert table.values.loc["01", "head"] == 1.05 and pd.isna(table.values.loc["02", "head"])  # 02 was not registered


def test_csv_with_another_subject_column(tmp_path):
    path = write(tmp_path, "eid,sex,age,smoking\n1000017,M,70,former\n", "pheno.csv")
    assert read_phenotypes(path, "eid", "", VARIABLES).values.loc["1000017", "age"] == 70


@pytest.mark.parametrize(
    "text, message",
    [
        ("participant_id\tsex\tage\tsmoking\nsub-01\tF\t6l\tnever\n", "row 2, column 'age': '6l' is not a number"),
        ("participant_id\tsex\tage\tsmoking\nsub-01\tF\t61\tnevr\n", "row 2, column 'smoking': 'nevr' is not one of ['never', 'former', 'current'] (did you mean 'never'?)"),
        ("participant_id\tsex\tAge\tsmoking\nsub-01\tF\t61\tnever\n", "no column 'age' (did you mean 'Age'?)"),
        ("participant_id\tsex\tage\tsmoking\nsub-01\tF\t61\tnever\nsub-01\tM\t62\tnever\n", "rows 2, 3, column 'participant_id': subject '01' appears more than once"),
        ("participant_id\tsex\tage\tsmoking\nsub-../x\tF\t61\tnever\n", "'../x' is not a BIDS subject label"),
    ],
    ids=["non-numeric", "unknown-category", "column-typo", "duplicate", "path-in-label"],
)
def test_problems_name_file_row_and_column(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        read_phenotypes(path, "participant_id", "sub-", VARIABLES)
    assert str(path) in str(error.value) and message in str(error.value)


def test_rows_of_subjects_without_images_are_named(tmp_path):
    path = write(tmp_path, "participant_id\tsex\tage\tsmoking\nsub-01\tF\t61\tnever\nsub-1\tM\t62\tnever\n")
    with pytest.raises(ConfigError, match="row 3, column 'participant_id': subject '1' has no images"):
        read_phenotypes(path, "participant_id", "sub-", VARIABLES, with_images=["01", "02"])
    assert len(read_phenotypes(path, "participant_id", "sub-", VARIABLES).values) == 2  # allowed when not asked


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "participant_id\tsex\tage\tsmoking\nsub-01\tX\told\tnevr\n")
    with pytest.raises(ConfigError) as error:
        read_phenotypes(path, "participant_id", "sub-", VARIABLES)
    assert all(column in str(error.value) for column in ("'sex'", "'age'", "'smoking'"))


def test_discover_by_templates(tmp_path):
    for subject in ("01", "02"):
        (tmp_path / f"sub-{subject}" / "anat").mkdir(parents=True)
        (tmp_path / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz").write_bytes(b"")
    (tmp_path / "sub-02" / "func").mkdir()
    (tmp_path / "sub-02" / "func" / "sub-02_bold.nii.gz").write_bytes(b"")
    templates = {"t1": "sub-{subject}/anat/sub-{subject}_T1w.nii.gz", "bold": "sub-{subject}/func/sub-{subject}_bold.nii.gz"}
    found, rejected = discover(tmp_path, templates)
    assert sorted(found) == ["01", "02"] and set(found["02"]) == {"t1", "bold"} and set(found["01"]) == {"t1"}
    assert rejected == []
    assert list(discover(tmp_path, templates, exclude=["01"])[0]) == ["02"]


def test_uk_biobank_layout_needs_only_other_templates(tmp_path):
    for eid in ("1000017", "1000025"):
        (tmp_path / eid / "T1").mkdir(parents=True)
        (tmp_path / eid / "T1" / "T1_brain.nii.gz").write_bytes(b"")
    (tmp_path / "1000033").write_text("a stray file where a subject's folder would be")
    stamps = {}
    found, _ = discover(tmp_path, {"t1": "{subject}/T1/T1_brain.nii.gz"}, stamps=stamps)
    assert found == {s: {"t1": str(tmp_path / s / "T1" / "T1_brain.nii.gz")} for s in ("1000017", "1000025")}
    # each found file's stamp, from the stat that found it: what reruns its QC
    assert stamps == {p["t1"]: [os.stat(p["t1"]).st_mtime_ns, 0] for p in found.values()}


def test_a_label_that_could_escape_the_dataset_is_rejected_and_listed(tmp_path):
    for label in ("01", ".."):
        (tmp_path / f"sub-{label}").mkdir()
        (tmp_path / f"sub-{label}" / f"sub-{label}_T1w.nii.gz").write_bytes(b"")
    found, rejected = discover(tmp_path, {"t1": "sub-{subject}/sub-{subject}_T1w.nii.gz"})
    assert list(found) == ["01"]  # the other subject goes on
    assert [r["subject"] for r in rejected] == [".."] and "not a BIDS label" in rejected[0]["reasons"]
    assert rejected[0]["path"].endswith("sub-../sub-.._T1w.nii.gz")


def test_labels_that_could_escape_are_rejected():
    with pytest.raises(ConfigError, match="not a BIDS label"):
        check_label("../etc", "inputs.include")
    assert check_label("1000017", "x") == "1000017"


def test_discovery_finds_what_snakemakes_glob_wildcards_finds(tmp_path):
    """BIDS, UK Biobank and flat layouts, with decoys: a label's file missing, a mismatched
    repeat of the label, a folder where a file is expected, other files beside."""
    from snakemake.io import glob_wildcards

    files = ["sub-01/anat/sub-01_T1w.nii.gz", "sub-02/anat/sub-02_T1w.nii.gz", "sub-03/anat/sub-04_T1w.nii.gz",
             "sub-05/anat/notes.txt", "sub-0x1/anat/sub-0x1_T1w.nii.gz", "sub-06/func/sub-06_bold.nii.gz",
             "1000017/T1/T1_brain.nii.gz", "1000025/T1/other.nii.gz", "flat/A1_flair.nii", "flat/B2_flair.nii.gz"]  # fmt: skip
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub-07" / "anat" / "sub-07_T1w.nii.gz").mkdir(parents=True)  # a folder: found, QC fails it
    templates = {"t1": "sub-{subject}/anat/sub-{subject}_T1w.nii.gz", "bold": "sub-{subject}/func/sub-{subject}_bold.nii.gz",
                 "dwi": "{subject}/T1/T1_brain.nii.gz", "flair": "flat/{subject}_flair.nii"}  # fmt: skip
    found, _ = discover(tmp_path, templates)
    for modality, template in templates.items():
        expected = set(glob_wildcards(str(tmp_path / template)).subject)
        assert {s for s, images in found.items() if modality in images} == expected, modality
    assert set(found) == {"01", "02", "0x1", "06", "07", "1000017", "A1"}


def test_templates_may_be_absolute_and_masks_sit_beside_their_images(tmp_path):
    """FLAIR from another pipeline's folder (an absolute template ignores inputs.root); a mask
    template gives each image its mask's path, whether or not the file is there (QC says)."""
    elsewhere = tmp_path / "other_pipeline"
    for subject in ("01", "02"):
        (tmp_path / "fmriprep" / f"sub-{subject}").mkdir(parents=True)
        (tmp_path / "fmriprep" / f"sub-{subject}" / f"sub-{subject}_T1w.nii.gz").write_bytes(b"")
        (elsewhere / f"sub-{subject}").mkdir(parents=True)
        (elsewhere / f"sub-{subject}" / f"sub-{subject}_FLAIR.nii.gz").write_bytes(b"")
    templates = {"t1": "sub-{subject}/sub-{subject}_T1w.nii.gz", "flair": str(elsewhere / "sub-{subject}/sub-{subject}_FLAIR.nii.gz")}
    found, _ = discover(tmp_path / "fmriprep", templates)
    assert found["02"]["flair"] == str(elsewhere / "sub-02" / "sub-02_FLAIR.nii.gz")
    add_masks(found, tmp_path / "fmriprep", {"t1": "sub-{subject}/sub-{subject}_mask.nii.gz", "dwi": "sub-{subject}/x_{subject}.nii.gz"})
    assert found["01"] == {
        "t1": str(tmp_path / "fmriprep" / "sub-01" / "sub-01_T1w.nii.gz"),
        "t1_mask": str(tmp_path / "fmriprep" / "sub-01" / "sub-01_mask.nii.gz"),  # no dwi_mask: no dwi
        "flair": str(elsewhere / "sub-01" / "sub-01_FLAIR.nii.gz"),
    }
