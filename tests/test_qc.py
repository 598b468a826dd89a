"""QC never raises on bad input; it fails the image and says what is wrong."""

import gzip

import nibabel as nib
import pandas as pd
import numpy as np
import pytest

from conftest import brain_image
from legibility import qc

THRESHOLDS = {
    "voxel_size_mm": [0.4, 3.5], "max_anisotropy": 3.0, "min_fov_mm": 100,
    "min_volume_ml": 150, "max_outside_fraction": 0.05,
    "bold_min_volumes": 50, "bold_min_coverage": 0.9, "bold_max_mean_fd": 0.5,
}  # fmt: skip


def check(path):
    return qc.check_structural(path, THRESHOLDS)


def test_a_clean_brain_passes(tmp_image):
    row = check(tmp_image(brain_image()))
    assert row["status"] == "pass", row["reasons"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nib.Nifti1Image(np.zeros((72, 88, 72), np.float32), np.diag([2.5, 2.5, 2.5, 1])), "empty"),
        (lambda: nib.Nifti1Image(np.ones((20, 20, 20, 5), np.float32), np.eye(4)), "expected a 3D image"),
        (lambda: nib.Nifti1Image(brain_image().get_fdata().astype(np.float32), np.diag([1.0, 1.0, 5.0, 1])), "voxels 5.0x longer"),
    ],
    ids=["all-zero", "4D", "anisotropic"],
)
def test_bad_images_fail_with_a_reason(tmp_image, make, message):
    row = check(tmp_image(make()))
    assert row["status"] == "fail"
    assert message in row["reasons"]


def test_nan_voxels_fail(tmp_image):
    data = brain_image().get_fdata().astype(np.float32)
    data[30, 30, 30] = np.nan
    row = check(tmp_image(nib.Nifti1Image(data, np.diag([2.5, 2.5, 2.5, 1]))))
    assert row["status"] == "fail" and "1 voxels are NaN or infinite" in row["reasons"]


def test_truncated_and_non_nifti_files_fail(tmp_path, tmp_image):
    good = tmp_image(brain_image())
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    row = check(truncated)
    assert row["status"] == "fail" and "truncated" in row["reasons"]
    text = tmp_path / "notes.nii.gz"
    text.write_bytes(gzip.compress(b"this is not an image"))
    row = check(text)
    assert row["status"] == "fail" and "not a readable NIfTI" in row["reasons"]


def head_with_scalp():
    """The test brain with a bright shell some 8-15 mm outside it, and the brain's mask."""
    brain = brain_image()
    data = brain.get_fdata()
    grid = np.indices(data.shape, dtype=float)
    centre = (np.array(data.shape) - 1) / 2
    radius = np.sqrt(sum(((g - c) * 2.5 / r) ** 2 for g, c, r in zip(grid, centre, (60, 75, 58))))
    scalp = (radius > 1.13) & (radius < 1.22)
    head = nib.Nifti1Image(np.where(scalp, 800.0, data).astype(np.float32), brain.affine)
    return head, nib.Nifti1Image((radius <= 1.02).astype(np.uint8), brain.affine)


def test_signal_outside_the_learned_brain_mask_fails_a_head(tmp_image):
    """Given its subject's learned brain mask (here the true one; deepbet's in
    tests/test_skullstrip.py), a head with scalp fails and its brain passes, whatever the
    mask's grid: a 5 mm LPS mask carried through world coordinates counts the same."""
    from nilearn.image import resample_img

    head, mask = head_with_scalp()
    coarse = resample_img(mask, target_affine=np.diag([-5.0, -5.0, 5.0]), interpolation="nearest", force_resample=True, copy_header=True)
    for learned in (tmp_image(mask, "learned.nii.gz"), tmp_image(coarse, "learned_coarse.nii.gz")):
        row = qc.check_structural(tmp_image(head, "head.nii.gz"), THRESHOLDS, brain=learned)
        assert row["status"] == "fail" and "outside the brain" in row["reasons"]
        assert row["outside_fraction"] > 0.2
        row = qc.check_structural(tmp_image(brain_image(), "brain.nii.gz"), THRESHOLDS, brain=learned)
        assert row["status"] == "pass" and row["outside_fraction"] < 0.01, row["reasons"]


