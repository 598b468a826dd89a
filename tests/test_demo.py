"""The demo cohort: deterministic, with the effects and defects its truth file promises."""

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from conftest import validated
from legibility import demo, qc
from legibility.io import sha256


def test_plan_is_deterministic_and_lists_defects():
    first, again = demo.plan(40, 7, 4), demo.plan(40, 7, 4)
    assert first == again
    assert len(first["unstripped"]) == 4 and len(first["missing"]) == 1 and len(first["high_motion"]) == 1
    missing = first["missing"][0]
    assert missing["modality"] not in demo.present(first)[missing["subject"]]
    defective = {m["subject"] for m in first["unstripped"] + first["missing"] + first["high_motion"]}
    assert len(defective) == 6  # each defect on its own subject
    assert demo.plan(40, 8, 4) != first


def test_phenotypes_carry_the_injected_correlations():
    table = demo.phenotypes([f"{i:04d}" for i in range(2000)], seed=3)
    numeric = table.replace("n/a", np.nan)
    male = numeric["sex"] == "M"
    age = numeric["age"].astype(float)
    assert numeric["height"].astype(float)[male].mean() - numeric["height"].astype(float)[~male].mean() > 10
    assert np.corrcoef(age, numeric["fluid_intelligence"].astype(float).fillna(6.5))[0, 1] < -0.2
    hypertensive = numeric["hypertension"] == "yes"
    assert age[hypertensive].mean() > age[~hypertensive].mean() + 3
    # the negative control is unrelated to everything
    noise = numeric["negative_control"].astype(float)
    for column in ("age", "height", "bmi"):
        assert abs(np.corrcoef(noise, numeric[column].astype(float))[0, 1]) < 0.08
    assert table["hba1c"].eq("n/a").mean() > 0.01  # some values missing, as in real tables


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """A woman aged 46 and a man aged 78, written twice with the same seed."""
    prepared = demo._prepared_template()
    rows = [
        SimpleNamespace(subject="001", sex="F", age=46.0, hypertension="no"),
        SimpleNamespace(subject="002", sex="M", age=78.0, hypertension="yes"),
    ]
    out = {}
    for run in ("a", "b"):
        root = tmp_path_factory.mktemp(run)
        for row in rows:
            paths = {m: root / f"sub-{row.subject}_{m}.nii.gz" for m in ("t1", "flair", "dwi", "bold")}
            unstripped = {("002", "flair")}
            info = demo.make_subject(row, 11, paths, unstripped, prepared=prepared)
            out[run, row.subject] = (paths, info)
    return out


def test_same_seed_gives_same_bytes(two_subjects):
    for subject in ("001", "002"):
        paths_a, _ = two_subjects["a", subject]
        paths_b, _ = two_subjects["b", subject]
        for modality in paths_a:
            assert sha256(paths_a[modality]) == sha256(paths_b[modality]), modality


def test_images_vary_in_geometry_and_carry_effects(two_subjects, demo_config):
    (woman, _), (man, _) = two_subjects["a", "001"], two_subjects["a", "002"]
    thresholds = demo_config["qc"]
    volumes = {}
    for name, paths in (("woman", woman), ("man", man)):
        row = qc.check_structural(paths["t1"], thresholds)
        assert row["status"] == "pass", row["reasons"]
        volumes[name] = row["volume_ml"]
    assert volumes["man"] > 1.15 * volumes["woman"]  # sex scales the head
    # the older subject's MD is higher (diffusivity rises with age)
    md = {n: nib.load(p["dwi"]).get_fdata() for n, p in (("woman", woman), ("man", man))}
    assert np.median(md["man"][md["man"] > 0]) > 1.1 * np.median(md["woman"][md["woman"] > 0])
    # the unstripped FLAIR keeps its skull and fails QC; orientations are not all RAS
    assert qc.check_structural(man["flair"], thresholds)["status"] == "fail"
    codes = {"".join(nib.aff2axcodes(nib.load(p).affine)) for p in list(woman.values()) + list(man.values())}
    assert codes != {"RAS"}
    bold = nib.load(man["bold"])
    assert bold.ndim == 4 and bold.header.get_zooms()[3] == demo.BOLD_TR


def test_make_cohort_writes_truth_and_participants(tmp_path):
    config = validated({
        "seed": 5, "demo": {"enabled": True, "n_subjects": 12, "unstripped": 1},
        "inputs": {"root": str(tmp_path), "templates": {"t1": "sub-{subject}_T1w.nii.gz"}},
        "phenotypes": {"path": str(tmp_path / "participants.tsv"), "variables": {"age": {"type": "continuous", "block": "constitutional"}}},
        "grid": [{"targets": ["age"], "input_sets": [["t1"]]}],
    })  # fmt: skip
    the_plan = demo.plan(12, 5, 1)
    paths = {s: {"t1": tmp_path / f"sub-{s}_T1w.nii.gz"} for s in the_plan["subjects"]}
    demo.make_cohort(config, paths, tmp_path / "participants.tsv", tmp_path / "truth.json")
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["subjects"] == the_plan["subjects"] and truth["unstripped"] == the_plan["unstripped"]
    assert truth["negative_control"] == "negative_control"
    assert all(p["t1"].exists() for p in paths.values())
    assert (tmp_path / "participants.tsv").read_text().startswith("participant_id\tsex\tage")
