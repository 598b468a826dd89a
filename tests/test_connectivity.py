"""Connectivity equals nilearn's masker + ConnectivityMeasure; missing regions are masked."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.connectome import ConnectivityMeasure
from nilearn.maskers import NiftiLabelsMasker

from legibility import atlas, connectivity

SETTINGS = {"drop_volumes": 3, "detrend": True, "high_pass": 0.01, "low_pass": 0.1, "standardize": True,
            "kind": "correlation", "fisher_z": True, "confounds": [], "censor_fd": None}  # fmt: skip


@pytest.fixture
def on_disk(tmp_path):
    def save(image, name="bold.nii.gz"):
        nib.save(image, tmp_path / name)
        return tmp_path / name

    return save


def toy(n_volumes=80, seed=0):
    """A 4-region atlas and a BOLD series whose regions 1 and 2 share a signal."""
    draw = np.random.default_rng(seed)
    labels = np.zeros((12, 12, 8), dtype=np.int16)
    labels[1:5, 1:5, 1:7], labels[7:11, 1:5, 1:7], labels[1:5, 7:11, 1:7], labels[7:11, 7:11, 1:7] = 1, 2, 3, 4
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    shared = draw.normal(size=n_volumes)
    data = draw.normal(size=(*labels.shape, n_volumes)) + 100
    data[labels == 1] += 2 * shared
    data[labels == 2] += 2 * shared
    bold = nib.Nifti1Image(data.astype(np.float32), affine)
    bold.header.set_zooms((3.0, 3.0, 3.0, 2.0))
    return bold, nib.Nifti1Image(labels, affine)


def nilearn_reference(bold, labels, settings, confounds=None, sample_mask=None):
    """What nilearn's masker and ConnectivityMeasure give with the same settings."""
    masker = NiftiLabelsMasker(labels_img=labels, detrend=settings["detrend"], standardize="zscore_sample",
                               high_pass=settings["high_pass"], low_pass=settings["low_pass"], t_r=2.0)  # fmt: skip
    drop = settings["drop_volumes"]
    trimmed = nib.Nifti1Image(bold.get_fdata()[..., drop:], bold.affine, bold.header)
    signals = masker.fit_transform(trimmed, confounds=confounds, sample_mask=sample_mask)
    square = ConnectivityMeasure(kind=settings["kind"], standardize=False).fit_transform([signals])[0]
    np.fill_diagonal(square, 0)
    return signals, square


@pytest.mark.parametrize("block", [32, 7])  # blocks of volumes read at a time: the same numbers
@pytest.mark.parametrize("kind", ["correlation", "partial correlation"])
def test_equals_nilearn_with_the_same_settings(on_disk, monkeypatch, block, kind):
    monkeypatch.setattr(connectivity, "BLOCK_VOLUMES", block)
    bold, labels = toy()
    settings = {**SETTINGS, "kind": kind}
    ours = connectivity.time_series(on_disk(bold), labels, settings)
    signals, square = nilearn_reference(bold, labels, settings)
    assert np.abs(ours - signals).max() <= 1e-5
    assert np.abs(connectivity.matrix(ours, kind, fisher_z=False) - square).max() <= 1e-5
    if kind == "correlation":
        assert square[0, 1] > 0.5 and abs(square[2, 3]) < 0.5  # the shared signal shows


