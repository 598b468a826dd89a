"""The demo cohort: deterministic, with the effects and defects its truth file promises."""

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
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
def prepared():
    return demo._prepared_template()


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory, prepared):
    """A woman aged 46 and a man aged 78, written twice with the same seed."""
    rows = [
        SimpleNamespace(subject="001", sex="F", age=46.0, hypertension="no"),
        SimpleNamespace(subject="002", sex="M", age=78.0, hypertension="yes"),
    ]
    out = {}
    for run in ("a", "b"):
        root = tmp_path_factory.mktemp(run)
        for row in rows:
            paths = {m: root / f"sub-{row.subject}_{m}.nii.gz" for m in ("t1", "flair", "dwi", "bold")}
            paths["confounds"] = root / f"sub-{row.subject}_desc-confounds_timeseries.tsv"
            paths["t1_mask"] = root / f"sub-{row.subject}_desc-brain_mask.nii.gz"  # the generator's truth
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
    # the unstripped FLAIR keeps its skull outside the brain and fails QC; orientations are not all RAS
    assert qc.check_structural(man["flair"], thresholds, brain=man["t1_mask"])["status"] == "fail"
    assert qc.check_structural(man["t1"], thresholds, brain=man["t1_mask"])["status"] == "pass"
    codes = {"".join(nib.aff2axcodes(nib.load(p).affine)) for p in list(woman.values()) + list(man.values()) if p.name.endswith(".nii.gz")}
    assert codes != {"RAS"}
    bold = nib.load(man["bold"])
    assert bold.ndim == 4 and bold.header.get_zooms()[3] == demo.BOLD_TR


def test_confounds_tables_carry_what_default_denoising_needs(two_subjects, demo_config, prepared):
    """fMRIPrep's columns: 24 motion parameters (derivatives n/a in the first row), mean
    white-matter and CSF signals of the BOLD series, framewise displacement; the older subject
    moves more, both within QC's limits."""
    from legibility import connectivity

    thresholds = {**demo_config["qc"], "censor_fd": demo_config["connectivity"]["censor_fd"]}
    fd = {}
    for subject in ("001", "002"):
        paths, info = two_subjects["a", subject]
        table = pd.read_csv(paths["confounds"], sep="\t", na_values=["n/a"])
        assert set(connectivity.STANDARD_CONFOUNDS) | {"framewise_displacement"} <= set(table.columns)
        derived = table.filter(regex="_derivative1|framewise")
        assert derived.iloc[0].isna().all() and derived.iloc[1:].notna().all(axis=None) and table.filter(regex="^(trans|rot)_[xyz]$").notna().all(axis=None)
        image = nib.load(paths["bold"])
        world = demo._world(image.shape[:3], image.affine)
        for column, tissue in (("white_matter", "wm"), ("csf", "csf")):
            mask = demo._sample(prepared[0][tissue], world, prepared[0]["affine"]) > demo.TISSUE_THRESHOLD
            np.testing.assert_allclose(table[column], image.get_fdata()[mask].mean(axis=0), rtol=1e-5)
        regressors, kept = connectivity.confound_regressors(paths["confounds"], demo_config["connectivity"], demo_config["connectivity"]["drop_volumes"])
        assert regressors.shape == (demo.BOLD_VOLUMES - 2, 26) and np.isfinite(regressors).all()
        row = qc.check_bold(paths["bold"], thresholds, paths["confounds"])
        assert row["status"] == "pass", row["reasons"]
        fd[subject] = row["mean_fd_mm"]
        assert info["motion"]["mean_fd_mm"] == pytest.approx(fd[subject], abs=1e-3)
    assert fd["002"] > 1.5 * fd["001"]  # older subjects move more


