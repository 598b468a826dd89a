"""Preprocessed images land on the MNI grid where their world (or registration) puts them, in
any orientation, and agree with scipy and nilearn."""

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import brain_image
from legibility import resample

SETTINGS = dict(resolutions=[128, 64], fov_mm=192, percentiles=[0.5, 99.5], method="zscore")


def landmark_image(affine, shape=(80, 96, 80), landmark=(20, 30, 25), brain=(2, -10, 8)):
    """A blob 'brain' plus a bright landmark at known world positions, on any voxel grid."""
    inverse = np.linalg.inv(affine)
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)
    blob = np.exp(-(((world - brain) / [55, 70, 55]) ** 2).sum(axis=1)) > 0.3
    spot = np.exp(-((world - landmark) ** 2).sum(axis=1) / (2 * 4.0**2))
    data = (blob * 300 + spot * 3000).reshape(shape).astype(np.float32)
    assert np.all(np.abs(nib.affines.apply_affine(inverse, landmark) - (np.array(shape) / 2)) < np.array(shape) / 2)
    return data


def centred(shape=(72, 88, 72), voxel=2.5, flip=1):
    """The affine that puts the centre of a `shape` image (conftest's brain_image) on the MNI
    grid's centre."""
    affine = np.diag([flip * voxel, voxel, voxel, 1.0])
    affine[:3, 3] = np.asarray(resample.MNI_CENTRE_MM) - affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    return affine


def registration():
    """A 12-parameter map from MNI to an image's world, as registration gives: a 15 degree
    rotation about a tilted axis, anisotropic scales, a shear and a translation."""
    linear = Rotation.from_rotvec(np.deg2rad(15) * np.array([1.0, -2.0, 0.7]) / np.linalg.norm([1.0, -2.0, 0.7])).as_matrix()
    to_image = np.eye(4)
    to_image[:3, :3] = linear @ np.diag([1.08, 0.93, 1.04]) @ [[1, 0.05, 0], [0, 1, 0], [0, 0, 1]]
    to_image[:3, 3] = [6.0, -9.0, 4.0]
    return to_image


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
    """An image in MNI space (to_image: the identity) lands on the one MNI grid, its landmark at
    the same world position, whatever its voxel grid; the brain's centre is reported in MNI."""
    affine = grid_affine(code)
    data = landmark_image(affine)
    out, stats = resample.preprocess(data, affine, **SETTINGS)
    source_peak = peak_world(data, affine)
    for size, (volume, out_affine) in out.items():
        voxel = 192 / size
        assert np.allclose(out_affine, resample.mni_grid(size, 192)) and nib.aff2axcodes(out_affine) == ("R", "A", "S")
        assert np.linalg.norm(peak_world(volume, out_affine) - source_peak) < voxel / 2, size
    centre = nib.affines.apply_affine(affine, np.argwhere(resample.foreground(data)).mean(axis=0))
    assert np.linalg.norm(stats["centre_mm"] - centre) < 192 / 128 / 2
    assert stats["brain_outside_grid"] == 0


@pytest.mark.parametrize("code", ["LPS", "oblique"])
def test_a_registered_image_lands_where_its_map_puts_it(code):
    """Through `to_image` (MNI world -> image world), a landmark at image-world point
    p = to_image @ q lands at MNI point q, and the brain's centre is reported in MNI."""
    to_image, affine = registration(), grid_affine(code)
    q = np.array([20.0, 30.0, 25.0])
    data = landmark_image(affine, landmark=nib.affines.apply_affine(to_image, q), brain=nib.affines.apply_affine(to_image, [2, -10, 8]))
    out, stats = resample.preprocess(data, affine, **SETTINGS, to_image=to_image)
    assert not resample._axis_aligned((np.linalg.inv(affine) @ to_image)[:3, :3])  # the oblique path
    for size, (volume, out_affine) in out.items():
        assert np.allclose(out_affine, resample.mni_grid(size, 192))
        assert np.linalg.norm(peak_world(volume, out_affine) - q) < 192 / size / 2, size
    centre = nib.affines.apply_affine(affine, np.argwhere(resample.foreground(data)).mean(axis=0))
    assert np.linalg.norm(stats["centre_mm"] - nib.affines.apply_affine(np.linalg.inv(to_image), centre)) < 192 / 128 / 2
    # the same image without its map is somewhere else
    unregistered, _ = resample.preprocess(data, affine, **SETTINGS)
    assert np.linalg.norm(peak_world(unregistered[128][0], unregistered[128][1]) - q) > 5