def test_confound_regression_and_censoring_equal_nilearn(on_disk, tmp_path):
    bold, labels = toy(n_volumes=90)
    draw = np.random.default_rng(3)
    steps = np.hstack([draw.normal(0, 0.05, (90, 3)), draw.normal(0, 0.0005, (90, 3))])  # mm, radians
    motion = pd.DataFrame(np.cumsum(steps, axis=0), columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    motion.iloc[40:43, 0] += 3.0  # a jerk: high framewise displacement around volume 40
    motion.to_csv(tmp_path / "confounds.tsv", sep="\t", index=False)
    settings = {**SETTINGS, "confounds": ["trans_x", "trans_y", "trans_z"], "censor_fd": 0.5}
    ours = connectivity.time_series(on_disk(bold), labels, settings, tmp_path / "confounds.tsv")
    from legibility.qc import framewise_displacement

    keep = np.flatnonzero(framewise_displacement(tmp_path / "confounds.tsv")[3:] <= 0.5)
    assert len(ours) == len(keep) < 87  # the jerk's volumes are censored
    signals, _ = nilearn_reference(bold, labels, settings, motion.iloc[3:, :3].to_numpy(), keep)
    assert np.abs(ours - signals).max() <= 1e-5


def test_fisher_z_and_vector_order(on_disk):
    bold, labels = toy()
    signals = connectivity.time_series(on_disk(bold), labels, SETTINGS)
    r = connectivity.matrix(signals, fisher_z=False)
    z = connectivity.matrix(signals, fisher_z=True)
    assert np.allclose(z, np.arctanh(r))
    vector = connectivity.vectorise(z)
    assert len(vector) == connectivity.n_edges(4) == 6
    assert vector[0] == z[0, 1] and vector[-1] == z[2, 3]
    assert np.allclose(connectivity.square(vector), z)


def test_a_region_out_of_view_is_masked_not_zero(on_disk):
    bold, labels = toy()
    data = labels.get_fdata().astype(np.int16)
    data[0, 0, 0] = 5  # region 5 lies where the BOLD series is empty
    bold_data = bold.get_fdata()
    bold_data[0, 0, 0] = 0
    signals = connectivity.time_series(on_disk(nib.Nifti1Image(bold_data, bold.affine, bold.header)), nib.Nifti1Image(data, labels.affine), SETTINGS)
    square = connectivity.matrix(signals)
    assert signals.shape[1] == 5
    assert np.isnan(square[4, :4]).all() and np.isnan(square[:4, 4]).all()
    assert np.isfinite(square[:4, :4]).all()


def test_tangent_mean_comes_from_training_subjects_only():
    draw = np.random.default_rng(0)
    series = [draw.normal(size=(60, 5)) @ np.linalg.cholesky(np.eye(5) * (1 + i) + 0.3) .T for i in range(6)]
    train, test = series[:4], series[4:]
    vectors = connectivity.tangent(train, series)
    tampered = connectivity.tangent(train, series[:4] + [s * 5 + draw.normal(size=s.shape) for s in test])
    # what the test subjects look like changes nothing for the training subjects (no leak) ...
    assert np.allclose(np.array(vectors[:4]), np.array(tampered[:4]))
    # ... while the reference really is the training subjects' mean
    assert not np.allclose(np.array(connectivity.tangent(series, series)[:4]), np.array(vectors[:4]))


def test_precomputed_connectomes_are_read_and_checked(tmp_path):
    square = np.array([[1.0, 0.2, 0.3], [0.2, 1.0, 0.4], [0.3, 0.4, 1.0]])
    np.savetxt(tmp_path / "m.txt", square)
    np.save(tmp_path / "v.npy", np.array([0.2, 0.3, 0.4]))
    assert np.allclose(connectivity.read_connectome(tmp_path / "m.txt"), [0.2, 0.3, 0.4])
    assert np.allclose(connectivity.read_connectome(tmp_path / "v.npy"), [0.2, 0.3, 0.4])
    np.savetxt(tmp_path / "bad.txt", square[:2])
    with pytest.raises(ValueError, match="neither a square matrix nor an upper triangle"):
        connectivity.read_connectome(tmp_path / "bad.txt")
    from legibility.qc import check_connectome

    assert check_connectome(tmp_path / "bad.txt")["status"] == "fail"


def test_derived_atlas_is_symmetric_and_deterministic():
    first, table = atlas.derive(8)
    again, _ = atlas.derive(8)
    assert np.array_equal(first.get_fdata(), again.get_fdata())
    assert list(table["name"]) == [f"{s}_0{i}" for s in "LR" for i in range(1, 5)]
    sizes = np.bincount(first.get_fdata().astype(int).ravel())[1:]
    assert sizes.max() / sizes.min() < 1.1  # equal-size regions
    left, right = table[table.name.str.startswith("L")], table[table.name.str.startswith("R")]
    assert np.allclose(left[["y", "z"]].to_numpy(), right[["y", "z"]].to_numpy(), atol=3)
    assert np.allclose(left["x"].to_numpy(), -right["x"].to_numpy(), atol=3)


def test_a_users_atlas_file_is_checked(tmp_path):
    image = nib.Nifti1Image(np.array([[[0, 1], [2, 2]]], dtype=np.int16), np.eye(4))
    nib.save(image, tmp_path / "atlas.nii.gz")
    pd.DataFrame({"index": [1, 2, 3], "name": ["a", "b", "c"]}).to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"labels \[3\] have no voxel"):
        atlas.load(tmp_path / "atlas.nii.gz", tmp_path / "labels.tsv")


