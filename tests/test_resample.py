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
    out = resample.preprocess(data, affine, **SETTINGS)
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
    out = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **SETTINGS)
    fine, fine_affine = out[128]
    coarse, coarse_affine = out[64]
    assert np.allclose(coarse[10, 20, 30], fine[20:22, 40:42, 60:62].mean(), atol=1e-5)
    # voxel (0,0,0) of the coarse grid sits at the centre of the first 2x2x2 fine block
    assert np.allclose(coarse_affine[:3, 3], nib.affines.apply_affine(fine_affine, [0.5, 0.5, 0.5]))


@pytest.mark.parametrize("method, background", [("zscore", 0.0), ("minmax", -1.0)])
def test_normalisation(method, background):
    volume, _ = resample.preprocess(brain_image().get_fdata(), np.diag([2.5, 2.5, 2.5, 1]), **{**SETTINGS, "method": method})[128]
    mask = volume != background
    assert volume[0, 0, 0] == background
    if method == "zscore":
        assert abs(volume[mask].mean()) < 0.05 and abs(volume[mask].std() - 1) < 0.05
    else:
        assert volume.min() >= -1 and volume.max() <= 1 and volume.max() == pytest.approx(1)
