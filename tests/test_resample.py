"""Preprocessed images overlay their source, in any orientation, and agree with nilearn."""

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import brain_image
from legibility import resample

SETTINGS = dict(resolutions=[128, 64], fov_mm=192, percentiles=[0.5, 99.5], method="zscore")


def landmark_image(affine, shape=(80, 96, 80)):
    """A blob 'brain' plus a bright landmark at a known world position, on any voxel grid."""
    inverse = np.linalg.inv(affine)
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)
    blob = np.exp(-(((world - [2, -10, 8]) / [55, 70, 55]) ** 2).sum(axis=1)) > 0.3
    landmark = np.exp(-((world - [20, 30, 25]) ** 2).sum(axis=1) / (2 * 4.0**2))
    data = (blob * 300 + landmark * 3000).reshape(shape).astype(np.float32)
    assert np.all(np.abs(nib.affines.apply_affine(inverse, [20, 30, 25]) - (np.array(shape) / 2)) < np.array(shape) / 2)
    return data


def peak_world(volume, affine):
    weights = np.clip(volume - np.percentile(volume, 99.9), 0, None)
    return nib.affines.apply_affine(affine, (np.argwhere(weights > 0) * weights[weights > 0][:, None]).sum(0) / weights.sum())


def grid_affine(code):
    zooms = np.array([2.0, 2.0, 2.2])
    linear = np.diag(zooms)
    if code == "LPS":
        linear = np.diag(zooms * [-1, -1, 1])
    if code == "oblique":
        linear = Rotation.from_euler("xyz", [12, -8, 20], degrees=True).as_matrix() @ linear
    if code == "PIR":  # voxel axes are front-back, up-down, left-right
        linear = np.array([[0, 0, 2.2], [-2.0, 0, 0], [0, -2.0, 0]])
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ (np.array([80, 96, 80]) / 2)
    return affine


@pytest.mark.parametrize("code", ["RAS", "LPS", "PIR", "oblique"])
def test_landmark_and_centre_keep_their_world_position(code):
    affine = grid_affine(code)
    data = landmark_image(affine)
    out, _ = resample.preprocess(data, affine, **SETTINGS)
    source_peak = peak_world(data, affine)
    for size, (volume, out_affine) in out.items():
        voxel = 192 / size
        assert nib.aff2axcodes(out_affine) == ("R", "A", "S")
        assert np.linalg.norm(peak_world(volume, out_affine) - source_peak) < voxel / 2, size
        # the grid is centred on the brain's centre of mass
        fg = resample.foreground(data)
        centre = nib.affines.apply_affine(affine, np.argwhere(fg).mean(axis=0))
        grid_centre = nib.affines.apply_affine(out_affine, (np.array(volume.shape) - 1) / 2)
        assert np.linalg.norm(grid_centre - centre) < voxel / 2


def test_values_match_nilearn_linear_resampling():
    from nilearn.image import resample_img

    affine = grid_affine("oblique")
    image = nib.Nifti1Image(landmark_image(affine), affine)
    data = image.get_fdata(dtype=np.float32)
    centre = nib.affines.apply_affine(affine, np.argwhere(resample.foreground(data)).mean(axis=0))
    target = resample.brain_grid(centre, 128, 192)
    ours = resample.resample(data, affine, target, (128,) * 3)
    theirs = resample_img(image, target_affine=target, target_shape=(128,) * 3, interpolation="linear",
                          force_resample=True, copy_header=True).get_fdata()  # fmt: skip
    scale = np.abs(theirs).max()
    inside = theirs > 0.01 * scale
    assert np.abs(ours - theirs).max() < 1e-3 * scale
    assert np.corrcoef(ours[inside], theirs[inside])[0, 1] > 0.99999


def test_coarse_grid_is_the_block_mean_of_the_fine_grid():
    out, _ = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **SETTINGS)
    fine, fine_affine = out[128]
    coarse, coarse_affine = out[64]
    assert np.allclose(coarse[10, 20, 30], fine[20:22, 40:42, 60:62].mean(), atol=1e-5)
    # voxel (0,0,0) of the coarse grid sits at the centre of the first 2x2x2 fine block
    assert np.allclose(coarse_affine[:3, 3], nib.affines.apply_affine(fine_affine, [0.5, 0.5, 0.5]))


@pytest.mark.parametrize("method, background", [("zscore", 0.0), ("minmax", -1.0)])
def test_normalisation(method, background):
    volume, _ = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **{**SETTINGS, "method": method})[0][128]
    mask = volume != background
    assert volume[0, 0, 0] == background
    if method == "zscore":
        assert abs(volume[mask].mean()) < 0.05 and abs(volume[mask].std() - 1) < 0.05
    else:
        assert volume.min() >= -1 and volume.max() <= 1 and volume.max() == pytest.approx(1)


