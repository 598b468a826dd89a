"""Bad input through the real workflow, on an fMRIPrep-style BIDS folder: each problem is named
with its file, the subject is excluded and listed, the other subjects go on, and nothing already
computed is lost. Its T1 and FLAIR images keep the scalp, as fMRIPrep's do, and pass QC thanks
to the brain mask beside them (one mask for both)."""

import gzip
import shutil
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, planned_jobs, run_snakemake
from test_reruns import ANALYSES
from legibility import demo, qc
from legibility.io import read_tsv

pytestmark = pytest.mark.workflow
TEMPLATES = {
    "t1": "sub-{subject}/anat/sub-{subject}_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz",
    "flair": "sub-{subject}/anat/sub-{subject}_space-MNI152NLin2009cAsym_desc-preproc_FLAIR.nii.gz",
    "dwi": "sub-{subject}/dwi/sub-{subject}_param-MD_dwimap.nii.gz",
    "bold": "sub-{subject}/func/sub-{subject}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
    "confounds": "sub-{subject}/func/sub-{subject}_task-rest_desc-confounds_timeseries.tsv",
}
MASK = "sub-{subject}/anat/sub-{subject}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
# (subject, modality) -> what QC must say; "06" is LPS, which is fine and must pass
DEFECTS = {
    ("01", "t1"): "truncated",
    ("02", "flair"): "not a readable NIfTI",
    ("03", "t1"): "expected a 3D image",
    ("04", "dwi"): "image is empty",
    ("05", "t1"): "NaN or infinite",
    ("07", "flair"): "longer on one axis",
    ("08", "t1"): "brain mask",  # its mask is missing: T1 and FLAIR both fail
    ("08", "flair"): "brain mask",
    ("09", "flair"): "no flair image found",
    ("..", "t1"): "not a BIDS label",
}


def path(root, subject, modality):
    return root / (MASK if modality == "mask" else TEMPLATES[modality]).format(subject=subject)


def write_subject(root, subject, row, prepared):
    """fMRIPrep-style: T1 and FLAIR with scalp, and the T1's brain mask."""
    paths = {m: path(root, subject, m) for m in TEMPLATES} | {"t1_mask": path(root, subject, "mask")}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    demo.make_subject(SimpleNamespace(**{**row, "subject": subject}), 3, paths, {(subject, "t1"), (subject, "flair")}, prepared=prepared)


def corrupt(root):
    t1 = path(root, "01", "t1")
    t1.write_bytes(t1.read_bytes()[: t1.stat().st_size // 2])
    path(root, "02", "flair").write_bytes(gzip.compress(b"FLAIR export failed\n"))
    image = nib.load(path(root, "03", "t1"))
    nib.save(nib.Nifti1Image(np.stack([image.get_fdata()] * 2, axis=3).astype(np.float32), image.affine), path(root, "03", "t1"))
    image = nib.load(path(root, "04", "dwi"))
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), path(root, "04", "dwi"))
    image = nib.load(path(root, "05", "t1"))
    data = image.get_fdata().astype(np.float32)
    x, y, z = np.array(data.shape) // 2
    data[x : x + 2, y : y + 2, z : z + 2] = np.nan  # in the brain (outside, its mask would hide them)
    nib.save(nib.Nifti1Image(data, image.affine), path(root, "05", "t1"))
    image = nib.load(path(root, "06", "t1"))
    lps = nib.orientations.ornt_transform(nib.io_orientation(image.affine), nib.orientations.axcodes2ornt("LPS"))
    nib.save(image.as_reoriented(lps), path(root, "06", "t1"))
    image = nib.load(path(root, "07", "flair"))
    nib.save(nib.Nifti1Image(image.get_fdata().astype(np.float32), np.diag([1.0, 1.0, 5.0, 1.0])), path(root, "07", "flair"))
    path(root, "08", "mask").unlink()
    path(root, "09", "flair").unlink()
    bad_label = root / "sub-.." / "anat"
    bad_label.mkdir(parents=True)
    shutil.copy(path(root, "10", "t1"), bad_label / TEMPLATES["t1"].format(subject="..").split("/")[-1])