def test_values_match_nilearn_linear_resampling():
    from nilearn.image import resample_img

    affine = grid_affine("oblique")
    image = nib.Nifti1Image(landmark_image(affine), affine)
    data = image.get_fdata(dtype=np.float32)
    target = resample.mni_grid(128, 192)
    ours = resample.resample(data, affine, target, (128,) * 3)
    theirs = resample_img(image, target_affine=target, target_shape=(128,) * 3, interpolation="linear",
                          force_resample=True, copy_header=True).get_fdata()  # fmt: skip
    scale = np.abs(theirs).max()
    inside = theirs > 0.01 * scale
    assert np.abs(ours - theirs).max() < 1e-3 * scale
    assert np.corrcoef(ours[inside], theirs[inside])[0, 1] > 0.99999


def test_coarse_grid_is_the_block_mean_of_the_fine_grid():
    out, _ = resample.preprocess(brain_image().get_fdata(), centred(), **SETTINGS)
    fine, fine_affine = out[128]
    coarse, coarse_affine = out[64]
    assert np.allclose(coarse[10, 20, 30], fine[20:22, 40:42, 60:62].mean(), atol=1e-5)
    # voxel (0,0,0) of the coarse grid sits at the centre of the first 2x2x2 fine block
    assert np.allclose(coarse_affine[:3, 3], nib.affines.apply_affine(fine_affine, [0.5, 0.5, 0.5]))


@pytest.mark.parametrize("method, background", [("zscore", 0.0), ("minmax", -1.0)])
def test_normalisation(method, background):
    volume, _ = resample.preprocess(brain_image().get_fdata(), centred(), **{**SETTINGS, "method": method})[0][128]
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