@pytest.mark.parametrize("name, regions", [("aal", 120), ("aicha", 384), ("desikan_killiany", 112)])
def test_packaged_atlases_load_without_download(name, regions):
    image, table = atlas.packaged(name)
    assert len(table) == regions and (table["index"] > 0).all()
    assert set(table["index"]) == set(np.unique(image.get_fdata()).astype(int)) - {0}
    # in MNI space, whatever its voxel order (Desikan-Killiany comes as FreeSurfer's LIA)
    world = nib.affines.apply_affine(image.affine, np.argwhere(image.get_fdata() > 0))
    assert abs(world[:, 0].mean()) < 5 and world.min(axis=0)[0] > -80 and world.max(axis=0)[2] < 90


def test_cohort_tangent_vectors_use_the_training_split(tmp_path):
    draw = np.random.default_rng(1)
    series = {f"{i:02d}": draw.normal(size=(50, 4)) * (1 + i / 5) for i in range(8)}
    split = {s: ("train" if i < 5 else "test") for i, s in enumerate(series)}
    np.savez(tmp_path / "a.npz", **dict(list(series.items())[:4]))
    np.savez(tmp_path / "b.npz", **dict(list(series.items())[4:]))
    subjects, vectors = connectivity.tangent_vectors([tmp_path / "a.npz", tmp_path / "b.npz"], split)
    assert subjects == sorted(series)
    changed = {s: (v * 3 if split[s] == "test" else v) for s, v in series.items()}
    np.savez(tmp_path / "b.npz", **dict(list(changed.items())[4:]))
    _, again = connectivity.tangent_vectors([tmp_path / "a.npz", tmp_path / "b.npz"], split)
    assert np.allclose(np.array(vectors[:5]), np.array(again[:5]))  # the reference never saw a test subject
    with pytest.raises(ValueError, match="no training subject"):
        connectivity.tangent_vectors([tmp_path / "a.npz"], {s: "test" for s in series})


# ----------------------------------------------------------------------------- denoising

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def schema_defaults():
    """The connectivity settings a config that sets none gets."""
    from conftest import validated

    return validated({
        "inputs": {"root": ".", "templates": {"bold": "sub-{subject}_bold.nii.gz", "confounds": "sub-{subject}_confounds.tsv"}},
        "phenotypes": {"path": "participants.tsv", "variables": {"age": {"type": "continuous", "block": "constitutional"}}},
        "grid": [{"targets": ["age"], "input_sets": [["connectivity"]]}],
    })["connectivity"]  # fmt: skip


def random_motion(draw, n_volumes):
    """(volumes x 6) head motion: random walks in mm and radians."""
    return np.cumsum(np.hstack([draw.normal(0, 0.05, (n_volumes, 3)), draw.normal(0, 0.0005, (n_volumes, 3))]), axis=0)


def fmriprep_confounds(motion, draw):
    """A confounds table with the columns fMRIPrep writes: the six motion parameters, their
    backward differences (first row n/a) and squares, framewise displacement, tissue and global
    signals with their expansions, cosines, CompCor and DVARS."""
    table = {}
    for name in ["global_signal", "csf", "white_matter"]:
        values = draw.normal(0, 1, len(motion))
        table |= {name: values, f"{name}_derivative1": np.r_[np.nan, np.diff(values)], f"{name}_power2": values**2}
    steps = np.abs(np.diff(motion, axis=0)) * np.array([1, 1, 1, 50, 50, 50])
    table |= {"std_dvars": np.r_[np.nan, draw.normal(1, 0.1, len(motion) - 1)], "framewise_displacement": np.r_[np.nan, steps.sum(axis=1)]}
    table |= {f"t_comp_cor_0{k}": draw.normal(0, 1, len(motion)) for k in range(3)} | {f"a_comp_cor_0{k}": draw.normal(0, 1, len(motion)) for k in range(3)}
    table |= {f"cosine0{k}": np.cos(np.pi * (k + 1) * (np.arange(len(motion)) + 0.5) / len(motion)) for k in range(2)}
    for name, values in zip(MOTION, motion.T):
        derivative = np.r_[np.nan, np.diff(values)]
        table |= {name: values, f"{name}_derivative1": derivative, f"{name}_derivative1_power2": derivative**2, f"{name}_power2": values**2}
    return pd.DataFrame(table)


