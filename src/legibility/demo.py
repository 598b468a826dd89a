"""A synthetic cohort with known effects, built from the MNI152 template that nilearn ships.

Each subject gets a phenotype row and a T1, a FLAIR, a diffusion MD map and a resting-state
BOLD image in BIDS layout. The effects are injected on purpose and written to a truth file:

- sex scales the head (men larger) and stretches it front to back, which affine registration
  to MNI152 removes (the head scale it finds keeps it), and enlarges the temporal lobes
  relative to the rest of the brain, which it keeps;
- age enlarges the ventricles, thins grey matter, adds FLAIR white-matter hyperintensities
  (more with hypertension), raises MD, and weakens within-network connectivity;
- sex couples two functional networks;
- older subjects move more in the scanner, and the BOLD carries the motion artefact (linear in
  the motion parameters: the default denoising removes it); the confounds table, as fMRIPrep
  writes one, has the 24 motion parameters, white-matter and CSF signals and framewise
  displacement;
- phenotypes correlate (height with sex, HbA1c with age and BMI, hypertension with age...);
- `negative_control` is pure noise.

Images vary as real ones do: voxel size, orientation (not all RAS, some oblique), bias field,
Rician noise and a small random deformation. A few structural images keep scalp and skull,
one subject lacks its FLAIR and one moves too much in the scanner (its confounds table, as
fMRIPrep writes one, shows it). The same seed gives the same bytes.
"""

import json
import os
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd

from . import atlas, template
from .io import atomic_path, save_nifti, write_tsv
from .seeds import rng

AGE_RANGE = (45.0, 80.0)
AXCODES = ["RAS", "LAS", "LPS", "RPI", "PIR", "ASL", "LPI", "SRA"]
STRUCTURAL = ("t1", "flair", "dwi")
GENERATOR_REGIONS = 32  # parcellation the BOLD signal is generated on (not the analysis atlas)
N_NETWORKS = 4
BOLD_TR, BOLD_VOLUMES, BOLD_VOXEL = 2.0, 100, 5.0


def plan(n_subjects: int, seed: int, unstripped: int) -> dict:
    """Which subjects exist, which image is missing, which keep their skull and who moves.

    Cheap and deterministic, so the workflow knows every file before any is written.
    """
    subjects = [f"{i:03d}" for i in range(1, n_subjects + 1)]
    draw = rng(seed, "demo", "plan")
    picks = draw.choice(n_subjects, size=unstripped + 2, replace=False)
    missing = [{"subject": subjects[picks[0]], "modality": "flair"}]
    moving = [{"subject": subjects[picks[1]], "modality": "bold"}]
    kinds = draw.choice(["t1", "flair"], size=unstripped)
    bad = [{"subject": subjects[p], "modality": str(m)} for p, m in zip(picks[2:], kinds)]
    return {"subjects": subjects, "missing": missing, "high_motion": moving, "unstripped": sorted(bad, key=lambda b: b["subject"])}


def present(the_plan: dict) -> dict:
    """subject -> files it has: images and a confounds table."""
    absent = {(m["subject"], m["modality"]) for m in the_plan["missing"]}
    modalities = (*STRUCTURAL, "bold", "confounds")
    return {s: [m for m in modalities if (s, m) not in absent] for s in the_plan["subjects"]}


def image_paths(the_plan: dict, root, templates: dict) -> dict:
    """subject -> {modality: path} of the files the cohort will have, from the path templates."""
    return {
        subject: {m: os.path.join(root, templates[m].format(subject=subject)) for m in modalities if m in templates}
        for subject, modalities in present(the_plan).items()
    }


# ----------------------------------------------------------------------------- phenotypes