@pytest.mark.parametrize("code", ["RAS", "LPS", "PIR"])
@pytest.mark.parametrize("memory", ["F", "C"])
def test_separable_path_equals_scipy_affine_transform(code, memory):
    from scipy import ndimage

    affine = grid_affine(code)
    data = np.asarray(landmark_image(affine), order=memory)
    target = resample.brain_grid([3.0, -8.0, 10.0], 128, 192)
    to_source = np.linalg.inv(affine) @ target
    assert resample._axis_aligned(to_source[:3, :3])
    reference = ndimage.affine_transform(data, to_source[:3, :3], offset=to_source[:3, 3], output_shape=(128,) * 3,
                                         order=1, mode="constant", cval=0.0, prefilter=False)  # fmt: skip
    ours = resample.resample(data, affine, target, (128,) * 3)
    assert ours.flags.c_contiguous and ours.dtype == np.float32
    assert np.abs(ours - reference).max() <= 1e-5 * np.abs(reference).max()
    assert not resample._axis_aligned((np.linalg.inv(grid_affine("oblique")) @ target)[:3, :3])


def test_file_formats_and_scaling_give_the_same_cubes(tmp_path):
    from legibility.qc import load

    affine = grid_affine("LPS")
    data = landmark_image(affine)
    scaled = nib.Nifti1Image(np.round(data / 0.5).astype(np.int16), affine)
    scaled.header.set_slope_inter(0.5, 0.0)  # stored integers x 0.5 = the same values
    images = {"nifti1.nii.gz": nib.Nifti1Image(data, affine), "nifti2.nii": nib.Nifti2Image(data, affine), "scaled.nii.gz": scaled}
    cubes = []
    for name, image in images.items():
        nib.save(image, tmp_path / name)
        loaded, array = load(tmp_path / name, ndim=3)
        cubes.append(resample.preprocess(array, loaded.affine, **SETTINGS)[0][64][0])
    assert np.allclose(cubes[1], cubes[0], atol=1e-5)  # NIfTI-2, uncompressed: the same numbers
    # stored as integers x 0.5: quantised to 0.5, so the clamp percentile moves a little
    assert np.abs(cubes[2] - cubes[0]).max() < 0.05 and np.corrcoef(cubes[2].ravel(), cubes[0].ravel())[0, 1] > 0.9999


def test_a_brain_larger_than_the_grid_is_measured():
    _, stats = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **{**SETTINGS, "fov_mm": 120})
    assert stats["brain_outside_grid"] > 0.05
    _, stats = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **SETTINGS)
    assert stats["brain_outside_grid"] == 0


def test_shard_job_writes_derivatives_with_provenance(tmp_path, tmp_image):
    import json

    import pandas as pd

    from legibility.io import sha256

    source = tmp_image(brain_image(affine=np.diag([-2.5, 2.5, 2.5, 1])), "sub-01_T1w.nii.gz")
    qc_table = pd.DataFrame({"subject": ["01"], "modality": ["t1"], "status": ["pass"]})
    settings = {"resolutions": [128, 64], "fov_mm": 192, "clamp_percentiles": [0.5, 99.5], "normalise": "zscore"}
    resample.run_shard({"01": {"t1": str(source)}}, qc_table, settings, {64: tmp_path / "p64.npy"}, tmp_path / "table.tsv", tmp_path / "out")
    derivative = nib.load(tmp_path / "out" / "sub-01_res-128_desc-preproc_T1w.nii.gz")
    sidecar = json.loads((tmp_path / "out" / "sub-01_res-128_desc-preproc_T1w.json").read_text())
    assert sidecar["SourceSHA256"] == sha256(source) and sidecar["Resolution"] == 128
    assert np.allclose(sidecar["Affine"], derivative.affine) and nib.aff2axcodes(derivative.affine) == ("R", "A", "S")
    packed = np.load(tmp_path / "p64.npy")
    assert packed.shape == (1, 3, 64, 64, 64) and packed.dtype == np.float16
    assert np.isfinite(packed[0, 0]).all() and np.isnan(packed[0, 1:]).all()  # FLAIR and DWI absent
    coarse = nib.load(tmp_path / "out" / "sub-01_res-64_desc-preproc_T1w.nii.gz").get_fdata()
    assert np.allclose(coarse, packed[0, 0], atol=2e-2)  # the NIfTI people open is what the model reads