def test_a_head_with_its_brain_mask_passes_whatever_the_masks_grid(tmp_image):
    """fMRIPrep ships heads with a desc-brain_mask; one mask may serve images on other grids
    (here 5 mm and LPS), as long as they are in the same space."""
    from nilearn.image import resample_img

    head, mask = head_with_scalp()
    head_path = tmp_image(head, "head.nii.gz")
    brain = check(tmp_image(brain_image(), "brain.nii.gz"))
    row = qc.check_structural(head_path, THRESHOLDS, tmp_image(mask, "mask.nii.gz"))
    assert row["status"] == "pass", row["reasons"]
    assert row["volume_ml"] == pytest.approx(brain["volume_ml"], rel=0.02)
    coarse = resample_img(mask, target_affine=np.diag([-5.0, -5.0, 5.0]), interpolation="nearest", force_resample=True, copy_header=True)
    row = qc.check_structural(head_path, THRESHOLDS, tmp_image(coarse, "coarse_mask.nii.gz"))
    assert row["status"] == "pass", row["reasons"]
    assert row["volume_ml"] == pytest.approx(brain["volume_ml"], rel=0.1)


def test_a_missing_or_empty_mask_fails_the_image_and_is_named(tmp_path, tmp_image):
    head, mask = head_with_scalp()
    head_path = tmp_image(head, "head.nii.gz")
    missing = tmp_path / "sub-01_desc-brain_mask.nii.gz"
    row = qc.check_structural(head_path, THRESHOLDS, missing)
    assert row["status"] == "fail" and f"brain mask {missing}" in row["reasons"]
    empty = tmp_image(nib.Nifti1Image(np.zeros(mask.shape, np.uint8), mask.affine), "empty.nii.gz")
    row = qc.check_structural(head_path, THRESHOLDS, empty)
    assert row["status"] == "fail" and "is empty" in row["reasons"]


def test_orientation_does_not_change_the_verdict(tmp_image):
    brain = brain_image()
    lps = nib.Nifti1Image(brain.get_fdata()[::-1, ::-1].astype(np.float32), np.diag([-2.5, -2.5, 2.5, 1]) @ np.eye(4))
    ras, flipped = check(tmp_image(brain, "ras.nii.gz")), check(tmp_image(lps, "lps.nii.gz"))
    assert flipped["orientation"] == "LPS"
    assert flipped["status"] == ras["status"] == "pass"
    assert flipped["volume_ml"] == ras["volume_ml"]


def test_subject_rows_list_missing_modalities(tmp_image):
    rows = qc.check_subject("01", {"t1": tmp_image(brain_image())}, ["t1", "flair"], THRESHOLDS)
    assert [r["modality"] for r in rows] == ["t1", "flair"]
    assert rows[1]["status"] == "fail" and "no flair image" in rows[1]["reasons"]


def test_bold_checks(tmp_image):
    from legibility import template

    mni = template.mni152(2)
    brain, affine = mni["brain"][::3, ::3, ::3], mni["affine"] @ np.diag([3, 3, 3, 1])  # 6 mm voxels
    series = np.repeat(brain[..., None], 60, axis=3) * 100.0
    series += np.random.default_rng(0).normal(0, 1, series.shape) * brain[..., None]
    good = nib.Nifti1Image(series.astype(np.float32), affine)
    good.header.set_zooms((6.0, 6.0, 6.0, 2.0))
    assert qc.check_bold(tmp_image(good, "bold.nii.gz"), THRESHOLDS)["status"] == "pass"
    short = nib.Nifti1Image(series[..., :10].astype(np.float32), affine)
    short.header.set_zooms((6.0, 6.0, 6.0, 0.0))
    row = qc.check_bold(tmp_image(short, "short.nii.gz"), THRESHOLDS)
    assert "10 volumes" in row["reasons"] and "repetition time missing" in row["reasons"]
    cropped = series.copy()
    cropped[:, :, 17:] = 0  # top of the brain outside the field of view
    row = qc.check_bold(tmp_image(nib.Nifti1Image(cropped.astype(np.float32), affine), "crop.nii.gz"), THRESHOLDS)
    assert row["status"] == "fail" and "covers" in row["reasons"]