def phenotypes(subjects, seed: int) -> pd.DataFrame:
    """The participants table (BIDS participants.tsv), with a few values missing."""
    n = len(subjects)
    draw = rng(seed, "demo", "phenotypes")
    male = draw.random(n) < 0.5
    age = draw.uniform(*AGE_RANGE, n)
    age_c = age - 62.5
    bmi = 27 + 0.03 * age_c + draw.normal(0, 4, n)
    hba1c = 35 + 0.15 * age_c + 0.6 * (bmi - 27) + draw.normal(0, 4, n)
    logits = np.stack([np.zeros(n), -0.5 + 0.05 * age_c, -1.2 - 0.04 * age_c], axis=1)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    smoking = np.array(["never", "former", "current"])[[draw.choice(3, p=p) for p in probs]]
    hypertension = draw.random(n) < _sigmoid(-0.3 + 0.15 * age_c + 0.15 * (bmi - 27))
    table = pd.DataFrame(
        {
            "participant_id": [f"sub-{s}" for s in subjects],
            "sex": np.where(male, "M", "F"),
            "age": age.round(1),
            "height": (163 + 13 * male + draw.normal(0, 6.5, n)).round(1),
            "bmi": bmi.round(1),
            "hba1c": hba1c.round(1),
            "ldl": (3.5 - 0.2 * male + draw.normal(0, 0.8, n)).round(2),
            "crp": np.exp(0.3 + 0.08 * (bmi - 27) + draw.normal(0, 0.8, n)).round(2),
            "fluid_intelligence": np.clip(np.round(6.5 - 0.06 * age_c + draw.normal(0, 2, n)), 0, 13),
            "neuroticism": np.clip(np.round(4 + 0.8 * ~male + draw.normal(0, 3, n)), 0, 12),
            "smoking": smoking,
            # its own stream: nothing else in the cohort depends on it
            "negative_control": rng(seed, "demo", "negative_control").normal(0, 1, n).round(3),
            "hypertension": np.where(hypertension, "yes", "no"),
            "diabetes": np.where(draw.random(n) < _sigmoid(-3 + 0.15 * (hba1c - 35)), "yes", "no"),
        }
    )
    for column, share in (("hba1c", 0.04), ("ldl", 0.04), ("crp", 0.04), ("fluid_intelligence", 0.06), ("neuroticism", 0.03)):
        table[column] = table[column].astype(object)
        table.loc[draw.random(n) < share, column] = "n/a"
    return table


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ----------------------------------------------------------------------------- geometry


def _subject_geometry(row, seed):
    """Backward map (subject world mm -> template world mm) and where the head is."""
    draw = rng(seed, "demo", row.subject, "geometry")
    male = row.sex == "M"
    f32 = np.float32  # the map runs over millions of voxels: single precision throughout
    scale = 0.92 * (1 + (0.045 if male else -0.045) + draw.normal(0, 0.02))
    axes = (scale * np.array([1.0, 1.0 + (0.02 if male else -0.02), 1.0])).astype(f32)[:, None]
    rotation = _rotation(np.deg2rad(draw.normal(0, 4, 3))).astype(f32)
    shift = draw.normal(0, 5, 3).astype(f32)[:, None]
    age_n = (row.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    ventricles = f32(0.05 + 0.25 * age_n)  # backward contraction at the ventricles = enlargement
    centre = np.array([0.0, -8.0, 16.0], dtype=f32)[:, None]
    temporal = f32(TEMPORAL_GROWTH if male else 0.0)  # men: larger temporal lobes, a shape an affine cannot undo
    waves = [
        ((draw.normal(0, 1, 3) / 60).astype(f32), f32(draw.uniform(0, 2 * np.pi)), draw.normal(0, 1.5, 3).astype(f32)[:, None])
        for _ in range(3)
    ]  # a small smooth random deformation

    def to_template(world):
        local = (rotation.T @ (world - shift)) / axes
        offset = local - centre
        weight = np.exp(-(offset * offset).sum(axis=0) / f32(2 * 18.0**2))
        out = centre + offset * (1 - ventricles * weight)
        for lobe in TEMPORAL_LOBES:
            offset = local - lobe
            out -= temporal * offset * np.exp(-(offset * offset).sum(axis=0) / f32(2 * 15.0**2))
        for direction, phase, amplitude in waves:
            out += amplitude * np.sin(direction @ local + phase)
        return out

    head_centre = rotation @ (axes[:, 0] * np.array([0.0, -18.0, 15.0], dtype=f32)) + shift[:, 0]
    return to_template, head_centre.astype(float), float(scale)


TEMPORAL_LOBES = [np.array([x, -15.0, -20.0], dtype=np.float32)[:, None] for x in (-42.0, 42.0)]  # MNI mm
TEMPORAL_GROWTH = 0.15  # men's temporal lobes about 15% larger at their centres


def _rotation(angles):
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _grid(fov_world, zooms, axcodes, oblique_deg, centre):
    """Image shape and affine: voxel axes along `axcodes`, optionally tilted."""
    columns, shape = np.zeros((3, 3)), []
    for i, code in enumerate(axcodes):
        axis = "RAS".find(code) if code in "RAS" else "LPI".find(code)
        columns[axis, i] = zooms[i] * (1 if code in "RAS" else -1)
        shape.append(int(np.ceil(fov_world[axis] / zooms[i])))
    linear = _rotation(np.deg2rad(oblique_deg)) @ columns
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre - linear @ ((np.array(shape) - 1) / 2)
    return tuple(shape), affine


def _world(shape, affine):
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3].astype(np.float32) @ ijk + affine[:3, 3:].astype(np.float32)).reshape(3, *shape)