def test_standard_confounds_are_the_columns_nilearns_load_confounds_selects(tmp_path):
    """`standard` is load_confounds(strategy=("motion", "wm_csf"), motion="full",
    wm_csf="basic") on fMRIPrep's outputs: the same columns, the same values (a derivative's
    n/a first row taken from the second; nilearn also demeans, which regression makes moot)."""
    from nilearn.interfaces.fmriprep import load_confounds

    draw = np.random.default_rng(5)
    bold = tmp_path / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(draw.normal(100, 1, (4, 4, 4, 40)).astype(np.float32), np.eye(4)), bold)
    table_path = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    fmriprep_confounds(random_motion(draw, 40), draw).to_csv(table_path, sep="\t", index=False, na_rep="n/a")
    table_path.with_suffix(".json").write_text("{}")
    theirs, sample_mask = load_confounds(str(bold), strategy=("motion", "wm_csf"), motion="full", wm_csf="basic")
    assert sorted(theirs.columns) == sorted(connectivity.STANDARD_CONFOUNDS) and len(connectivity.STANDARD_CONFOUNDS) == 26
    assert sample_mask is None
    ours, mask = connectivity.confound_regressors(table_path, {"confounds": "standard", "censor_fd": None}, drop=0)
    assert mask is None and np.isfinite(ours).all()
    np.testing.assert_allclose(ours - ours.mean(axis=0), theirs[list(connectivity.STANDARD_CONFOUNDS)].to_numpy(), atol=1e-12)