def test_framewise_displacement_follows_power_2012(tmp_path):
    table = pd.DataFrame({"trans_x": [0, 0.1, 0.1], "trans_y": [0, 0, -0.2], "trans_z": 0.0,
                          "rot_x": [0, 0.002, 0.002], "rot_y": 0.0, "rot_z": 0.0})  # fmt: skip
    table.to_csv(tmp_path / "motion.tsv", sep="\t", index=False)
    assert np.allclose(qc.framewise_displacement(tmp_path / "motion.tsv"), [0, 0.1 + 50 * 0.002, 0.2])
    # fMRIPrep's own column wins; its first value is n/a
    pd.DataFrame({"framewise_displacement": ["n/a", 0.3]}).to_csv(tmp_path / "fd.tsv", sep="\t", index=False)
    assert np.allclose(qc.framewise_displacement(tmp_path / "fd.tsv"), [0, 0.3])
    pd.DataFrame({"csf": [1, 2]}).to_csv(tmp_path / "none.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="neither framewise_displacement nor the motion columns"):
        qc.framewise_displacement(tmp_path / "none.tsv")


def test_header_without_orientation_fails(tmp_image):
    image = nib.Nifti1Image(brain_image().get_fdata().astype(np.float32), None)  # no affine: codes stay 0
    image.header.set_zooms((2.5, 2.5, 2.5))
    row = check(tmp_image(image))
    assert row["status"] == "fail" and "no orientation in the header" in row["reasons"]


def test_montage_of_a_failed_image(tmp_path, tmp_image):
    rows = qc.run_shard({"01": {"t1": str(tmp_image(nib.Nifti1Image(np.zeros((72, 88, 72), np.float32), np.diag([2.5] * 3 + [1]))))}},
                        ["t1", "flair"], THRESHOLDS, montage_dir=tmp_path / "montages")  # fmt: skip
    assert list(rows["status"]) == ["fail", "fail"]
    assert sorted(p.name for p in (tmp_path / "montages").iterdir()) == ["sub-01_t1.png"]  # a missing file has no picture


@pytest.mark.parametrize("zooms", [(1.0, 1.0, 1.0), (0.8, 1.5, 3.2)])
def test_the_outside_fraction_equals_scipys_distance_over_the_whole_image(zooms):
    """Distances are computed near the mask only: the same share as scipy's distance transform
    over the whole image, masks touching the image's edge included."""
    from scipy import ndimage

    draw = np.random.default_rng(1)
    for _ in range(6):
        data = draw.gamma(2.0, 100.0, (40, 48, 36))
        inside = np.zeros(data.shape, bool)  # a blob or two, inside the image or at its edge
        for centre in draw.integers(0, data.shape, (int(draw.integers(1, 3)), 3)):
            inside[tuple(slice(max(c - 4, 0), c + 5) for c in centre)] = True
        inside = ndimage.binary_dilation(inside, iterations=2)
        expected = np.where(data > 50, data, 0)[ndimage.distance_transform_edt(~inside, sampling=zooms) > qc.MARGIN_MM].sum() / np.where(data > 50, data, 0).sum()
        assert qc.outside_fraction(data, data > 50, inside, zooms) == pytest.approx(expected, rel=1e-12)
    assert qc.outside_fraction(data, data > 50, np.zeros_like(inside), zooms) == 1.0