@pytest.mark.parametrize("kind", ["tilted", "faces", "ties"])
@pytest.mark.parametrize("memory", ["F", "C"])
@pytest.mark.parametrize("threads", [1, 2])
def test_oblique_path_equals_scipy_affine_transform(kind, memory, threads, monkeypatch):
    """grid_sample's trilinear map equals scipy's (order 1, constant mode): interpolation inside
    [0, n - 1] on every axis, 0 outside, points exactly on the faces included ('faces': a tilt
    about the first axis only, so whole planes of points fall on the first and last slices;
    'ties': decimal matrix entries put many points on a face give or take float64 rounding,
    where scipy's own arithmetic decides)."""
    import torch
    from scipy import ndimage

    rng = np.random.default_rng(3)
    data = np.asarray(rng.random((41, 52, 47), dtype=np.float32) * 500, order=memory)
    if kind == "tilted":  # 17 degrees about a tilted axis, anisotropic scales, a translation
        linear = Rotation.from_rotvec(np.deg2rad(17) * np.array([1.0, -2.0, 0.7]) / np.linalg.norm([1.0, -2.0, 0.7])).as_matrix()
        to_source = np.eye(4)
        to_source[:3, :3] = linear @ np.diag([0.8, 1.3, 1.1])
        to_source[:3, 3] = [-6.5, 4.2, -3.3]
        shape = (58, 44, 50)
    elif kind == "faces":
        to_source = np.eye(4)
        to_source[1:3, 1:3] = Rotation.from_euler("x", 12, degrees=True).as_matrix()[1:, 1:]
        to_source[:3, 3] = [-2.0, 3.0, -4.0]
        shape = (45, 56, 52)
    else:
        to_source = np.array([[-0.9, 0.1, 0.05, 40.0], [0.08, 1.1, -0.1, -2.0], [-0.1, 0.05, 1.0, 3.0], [0, 0, 0, 1]])
        shape = (47, 44, 48)
    # any source grid (the map runs from output voxels to source voxels); ties need the very numbers scipy gets
    affine = grid_affine("LPS") if kind == "tilted" else np.eye(4)
    reference = ndimage.affine_transform(data, to_source[:3, :3], offset=to_source[:3, 3], output_shape=shape,
                                         order=1, mode="constant", cval=0.0, prefilter=False)  # fmt: skip
    monkeypatch.setattr(resample, "_TILE_ROWS", 8)  # many slabs of several tiles, the last ones partial
    monkeypatch.setattr(resample, "_TILE_VOXELS", 1500)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = resample.resample(data, affine, affine @ to_source, shape)
    finally:
        torch.set_num_threads(previous)
    assert not resample._axis_aligned(to_source[:3, :3])
    assert ours.flags.c_contiguous and ours.dtype == np.float32 and ours.shape == shape
    assert 0.05 < (reference == 0).mean() < 0.6  # the map crosses the source's faces
    assert np.array_equal(ours == 0, reference == 0)  # 0 exactly where scipy's is
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()
    if kind == "faces":
        assert (reference[2] != 0).any() and (reference[:2] == 0).all()  # output plane 2 lies on source slice 0


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
    _, stats = resample.preprocess(brain_image().get_fdata(), centred(), **{**SETTINGS, "fov_mm": 120})
    assert stats["brain_outside_grid"] > 0.05
    _, stats = resample.preprocess(brain_image().get_fdata(), centred(), **SETTINGS)
    assert stats["brain_outside_grid"] == 0
    # the grid stays on MNI: a brain in the right place for a 192 mm cube, but off MNI, is cut
    shifted = centred()
    shifted[:3, 3] += [0, 60, 0]
    _, stats = resample.preprocess(brain_image().get_fdata(), shifted, **SETTINGS)
    assert stats["brain_outside_grid"] > 0.05


def test_shard_job_writes_derivatives_with_provenance(tmp_path, tmp_image):
    import json

    import pandas as pd

    from legibility.io import sha256

    source = tmp_image(brain_image(affine=centred(flip=-1)), "sub-01_T1w.nii.gz")
    qc_table = pd.DataFrame({"subject": ["01"], "modality": ["t1"], "status": ["pass"]})
    settings = {"resolutions": [128, 64], "fov_mm": 192, "clamp_percentiles": [0.5, 99.5], "normalise": "zscore"}
    resample.run_shard({"01": {"t1": str(source)}}, qc_table, settings, {64: tmp_path / "p64.npy"}, tmp_path / "table.tsv", tmp_path / "out")
    derivative = nib.load(tmp_path / "out" / "sub-01_res-128_desc-preproc_T1w.nii.gz")
    sidecar = json.loads((tmp_path / "out" / "sub-01_res-128_desc-preproc_T1w.json").read_text())
    assert sidecar["SourceSHA256"] == sha256(source) and sidecar["Resolution"] == 128
    assert np.allclose(sidecar["Affine"], derivative.affine) and np.allclose(derivative.affine, resample.mni_grid(128, 192))
    packed = np.load(tmp_path / "p64.npy")
    assert packed.shape == (1, 3, 64, 64, 64) and packed.dtype == np.float16
    assert np.isfinite(packed[0, 0]).all() and np.isnan(packed[0, 1:]).all()  # FLAIR and DWI absent
    coarse = nib.load(tmp_path / "out" / "sub-01_res-64_desc-preproc_T1w.nii.gz").get_fdata()
    assert np.allclose(coarse, packed[0, 0], atol=2e-2)  # the NIfTI people open is what the model reads