def snakemake(workdir, *args, check=True):
    return run_snakemake(workdir, *args, configfile=workdir / "study.yaml", check=check)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    root = workdir / "bids"
    subjects = [f"{i:02d}" for i in range(1, 17)]
    table = demo.phenotypes(subjects, seed=3)
    table.to_csv(workdir / "participants.tsv", sep="\t", index=False)
    rows = table.assign(subject=subjects).replace("n/a", np.nan).set_index("subject")
    prepared = demo._prepared_template()
    for subject in subjects:
        write_subject(root, subject, rows.loc[subject].to_dict(), prepared)
    corrupt(root)
    config = {
        "inputs": {"root": str(root), "templates": TEMPLATES, "masks": {"t1": MASK, "flair": MASK}},
        "phenotypes": {"path": str(workdir / "participants.tsv"), "variables": {"sex": {"type": "binary", "block": "constitutional", "levels": ["F", "M"]}}},
        "shards": 2,
        "registration": {"levels_mm": [8]},  # quick: these tests are not about its accuracy
        "skullstrip": {"input_size": 160, "threads": 1},  # quick (Dice 0.965 with true brains): not about the masks' accuracy
        "preprocess": {"resolutions": [64]},
        "augment": {"copies": 1},
        "split": {"scheme": "holdout"},
        "atlas": {"source": "derived", "n_regions": 16},
        "connectivity": {"drop_volumes": 2},
        "training": {"epochs": 2, "patience": 2, "threads": 1, "workers": 0, "gpu": 0},
        "model": {"channels": [4, 8], "connectivity_hidden": [8], "metadata_hidden": [8], "head_hidden": 8},
        "grid": [{"targets": ["sex"], "input_sets": [["t1"], ["flair"], ["connectivity"]]}],
    }  # fmt: skip
    (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(ROOT / "config", workdir / "config")
    snakemake(workdir, "--omit-from", *ANALYSES)  # they read the grid's tables, whatever the input was
    return workdir


def test_each_problem_is_named_with_its_file(study):
    table = read_tsv(study / "results" / "qc.tsv").set_index(["subject", "modality"])
    failed = set(table.index[table.status == "fail"])
    assert failed == set(DEFECTS)
    for (subject, modality), message in DEFECTS.items():
        row = table.loc[(subject, modality)]
        assert message in row.reasons, (subject, row.reasons)
        if subject != "09":  # a missing file has no path to name
            assert row.path.endswith(TEMPLATES[modality].format(subject=subject))
    assert str(path(study / "bids", "08", "mask")) in table.loc[("08", "t1"), "reasons"]
    assert table.loc[("06", "t1"), "status"] == "pass" and table.loc[("06", "t1"), "orientation"] == "LPS"
    log = (study / "logs" / "qc_table.log").read_text()
    assert "sub-01 t1" in log and str(path(study / "bids", "01", "t1")) in log


def test_images_with_scalp_pass_qc_thanks_to_their_mask(study):
    table = read_tsv(study / "results" / "qc.tsv")
    structural = table[table.modality.isin(["t1", "flair"]) & ~table.set_index(["subject", "modality"]).index.isin(list(DEFECTS))]
    assert len(structural) == 24 and (structural.status == "pass").all()  # 32 T1 and FLAIR, 8 broken
    assert all(m == str(path(study / "bids", s, "mask")) for s, m in zip(structural.subject, structural["mask"]))
    thresholds = yaml.safe_load((study / "results" / "config.yaml").read_text())["qc"]
    for row in structural[:4].itertuples():  # without the mask, each keeps its scalp outside deepbet's
        assert "skull" in qc.check_structural(row.path, thresholds, brain=study / row.brain_mask)["reasons"]
    sidecar = next((study / "results" / "preprocessed").rglob("*_T1w.json")).read_text()
    assert "desc-brain_mask" in sidecar  # the mask is among the derivative's sources
    description = yaml.safe_load((study / "results" / "preprocessed" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "legibility"


def test_bad_subjects_are_excluded_and_listed_others_go_on(study):
    splits = read_tsv(study / "results" / "splits.tsv").set_index("subject")
    excluded = set(splits.index[splits.part == "excluded"])
    # sex models read t1, flair and BOLD: a DWI problem (04) does not exclude from them
    assert excluded == {"01", "02", "03", "05", "07", "08", "09"}
    assert all(splits.loc[s, "reason"].startswith("failed QC") for s in excluded)
    assert ".." not in splits.index  # never read, never used in a path
    performance = read_tsv(study / "results" / "performance.tsv")
    assert len(performance) == 3 and (performance.n_test > 0).all()
    montages = {p.name for p in (study / "results" / "qc" / "montages").rglob("*.png")}
    assert montages == {f"sub-{s}_{m}.png" for s, m in DEFECTS if s not in ("09", "..")}
    assert (study / "results" / "qc" / "qc_metrics.png").stat().st_size > 0


def test_new_subjects_rerun_only_their_shard_and_lose_nothing(study):
    """Two subjects join one shard: a good one (a copy of sub-12's values) and one with a 3D BOLD.
    Only their shard's per-subject work reruns (QC, preprocessing, region means, connectivity and
    augmentation); the split is drawn shard by shard, so no one else moves, and the other shard's
    files keep their timestamps (run up to the split); the models are planned to rerun, their
    training data having changed."""
    from legibility.shards import shard_of

    good, bad = [s for s in map(str, range(21, 60)) if shard_of(s, 2) == shard_of("21", 2)][:2]
    shard, other = f"{shard_of(good, 2):03d}", f"{1 - shard_of(good, 2):03d}"
    values = read_tsv(study / "participants.tsv").assign(subject=lambda t: t.participant_id.str[4:]).set_index("subject")
    participants = pd.read_csv(study / "participants.tsv", sep="\t", dtype=str)
    for new, like in ((good, "12"), (bad, "11")):
        write_subject(study / "bids", new, values.loc[like].replace("n/a", np.nan).to_dict(), demo._prepared_template())
        participants = pd.concat([participants, participants[participants.participant_id == f"sub-{like}"].assign(participant_id=f"sub-{new}")])
    participants.to_csv(study / "participants.tsv", sep="\t", index=False)
    bold = path(study / "bids", bad, "bold")
    image = nib.load(bold)
    nib.save(nib.Nifti1Image(image.get_fdata()[..., 0].astype(np.float32), image.affine), bold)  # 3D, not a series

    jobs = planned_jobs(study, study / "study.yaml")
    for rule in ("qc_shard", "preprocess_shard", "region_means_shard", "connectivity_shard"):
        assert jobs[rule] == {f"shard={shard}"}, rule
    assert jobs["augment_shard"] == {f"shard={shard}, res=64"}
    assert jobs["train"] == {f"model={m}, fold=holdout" for m in ("sex__t1__64", "sex__flair__64", "sex__connectivity")}
    per_subject = [study / "results" / stage for stage in ("qc", "preprocessed", "regions", "connectivity", "augment")]
    kept = {p: p.stat().st_mtime_ns for folder in per_subject for p in folder.rglob(f"shard-{other}*") if p.is_file()}
    assert len(kept) >= 6
    snakemake(study, "results/splits.tsv")  # the rest of the rerun is planned above; this test reads QC and the split
    qc = read_tsv(study / "results" / "qc.tsv").set_index(["subject", "modality"])
    assert "expected a 4D image" in qc.loc[(bad, "bold"), "reasons"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    splits = read_tsv(study / "results" / "splits.tsv").set_index("subject")
    assert splits.loc[bad, "part"] == "excluded" and splits.loc[good, "part"] in ("train", "val", "test")
    assert int(splits.loc[good, "shard"]) == int(shard)  # where to find, or force, a subject's work


def test_phenotype_problems_stop_the_run_before_any_job(study, tmp_path):
    table = pd.read_csv(study / "participants.tsv", sep="\t", dtype=str)
    table.loc[2, "sex"] = "male"
    table = pd.concat([table, table.iloc[[4]]])
    broken = tmp_path / "participants.tsv"
    table.to_csv(broken, sep="\t", index=False)
    config = yaml.safe_load((study / "study.yaml").read_text())
    config["phenotypes"]["path"] = str(broken)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"{broken}, row 4, column 'sex': 'male' is not one of ['F', 'M']" in message
    assert "appears more than once" in message
    assert not (tmp_path / "results").exists()