def _sample(volume, template_world, mni_affine, order=1, cval=0.0):
    from scipy import ndimage

    inverse = np.linalg.inv(mni_affine)
    flat = template_world.reshape(3, -1)
    coords = inverse[:3, :3].astype(np.float32) @ flat + inverse[:3, 3:].astype(np.float32)
    if cval != 0 or order > 1:
        out = ndimage.map_coordinates(volume, coords, order=order, mode="constant", cval=cval, prefilter=False)
        return out.reshape(template_world.shape[1:])
    # Only where the volume is not zero: a point more than a voxel beyond its non-zero box reads
    # zeros alone (or the zero cval), so its value is 0 exactly; the rest are computed as before
    nonzero = [np.flatnonzero(volume.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    out = np.zeros(coords.shape[1], volume.dtype)
    if all(len(n) for n in nonzero):
        inside = np.logical_and.reduce([(c >= n[0] - 1) & (c <= n[-1] + 1) for c, n in zip(coords, nonzero)])
        out[inside] = ndimage.map_coordinates(volume, coords[:, inside], order=order, mode="constant", prefilter=False)
    return out.reshape(template_world.shape[1:])


# ----------------------------------------------------------------------------- images


CONTRAST = {  # csf, gm, wm, lesion, skull, scalp, intensity noise; T1 and FLAIR in scanner units
    "t1": (200.0, 550.0, 850.0, -150.0, 60.0, 800.0, 20.0),
    "flair": (80.0, 600.0, 430.0, 500.0, 50.0, 650.0, 18.0),
    "dwi": (3.0e-3, 0.85e-3, 0.72e-3, 0.4e-3, 0.0, 0.0, 0.04e-3),
}


def _intensity_map(modality, row, mni, lesion, unstripped):
    """The subject's image contrast on the template grid (sampled once onto the image grid;
    trilinear sampling is linear, so mixing tissues first gives the same image, faster)."""
    age_n = (row.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    atrophy = 0.15 * age_n  # grey matter thins, CSF takes its place
    gm, wm = mni["gm"] * (1 - atrophy), mni["wm"]
    csf = mni["csf"] + atrophy * mni["gm"]
    c_csf, c_gm, c_wm, c_lesion, c_skull, c_scalp, _ = CONTRAST[modality]
    if modality == "dwi":
        ageing = 1 + 0.2 * age_n  # diffusivity rises with age
        out = c_csf * csf + (c_gm * gm + c_wm * wm) * ageing + c_lesion * lesion * wm
    else:
        out = c_csf * csf + c_gm * gm + c_wm * wm * (1 - 0.05 * age_n) + c_lesion * lesion * wm
    if unstripped:
        distance = mni["outside_mm"]
        out = out + c_skull * ((distance > 3) & (distance <= 8)) + c_scalp * ((distance > 8) & (distance <= 14))
    return out.astype(np.float32)


def _structural(modality, row, seed, mni, to_template, head_centre, lesion, unstripped, grid=None, with_mask=False):
    """One structural image on its own random grid, or on `grid` = (shape, affine), and with
    `with_mask` its brain mask (as pipelines that keep the scalp ship one), else None."""
    draw = rng(seed, "demo", row.subject, modality)
    if modality == "t1":
        zooms = draw.uniform(1.4, 1.8) * (1 + draw.normal(0, 0.02, 3))
    elif modality == "flair":
        zooms = np.append(np.full(2, draw.uniform(1.5, 1.9)), draw.uniform(2.6, 3.4))
    else:
        zooms = np.full(3, draw.uniform(2.0, 2.5))
    axcodes = AXCODES[draw.integers(len(AXCODES))]
    oblique = draw.normal(0, 6, 3) if draw.random() < 0.3 else np.zeros(3)
    shape, affine = grid or _grid(np.array([186.0, 222.0, 200.0]), zooms, axcodes, oblique, head_centre)
    world = _world(shape, affine)
    where = to_template(world.reshape(3, -1)).reshape(3, *shape)
    signal = _sample(_intensity_map(modality, row, mni, lesion, unstripped), where, mni["affine"])
    if modality != "dwi":
        signal = signal * _bias_field(draw, world, head_centre)
    sigma = CONTRAST[modality][-1]
    noisy = np.hypot(signal + draw.normal(0, sigma, shape), draw.normal(0, sigma, shape)).astype(np.float32)
    brain = _sample(mni["brain"].astype(np.float32), where, mni["affine"]) > 0.5 if with_mask or not unstripped else None
    if not unstripped:
        noisy *= brain
    if modality == "dwi":
        out = nib.Nifti1Image(noisy, affine)
    else:
        out = nib.Nifti1Image(np.round(noisy).astype(np.int16), affine)
    out.header.set_xyzt_units("mm", "sec")
    info = {"axcodes": axcodes, "zooms": np.round(zooms, 3).tolist(), "oblique_deg": np.round(oblique, 1).tolist(), "shape": list(shape)}
    return out, info, nib.Nifti1Image(brain.astype(np.uint8), affine) if with_mask else None


def _lesion_map(mni, lesions):
    """Gaussian white-matter lesions on the template grid."""
    total = np.zeros(mni["gm"].shape, dtype=np.float32)
    inverse = np.linalg.inv(mni["affine"])
    voxel = abs(mni["affine"][0, 0])
    for centre, radius in lesions:
        middle = nib.affines.apply_affine(inverse, centre)
        reach = int(np.ceil(3 * radius / voxel))
        low = np.maximum(np.round(middle).astype(int) - reach, 0)
        high = np.minimum(np.round(middle).astype(int) + reach + 1, total.shape)
        window = np.indices(high - low).reshape(3, -1).T + low
        blob = np.exp(-(((window - middle) * voxel) ** 2).sum(axis=1) / (2 * radius**2))
        total[tuple(window.T)] += blob.astype(np.float32)
    return np.minimum(total, 1.0)


def _bias_field(draw, world, centre):
    unit = (world - centre[:, None, None, None]) / 100.0
    field = sum(draw.normal(0, 0.08) * unit[a] for a in range(3))
    field = field + sum(draw.normal(0, 0.05) * unit[a] * unit[b] for a in range(3) for b in range(a, 3))
    return np.exp(field).astype(np.float32)


def _lesions(row, seed, mni):
    """White-matter hyperintensity blobs (template mm): more with age and hypertension."""
    draw = rng(seed, "demo", row.subject, "lesions")
    age_n = (row.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    count = draw.poisson(1 + 6 * age_n + 3 * (row.hypertension == "yes"))
    candidates = np.argwhere(mni["periventricular"])
    picks = candidates[draw.choice(len(candidates), size=count)]
    centres = nib.affines.apply_affine(mni["affine"], picks)
    return [(c.astype(np.float32), float(draw.uniform(2.5, 5))) for c in centres]


# ----------------------------------------------------------------------------- BOLD


def _bold(row, seed, mni, regions, motion):
    """Resting-state BOLD in MNI space (as fMRIPrep writes it), 5 mm, TR 2 s, carrying the
    subject's motion artefact; and the mean signals in the white-matter and CSF masks."""
    draw = rng(seed, "demo", row.subject, "bold")
    labels_img, network = regions
    shape, affine = _grid(np.array([180.0, 216.0, 180.0]), np.full(3, BOLD_VOXEL), "LAS", np.zeros(3), np.array([0.0, -18.0, 18.0]))
    world = _world(shape, affine)
    labels = _sample(np.asarray(labels_img.dataobj).astype(np.float32), world, labels_img.affine, order=0, cval=-1.0)
    labels = labels.astype(int)
    age_n = (row.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    within, shared = 0.45 - 0.25 * age_n, 0.1  # networks decouple with age
    factors = _ar1(draw, N_NETWORKS + 1)
    if row.sex == "M":  # men: networks 0 and 1 share signal
        factors[1] = 0.75 * factors[0] + np.sqrt(1 - 0.75**2) * factors[1]
    unique = _ar1(draw, len(network))
    signals = np.sqrt(within) * factors[network] + np.sqrt(shared) * factors[-1] + np.sqrt(1 - within - shared) * unique
    brain = labels >= 0
    data = np.zeros((*shape, BOLD_VOLUMES), dtype=np.float32)
    inside = labels > 0
    data[inside] = 12.0 * signals[labels[inside] - 1]
    drift = np.linspace(-1, 1, BOLD_VOLUMES) * draw.normal(0, 4)
    data[brain] += 1000.0 + drift + draw.normal(0, 10, (int(brain.sum()), BOLD_VOLUMES))
    data[brain] += (_motion_maps(seed, shape, brain) @ (motion * MOTION_MM).T).astype(np.float32)
    data = np.round(data)
    tissue = {name: data[brain & (_sample(mni[key], world, mni["affine"]) > TISSUE_THRESHOLD)].mean(axis=0)
              for name, key in (("csf", "csf"), ("white_matter", "wm"))}  # fmt: skip
    image = nib.Nifti1Image(data.astype(np.int16), affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_zooms((BOLD_VOXEL,) * 3 + (BOLD_TR,))
    return image, tissue


MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
HEAD_RADIUS_MM = 50.0  # rotations (radians) as arc length on this sphere, as framewise displacement counts them
MOTION_MM = np.array([1.0] * 3 + [HEAD_RADIUS_MM] * 3)
MOTION_ARTEFACT = 40.0  # BOLD signal change (baseline 1000) per mm of motion, the maps' scale
HIGH_MOTION = 10.0  # the random walk's scale for the subject who moves too much
TISSUE_THRESHOLD = 0.9  # template probability inside the white-matter and CSF masks


def _motion_maps(seed, shape, brain):
    """(brain voxels x 6): per motion parameter, a spatially smooth map of the BOLD change per mm
    of that motion (a global part and a smooth field), the same for every subject."""
    from scipy import ndimage

    draw = rng(seed, "demo", "motion_artefact")
    maps = []
    for _ in MOTION:
        field = ndimage.gaussian_filter(draw.normal(0, 1, shape), sigma=3.0)[brain]
        maps.append(draw.choice([-1.0, 1.0]) * 0.8 + (field - field.mean()) / field.std())
    return MOTION_ARTEFACT * np.stack(maps, axis=1)


def _motion(row, seed, moving: bool):
    """(volumes x 6) motion parameters (mm, radians) and their scale: a slow random walk whose
    steps grow with age (older subjects move more; a subject factor on top), a few brief jerks
    (more with age), and steps ten times the young's for the subject who moves too much."""
    draw = rng(seed, "demo", row.subject, "motion")
    age_n = (row.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    factor = np.exp(np.clip(draw.normal(0, 0.25), -0.5, 0.5))
    scale = HIGH_MOTION if moving else float((0.7 + 1.6 * age_n) * factor)
    trans = np.cumsum(draw.normal(0, 0.02 * scale, (BOLD_VOLUMES, 3)), axis=0)
    rot = np.cumsum(draw.normal(0, 0.0003 * scale, (BOLD_VOLUMES, 3)), axis=0)
    for _ in range(draw.poisson(3 * age_n)):  # a jerk: the head moves for one volume and comes back
        trans[draw.integers(1, BOLD_VOLUMES), draw.integers(3)] += draw.choice([-1, 1]) * draw.uniform(0.2, 0.5)
    return np.hstack([trans, rot]), scale


def _confounds(motion, tissue: dict):
    """The confounds table as fMRIPrep writes one: mean CSF and white-matter signals, framewise
    displacement (first row n/a), and the 24 motion parameters (each, its backward difference
    with the first row n/a, and their squares)."""
    table = pd.DataFrame(tissue)
    steps = np.abs(np.diff(motion, axis=0)) * MOTION_MM
    table["framewise_displacement"] = np.r_[np.nan, steps.sum(axis=1)]
    for name, values in zip(MOTION, motion.T):
        derivative = np.r_[np.nan, np.diff(values)]
        table[name], table[f"{name}_derivative1"] = values, derivative
        table[f"{name}_derivative1_power2"], table[f"{name}_power2"] = derivative**2, values**2
    return table.map(lambda value: float(f"{value:.6g}"))  # six significant digits: squares of radians stay


def _ar1(draw, count, phi=0.7):
    noise = draw.normal(0, 1, (count, BOLD_VOLUMES))
    out = np.empty_like(noise)
    out[:, 0] = noise[:, 0]
    for t in range(1, BOLD_VOLUMES):
        out[:, t] = phi * out[:, t - 1] + np.sqrt(1 - phi**2) * noise[:, t]
    return out


# ----------------------------------------------------------------------------- the cohort


def _prepared_template():
    from scipy import ndimage

    mni = dict(template.mni152(2))
    outside = ndimage.distance_transform_edt(~mni["brain"]) * 2.0
    mni["outside_mm"] = outside.astype(np.float32)
    ventricle_zone = ndimage.binary_dilation(mni["csf"] > 0.5, iterations=3) & (mni["wm"] > 0.7)
    centre = nib.affines.apply_affine(mni["affine"], np.argwhere(ventricle_zone))
    near = np.linalg.norm(centre - np.array([0.0, -8.0, 16.0]), axis=1) < 35
    mni["periventricular"] = np.zeros_like(ventricle_zone)
    mni["periventricular"][tuple(np.argwhere(ventricle_zone)[near].T)] = True
    labels_img, _ = atlas.derive(GENERATOR_REGIONS)
    # labels -1 outside the brain so BOLD background stays empty
    labels = np.where(mni["brain"], np.asarray(labels_img.dataobj), -1).astype(np.int16)
    network = np.arange(GENERATOR_REGIONS) % N_NETWORKS
    return mni, (nib.Nifti1Image(labels, labels_img.affine), network)


FSL_MNI_1MM = ((182, 218, 182), np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]]))


def t1_1mm(unstripped: bool = False, seed: int = 0):
    """A realistic 1 mm T1 of a 60-year-old man on FSL's 182x218x182 MNI grid (for benchmarks):
    noise fills the background of a head, as in a scan before brain extraction."""
    mni, _ = _prepared_template()
    row = SimpleNamespace(subject="bench", sex="M", age=60.0, hypertension="no")
    to_template, head_centre, _ = _subject_geometry(row, seed)
    lesion = _lesion_map(mni, _lesions(row, seed, mni))
    image, _, _ = _structural("t1", row, seed, mni, to_template, head_centre, lesion, unstripped, FSL_MNI_1MM)
    return image


def make_subject(row, seed: int, paths: dict, unstripped: set, moving=False, prepared=None) -> dict:
    """Write one subject's files (`paths`: modality, "confounds" or "<modality>_mask", a brain
    mask on that image's grid -> file); returns what was made."""
    mni, regions = prepared or _prepared_template()
    to_template, head_centre, scale = _subject_geometry(row, seed)
    lesions = _lesions(row, seed, mni)
    lesion = _lesion_map(mni, lesions)
    info = {"head_scale": round(scale, 4), "lesions": len(lesions), "images": {}}
    if "bold" in paths or "confounds" in paths:  # the confounds table describes the BOLD series
        motion, motion_scale = _motion(row, seed, moving)
        image, tissue = _bold(row, seed, mni, regions, motion)
        table = _confounds(motion, tissue)
        info["motion"] = {"scale": round(motion_scale, 3), "mean_fd_mm": round(float(table["framewise_displacement"].fillna(0).mean()), 4)}
        if "bold" in paths:
            save_nifti(paths["bold"], image)
        if "confounds" in paths:
            write_tsv(paths["confounds"], table)
    for modality, path in paths.items():
        if modality in ("bold", "confounds") or modality.endswith("_mask"):
            continue
        mask_path = paths.get(f"{modality}_mask")
        image, info["images"][modality], mask = _structural(
            modality, row, seed, mni, to_template, head_centre, lesion, (row.subject, modality) in unstripped, with_mask=bool(mask_path)
        )
        save_nifti(path, image)
        if mask_path:
            save_nifti(mask_path, mask)
    return info


def make_cohort(config: dict, paths: dict, participants_path, truth_path, workers: int = 1) -> None:
    """Write the whole demo cohort: images, participants table and truth file."""
    demo, seed = config["demo"], config["seed"]
    the_plan = plan(demo["n_subjects"], seed, demo["unstripped"])
    table = phenotypes(the_plan["subjects"], seed)
    unstripped = {(u["subject"], u["modality"]) for u in the_plan["unstripped"]}
    moving = {m["subject"] for m in the_plan["high_motion"]}
    rows = table.assign(subject=the_plan["subjects"]).replace("n/a", np.nan)
    records = [SimpleNamespace(**record) for record in rows.to_dict("records")]  # picklable rows
    jobs = [(row, seed, paths[row.subject], unstripped, row.subject in moving) for row in records]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
            infos = pool.starmap(_make_in_worker, jobs, chunksize=1)
    else:
        prepared = _prepared_template()
        infos = [make_subject(*job, prepared=prepared) for job in jobs]
    with atomic_path(participants_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    truth = {
        "seed": seed,
        "subjects": the_plan["subjects"],
        "missing": the_plan["missing"],
        "unstripped": the_plan["unstripped"],
        "high_motion": the_plan["high_motion"],
        "negative_control": "negative_control",
        "effects": EFFECTS,
        "per_subject": dict(zip(the_plan["subjects"], infos)),
    }
    with atomic_path(truth_path) as tmp:
        tmp.write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")


def with_true_brain(seed: int, n_subjects: int, subject: str, modality: str, unstripped=True):
    """(image, brain mask): a demo subject's image with its scalp and skull (or without), and
    its brain mask before they were added, on the image's grid (a skull-stripper's truth)."""
    subjects = plan(n_subjects, seed, 0)["subjects"]
    rows = phenotypes(subjects, seed).assign(subject=subjects).replace("n/a", np.nan)
    row = SimpleNamespace(**rows[rows.subject == subject].iloc[0].to_dict())
    mni, _ = _prepared_template()
    to_template, head_centre, _ = _subject_geometry(row, seed)
    lesion = _lesion_map(mni, _lesions(row, seed, mni))
    image, _, brain = _structural(modality, row, seed, mni, to_template, head_centre, lesion, unstripped, with_mask=True)
    return image, brain


_WORKER = {}


def _init_worker():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one process per core; BLAS threads on top would oversubscribe
    _WORKER["prepared"] = _prepared_template()


def _make_in_worker(*job):
    return make_subject(*job, prepared=_WORKER["prepared"])


EFFECTS = {
    "sex": "men's heads 9% larger (linear) and 4% longer front to back (removed by affine registration, kept as its head scale); "
           "men's temporal lobes about 15% larger at their centres (kept by registration); networks 0 and 1 coupled (r ~0.75) in men",
    "age": "ventricles enlarge, grey matter thins (15% over 45-80 y), WM T1 darkens, MD +20%, more FLAIR lesions, within-network coupling 0.45 -> 0.20",
    "motion": "older subjects move more: the head's random walk steps 0.7 -> 2.3 times as large over 45-80 y (times a subject factor, "
              "0.6-1.65), brief jerks Poisson(3 x age over the range); the BOLD carries an artefact linear in the six motion parameters "
              f"(a smooth map per parameter, the same for everyone, {MOTION_ARTEFACT:g} per mm on a baseline of 1000), which regressing the "
              "confounds table's 24 motion parameters removes; one subject's steps are ten times the young's (mean FD over 0.5 mm, fails QC)",
    "hypertension": "more FLAIR white-matter lesions",
    "phenotypes": "height ~ sex; bmi ~ age; hba1c ~ age + bmi; crp ~ bmi; fluid_intelligence ~ -age; neuroticism ~ female; smoking ~ age; hypertension ~ age + bmi; diabetes ~ hba1c",
    "negative_control": "pure noise, independent of everything",
}