def test_default_denoising_removes_the_demos_motion_artefact(prepared, tmp_path, demo_config):
    """The same subjects at 46 and at 80 (older subjects move more; their connectivity between
    networks the generator does not couple is otherwise the same): without denoising the motion
    artefact raises those edges at 80; with the demo's default denoising (confounds: standard,
    censor_fd: 0.5) the difference is gone, within the sampling noise of a mean over four pairs
    (about 0.015)."""
    from legibility import connectivity

    labels, network = prepared[1]  # the generator's own parcellation: each region's network is known
    i, j = np.triu_indices(len(network), k=1)
    between = network[i] != network[j]
    settings = demo_config["connectivity"]
    assert settings["confounds"] == "standard" and settings["censor_fd"] == 0.5
    differences = {"none": [], "default": []}
    for subject in ("001", "002", "003", "004"):
        strength = {}
        for age in (46.0, 80.0):
            row = SimpleNamespace(subject=subject, sex="F", age=age, hypertension="no")
            paths = {"bold": tmp_path / f"{subject}_{age:.0f}_bold.nii.gz", "confounds": tmp_path / f"{subject}_{age:.0f}.tsv"}
            demo.make_subject(row, 11, paths, set(), prepared=prepared)
            for name, denoising in (("none", {"confounds": [], "censor_fd": None}), ("default", {})):
                signals = connectivity.time_series(paths["bold"], labels, {**settings, **denoising}, paths["confounds"])
                strength[name, age] = connectivity.vectorise(connectivity.matrix(signals))[between].mean()
        for name in differences:
            differences[name].append(strength[name, 80.0] - strength[name, 46.0])
    assert np.mean(differences["none"]) > 0.08, differences
    assert abs(np.mean(differences["default"])) < 0.03, differences


def test_make_cohort_writes_truth_and_participants(tmp_path):
    config = validated({
        "seed": 5, "demo": {"enabled": True, "n_subjects": 12, "unstripped": 1},
        "inputs": {"root": str(tmp_path), "templates": {"t1": "sub-{subject}_T1w.nii.gz"}},
        "phenotypes": {"path": str(tmp_path / "participants.tsv"), "variables": {"age": {"type": "continuous", "block": "constitutional"}}},
        "grid": [{"targets": ["age"], "input_sets": [["t1"]]}],
    })  # fmt: skip
    the_plan = demo.plan(12, 5, 1)
    written = {the_plan["unstripped"][0]["subject"], *the_plan["subjects"][:2]}  # three T1s (what a subject is given, it gets)
    paths = {s: {"t1": tmp_path / f"sub-{s}_T1w.nii.gz"} if s in written else {} for s in the_plan["subjects"]}
    demo.make_cohort(config, paths, tmp_path / "participants.tsv", tmp_path / "truth.json")
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["subjects"] == the_plan["subjects"] and truth["unstripped"] == the_plan["unstripped"]
    assert truth["negative_control"] == "negative_control"
    assert "older subjects move more" in truth["effects"]["motion"]
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == sorted(f"sub-{s}_T1w.nii.gz" for s in written)
    assert (tmp_path / "participants.tsv").read_text().startswith("participant_id\tsex\tage")


@pytest.mark.parametrize("order", [0, 1])
def test_sampling_only_near_the_volumes_support_gives_scipys_values_to_the_bit(order):
    """The generator samples its templates only within a voxel of their non-zero box: every
    value, inside, at the edges and beyond the volume, is map_coordinates' own."""
    from scipy import ndimage

    draw = np.random.default_rng(order)
    volume = np.zeros((20, 24, 18), np.float32)
    volume[4:15, 6:20, 3:12] = draw.random((11, 14, 9), np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20, -24, -18]
    world = draw.uniform(-30, 30, (3, 7, 9, 11)).astype(np.float32)  # far beyond it, too
    edges = np.array([[-13.0, 9, 0, 0, 0, 0], [0, 0, -13, 15, 0, 0], [0, 0, 0, 0, -13, 5]])  # half a voxel beyond the box's faces
    world[:, 0, 0, :6] = edges
    sampled = demo._sample(volume, world, affine, order=order)
    voxels = np.linalg.inv(affine)[:3, :3].astype(np.float32) @ world.reshape(3, -1) + np.linalg.inv(affine)[:3, 3:].astype(np.float32)
    reference = ndimage.map_coordinates(volume, voxels, order=order, mode="constant", prefilter=False).reshape(world.shape[1:])
    assert sampled.dtype == reference.dtype and sampled.tobytes() == reference.tobytes()
    assert 0 < np.count_nonzero(sampled) < sampled.size
