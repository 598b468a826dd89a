"""Registration to MNI space and its checks."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from legibility import register, resample, template

SETTINGS = {"space": "native", "transform": "affine", "others": "world", "levels_mm": [8, 4], "min_dice": 0.85,
            "min_similarity": 0.5}  # fmt: skip


def known_affine(seed, degrees=15, scales=(0.85, 1.15), shift_mm=20):
    """MNI world -> subject world: a rotation up to `degrees`, scales and a shift, as the
    benchmark draws them."""
    draw = np.random.default_rng(seed)
    axis = draw.normal(size=3)
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(draw.uniform(degrees / 2, degrees))).as_matrix()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(draw.uniform(*scales, 3))
    matrix[:3, 3] = draw.uniform(-shift_mm, shift_mm, 3)
    return matrix


def subject_image(to_image, contrast=lambda t1: t1, voxel_mm=1.5):
    """The template placed in a subject's world by `to_image`, on an axis-aligned grid."""
    mni = template.mni152(1)
    shape = (int(200 / voxel_mm),) * 3
    affine = np.diag([voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -100
    data = resample.resample(contrast(mni["t1"]), mni["affine"], np.linalg.inv(to_image) @ affine, shape)
    return data, affine


def displacement_mm(estimated, truth):
    """Mean distance between where two maps send the MNI brain's voxels."""
    _, brain, affine = register.mni_target()
    world = nib.affines.apply_affine(affine, np.argwhere(brain)[::10])
    return float(np.linalg.norm(nib.affines.apply_affine(estimated, world) - nib.affines.apply_affine(truth, world), axis=1).mean())


@pytest.mark.parametrize("seed", [1, 2])
def test_a_known_affine_is_recovered_within_a_millimetre(seed):
    truth = known_affine(seed)
    data, affine = subject_image(truth)
    estimated, _ = register.to_mni(data, affine, seed=seed)
    assert displacement_mm(estimated, truth) < 1.0
    assert register.head_scale(estimated) == pytest.approx(register.head_scale(truth), abs=0.01)
    assert register.check(data, affine, estimated)["dice"] > 0.95


def test_the_same_seed_gives_the_same_transform():
    data, affine = subject_image(known_affine(3))
    assert np.array_equal(*(register.to_mni(data, affine, seed=7, levels_mm=(8, 4))[0] for _ in range(2)))


def rows(modalities):
    return {m: {"subject": "01", "modality": m, "status": "pass", "reasons": ""} for m in modalities}


def write(tmp_path, name, data, affine):
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return str(path)


def test_an_image_not_in_mni_space_fails_where_mni_is_declared(tmp_path):
    mni = template.mni152(2)
    native = write(tmp_path, "native", *subject_image(known_affine(4)))
    registered = write(tmp_path, "mni", mni["t1"], mni["affine"])
    settings = {**SETTINGS, "space": "mni"}
    out = register.register_subject("01", {"t1": native, "flair": registered}, rows(["t1", "flair"]), settings, seed=1)
    assert out["t1"]["status"] == "fail" and "not in MNI space?" in out["t1"]["reasons"]
    assert out["flair"]["status"] == "pass" and out["flair"]["dice"] > 0.95 and out["flair"]["registration"] == "in MNI space"


def test_other_images_follow_their_t1_rigidly_or_through_world_space(tmp_path):
    to_t1 = known_affine(5)
    tilt = np.eye(4)  # the FLAIR session: the head turned 8 degrees and moved, relative to the T1
    tilt[:3, :3] = Rotation.from_euler("xyz", [8, -4, 3], degrees=True).as_matrix()
    tilt[:3, 3] = [4.0, -6.0, 3.0]
    to_flair = tilt @ to_t1
    t1 = write(tmp_path, "t1", *subject_image(to_t1))
    flair = write(tmp_path, "flair", *subject_image(to_flair, contrast=np.sqrt, voxel_mm=2.0))
    paths = {"t1": t1, "flair": flair}
    rigid = register.register_subject("01", paths, rows(paths), {**SETTINGS, "others": "rigid"}, seed=1)
    assert displacement_mm(register.matrix_of(rigid["flair"]["to_image"]), to_flair) < 1.0
    assert rigid["flair"]["status"] == "pass" and rigid["flair"]["registration"].startswith("rigid to t1")
    world = register.register_subject("01", paths, rows(paths), SETTINGS, seed=1)  # taken as aligned: it is not
    assert world["flair"]["to_image"] == world["t1"]["to_image"]
    assert displacement_mm(register.matrix_of(world["flair"]["to_image"]), to_flair) > 5


def test_a_subject_whose_t1_failed_qc_is_registered_through_its_next_image(tmp_path):
    truth = known_affine(7)
    flair = write(tmp_path, "flair", *subject_image(truth, contrast=np.sqrt))
    dwi = write(tmp_path, "dwi", *subject_image(truth, voxel_mm=2.5))
    checked = {**rows(["flair", "dwi"]), "t1": {"subject": "01", "modality": "t1", "status": "fail", "reasons": "scalp left"}}
    out = register.register_subject("01", {"t1": "t1.nii.gz", "flair": flair, "dwi": dwi}, checked, SETTINGS, seed=1)
    assert out["t1"] == checked["t1"]
    assert out["flair"]["registration"] == "affine to MNI152" and out["flair"]["status"] == "pass"
    assert out["dwi"]["registration"].startswith("as flair") and out["dwi"]["status"] == "pass"
    assert displacement_mm(register.matrix_of(out["dwi"]["to_image"]), truth) < 1.0


def test_a_failed_reference_fails_the_subjects_other_images(tmp_path):
    noise = np.random.default_rng(0).random((80, 80, 80)).astype(np.float32) * (np.indices((80,) * 3)[0] > 40)
    t1 = write(tmp_path, "t1", noise, np.diag([2.0, 2.0, 2.0, 1.0]))
    flair = write(tmp_path, "flair", *subject_image(known_affine(6)))
    qc = pd.DataFrame([*rows(["t1", "flair"]).values(), {"subject": "01", "modality": "bold", "status": "pass", "reasons": ""}])
    qc["path"] = [t1, flair, "bold.nii.gz"]
    table = register.run_shard(qc, {"01": {"t1": t1, "flair": flair}}, SETTINGS, seed=1, montage_path=tmp_path / "montage.png")
    by = table.set_index("modality")
    assert by.loc["t1", "status"] == "fail" and "registration failed" in by.loc["t1", "reasons"]
    assert by.loc["flair", "status"] == "fail" and "t1's registration failed" in by.loc["flair", "reasons"]
    assert by.loc["bold", "status"] == "pass"  # functional images are not registered here
    assert (tmp_path / "montage.png").stat().st_size > 0


def test_a_shard_without_structural_images_passes_through(tmp_path):
    qc = pd.DataFrame({"subject": ["1", "2"], "modality": "connectome", "status": "pass", "reasons": None, "path": "x.txt"})
    table = register.run_shard(qc, {"1": {}, "2": {}}, SETTINGS, seed=1, montage_path=tmp_path / "montage.png")
    assert table[["subject", "status"]].equals(qc[["subject", "status"]]) and (tmp_path / "montage.png").exists()