def test_a_table_without_the_standard_columns_is_named_with_what_it_lacks(tmp_path):
    pd.DataFrame(random_motion(np.random.default_rng(0), 30), columns=MOTION).to_csv(tmp_path / "confounds.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"confounds\.tsv: no confound column trans_x_derivative1, .*white_matter \(connectivity\.confounds: standard"):
        connectivity.confound_regressors(tmp_path / "confounds.tsv", {"confounds": "standard", "censor_fd": 0.5}, drop=2)


def test_default_denoising_removes_connectivity_that_motion_drives(on_disk, tmp_path):
    """Every region carries a component that is a linear mix of the six motion traces and their
    derivatives (one jerk among them); regions 1 and 2 also share a neural signal. With the
    default settings (confounds: standard, censor_fd: 0.5) every motion-driven edge's Fisher z
    lies within 3 standard errors of 0, the standard error being 1 / sqrt(volumes kept - 3); with
    no confounds table they are 10 standard errors or more away, and the neural edge stays.
    (No low-pass filter here: the standard error assumes the degrees of freedom of every volume,
    of which a 0.01-0.1 Hz band of 300 volumes at TR 2 s keeps about a third.)"""
    n_volumes = 300
    bold, labels = toy(n_volumes=n_volumes, seed=1)
    draw = np.random.default_rng(2)
    motion = random_motion(draw, n_volumes)
    motion[150, 0] += 1.0  # a jerk: volumes 150 and 151 move more than 0.5 mm
    in_mm = motion * np.array([1, 1, 1, 50, 50, 50])
    component = in_mm @ draw.normal(0, 1, 6) + np.vstack([np.zeros(6), np.diff(in_mm, axis=0)]) @ draw.normal(0, 1, 6)
    component = 12 * (component - component.mean()) / component.std()  # the neural signal: sd 2
    data = bold.get_fdata()
    for region, amplitude in zip((1, 2, 3, 4), (1.0, -0.7, 1.5, 0.8)):
        data[labels.get_fdata() == region] += amplitude * component
    series = on_disk(nib.Nifti1Image(data.astype(np.float32), bold.affine, bold.header))
    fmriprep_confounds(motion, draw).to_csv(tmp_path / "confounds.tsv", sep="\t", index=False, na_rep="n/a")
    settings = {**schema_defaults(), "low_pass": None}
    assert settings["confounds"] == "standard" and settings["censor_fd"] == 0.5
    motion_edges = np.triu_indices(4, k=1)[0] + np.triu_indices(4, k=1)[1] > 1  # all but regions 1-2

    denoised = connectivity.time_series(series, labels, settings, tmp_path / "confounds.tsv")
    kept = len(denoised)
    assert kept == n_volumes - settings["drop_volumes"] - 2  # the jerk's two volumes censored
    z = connectivity.vectorise(connectivity.matrix(denoised))
    standard_error = 1 / np.sqrt(kept - 3)
    assert (np.abs(z[motion_edges]) < 3 * standard_error).all(), z / standard_error
    assert z[0] > 0.5  # the neural coupling of regions 1 and 2 is kept

    raw = connectivity.vectorise(connectivity.matrix(connectivity.time_series(series, labels, settings, None)))
    assert (np.abs(raw[motion_edges]) > 10 / np.sqrt(n_volumes - settings["drop_volumes"] - 3)).all(), raw


def test_the_readme_says_how_signals_were_denoised_or_that_they_were_not():
    settings = schema_defaults()
    text = connectivity.readme(settings, "bold", confounds_table=True, volumes=[95, 93, np.nan])
    assert "`trans_x_derivative1_power2`" in text and "`white_matter`" in text and "26 columns" in text
    assert "exceeds 0.5 mm" in text and "median 94, fewest 93, most 95 (2 subjects" in text and "not denoised" not in text
    listed = connectivity.readme({**settings, "confounds": ["csf"], "censor_fd": None}, "bold", confounds_table=True)
    assert "1 column, `csf`" in listed and "No volume was censored" in listed
    nothing = connectivity.readme({**settings, "confounds": [], "censor_fd": None}, "bold", confounds_table=True)
    assert "not denoised" in nothing and "head motion" in nothing
    without = connectivity.readme(settings, "bold", confounds_table=False)
    assert "**The region signals were not denoised.**" in without and "head motion" in without
    assert "`confounds` template" in without and "trans_x" not in without
    provider = connectivity.readme(settings, "connectome", confounds_table=False)
    assert "data provider's" in provider and "denoised" in provider and "head motion" not in provider
    # the log's line says the same, on one line
    assert "\n" not in connectivity.NO_CONFOUNDS
    assert all(words in connectivity.NO_CONFOUNDS for words in ("inputs.templates.confounds", "not denoised", "head motion"))


def test_snakemake_says_once_that_bold_without_confounds_is_not_denoised(tmp_path):
    """A dry run of a small demo: with no confounds template the log says so, once; with one it
    says nothing."""
    import yaml

    from conftest import ROOT, run_snakemake

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config |= {"demo": {**config["demo"], "n_subjects": 12, "unstripped": 1}, "shards": 1,
               "grid": [{"targets": ["sex"], "input_sets": [["connectivity"]]}]}  # fmt: skip
    (tmp_path / "with.yaml").write_text(yaml.safe_dump(config))
    del config["inputs"]["templates"]["confounds"]
    (tmp_path / "without.yaml").write_text(yaml.safe_dump(config))
    for name, times in (("without", 1), ("with", 0)):
        result = run_snakemake(tmp_path, "-n", configfile=tmp_path / f"{name}.yaml")
        assert (result.stdout + result.stderr).count(connectivity.NO_CONFOUNDS) == times, name


@pytest.mark.parametrize("confounds, valid", [("standard", True), ([], True), (["csf", "white_matter"], True), ("full", False), ("Standard", False), (None, False)])
def test_the_schema_takes_standard_or_a_list_of_columns(confounds, valid):
    import yaml

    from conftest import ROOT, validated

    config = yaml.safe_load((ROOT / "config" / "bids.yaml").read_text())
    config["connectivity"] = {"confounds": confounds}
    if valid:
        assert validated(config)["connectivity"]["confounds"] == confounds
    else:
        with pytest.raises(Exception, match="confounds"):
            validated(config)
