"""Connectivity equals nilearn's masker + ConnectivityMeasure; missing regions are masked."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.connectome import ConnectivityMeasure
from nilearn.maskers import NiftiLabelsMasker

from legibility import atlas, connectivity

SETTINGS = {"drop_volumes": 3, "detrend": True, "high_pass": 0.01, "low_pass": 0.1, "standardize": True,
            "kind": "correlation", "fisher_z": True}  # fmt: skip


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


def test_equals_nilearn_with_the_same_settings():
    bold, labels = toy()
    ours = connectivity.matrix(connectivity.time_series(bold, labels, SETTINGS), "correlation", fisher_z=False)
    masker = NiftiLabelsMasker(labels_img=labels, detrend=True, standardize="zscore_sample", high_pass=0.01,
                               low_pass=0.1, t_r=2.0)  # fmt: skip
    signals = masker.fit_transform(nib.Nifti1Image(bold.get_fdata()[..., 3:], bold.affine, bold.header))
    theirs = ConnectivityMeasure(kind="correlation", standardize=False).fit_transform([signals])[0]
    np.fill_diagonal(theirs, 0)
    assert np.abs(ours - theirs).max() <= 1e-5
    assert ours[0, 1] > 0.5 and abs(ours[2, 3]) < 0.5  # the shared signal shows


def test_fisher_z_and_vector_order():
    bold, labels = toy()
    signals = connectivity.time_series(bold, labels, SETTINGS)
    r = connectivity.matrix(signals, fisher_z=False)
    z = connectivity.matrix(signals, fisher_z=True)
    assert np.allclose(z, np.arctanh(r))
    vector = connectivity.vectorise(z)
    assert len(vector) == connectivity.n_edges(4) == 6
    assert vector[0] == z[0, 1] and vector[-1] == z[2, 3]


def test_a_region_out_of_view_is_masked_not_zero():
    bold, labels = toy()
    data = labels.get_fdata().astype(np.int16)
    data[0, 0, 0] = 5  # region 5 lies where the BOLD series is empty
    bold_data = bold.get_fdata()
    bold_data[0, 0, 0] = 0
    signals = connectivity.time_series(nib.Nifti1Image(bold_data, bold.affine, bold.header), nib.Nifti1Image(data, labels.affine), SETTINGS)
    square = connectivity.matrix(signals)
    assert signals.shape[1] == 5
    assert np.isnan(square[4, :4]).all() and np.isnan(square[:4, 4]).all()
    assert np.isfinite(square[:4, :4]).all()


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
