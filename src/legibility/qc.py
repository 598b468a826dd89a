"""Quality control: can an image be read, is it sane, and is a structural image brain-extracted?

Every image gets metrics, a pass or fail and the reasons; nothing here raises on bad input.
The skull-strip check places the MNI152 brain mask, dilated a little, on the image's foreground,
matching centres of mass and (within limits) size: a brain-extracted image has almost no signal
outside it, a head has its scalp there, and a head's foreground is far larger than a brain's.
"""

import functools

import nibabel as nib
import numpy as np
from scipy import ndimage

from . import template

FOREGROUND = 0.05  # share of the 99th percentile above which a voxel is foreground
MARGIN_MM = 4.0
SCALE_LIMITS = (0.8, 1.0)  # shrink the template to small brains; a head must not stretch it over its scalp


def load(path, ndim):
    """(image, float32 data) or raises ValueError saying what is wrong with the file."""
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many kinds for a file that is not NIfTI
        raise ValueError(f"not a readable NIfTI image ({type(error).__name__}: {error})") from None
    shape = image.shape
    if ndim == 3 and len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != ndim:
        raise ValueError(f"expected a {ndim}D image, got shape {image.shape}")
    try:
        data = image.get_fdata(dtype=np.float32).reshape(shape)
    except Exception as error:  # truncated or corrupt data block
        raise ValueError(f"image data cannot be read, the file may be truncated ({type(error).__name__}: {error})") from None
    return image, data


def check_structural(path, thresholds: dict) -> dict:
    """Metrics and decision for a T1, FLAIR or diffusion map."""
    try:
        image, data = load(path, ndim=3)
    except ValueError as error:
        return {"status": "fail", "reasons": str(error)}
    metrics, reasons = _header(image, thresholds)
    if not np.isfinite(data).all():
        reasons.append(f"{int((~np.isfinite(data)).sum())} voxels are NaN or infinite")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    positive = data[data > 0]
    if positive.size == 0:
        reasons.append("image is empty (no positive voxel)")
        return _decision(metrics, reasons)
    foreground = data > FOREGROUND * np.percentile(positive, 99)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000
    metrics["volume_ml"] = round(float(foreground.sum()) * voxel_ml, 1)
    metrics["outside_fraction"] = round(_outside_fraction(data, foreground, image.affine, metrics["volume_ml"]), 4)
    metrics.update(_extent(foreground, image.affine))
    metrics["boundary_ratio"] = round(_boundary_ratio(data, foreground), 3)
    if metrics["volume_ml"] > thresholds["max_volume_ml"]:
        reasons.append(f"foreground of {metrics['volume_ml']:.0f} ml is larger than a brain (max {thresholds['max_volume_ml']}): not skull-stripped?")
    if metrics["volume_ml"] < thresholds["min_volume_ml"]:
        reasons.append(f"foreground of {metrics['volume_ml']:.0f} ml is smaller than a brain (min {thresholds['min_volume_ml']})")
    if max(metrics[f"extent_{axis}_mm"] for axis in "xyz") > thresholds["max_extent_mm"]:
        reasons.append(f"foreground spans more than {thresholds['max_extent_mm']} mm, wider than a brain: not skull-stripped?")
    if metrics["outside_fraction"] > thresholds["max_outside_fraction"]:
        reasons.append(
            f"{metrics['outside_fraction']:.1%} of the signal lies outside the brain "
            f"(max {thresholds['max_outside_fraction']:.0%}): scalp or skull left?"
        )
    return _decision(metrics, reasons)


def check_bold(path, thresholds: dict) -> dict:
    """Metrics and decision for a resting-state BOLD series in standard space."""
    try:
        image, data = load(path, ndim=4)
    except ValueError as error:
        return {"status": "fail", "reasons": str(error)}
    metrics, reasons = {}, []
    zooms = image.header.get_zooms()
    metrics["n_volumes"] = data.shape[3]
    metrics["tr_s"] = round(float(zooms[3]), 4) if len(zooms) > 3 else 0.0
    if metrics["n_volumes"] < thresholds["bold_min_volumes"]:
        reasons.append(f"{metrics['n_volumes']} volumes, fewer than {thresholds['bold_min_volumes']}")
    if not metrics["tr_s"] > 0:
        reasons.append("repetition time missing from the header (pixdim[4] is 0)")
    if not np.isfinite(data).all():
        reasons.append("NaN or infinite values")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    mean = np.abs(data).mean(axis=3)
    if not mean.any():
        reasons.append("image is empty (all zero)")
        return _decision(metrics, reasons)
    metrics["brain_coverage"] = round(_coverage(mean > FOREGROUND * np.percentile(mean[mean > 0], 99), image.affine), 4)
    if metrics["brain_coverage"] < thresholds["bold_min_coverage"]:
        reasons.append(
            f"field of view covers {metrics['brain_coverage']:.0%} of the MNI152 brain "
            f"(min {thresholds['bold_min_coverage']:.0%}): not in standard space, or cropped?"
        )
    return _decision(metrics, reasons)


def _decision(metrics, reasons):
    return {**metrics, "status": "fail" if reasons else "pass", "reasons": "; ".join(reasons)}


def _header(image, thresholds):
    zooms = np.array(image.header.get_zooms()[:3], dtype=float)
    shape = np.array(image.shape[:3])
    reasons = []
    metrics = {
        "shape": "x".join(map(str, shape)),
        "voxel_mm": "x".join(f"{z:.2f}" for z in zooms),
        "orientation": "".join(nib.aff2axcodes(image.affine)) if np.isfinite(image.affine).all() else "?",
        "anisotropy": round(float(zooms.max() / zooms.min()), 2) if zooms.min() > 0 else float("inf"),
        "fov_min_mm": round(float((shape * zooms).min()), 1),
    }
    low, high = thresholds["voxel_size_mm"]
    if zooms.min() < low or zooms.max() > high:
        reasons.append(f"voxel size {metrics['voxel_mm']} mm outside [{low}, {high}]")
    if metrics["anisotropy"] > thresholds["max_anisotropy"]:
        reasons.append(f"voxels {metrics['anisotropy']}x longer on one axis (max {thresholds['max_anisotropy']})")
    if metrics["fov_min_mm"] < thresholds["min_fov_mm"]:
        reasons.append(f"field of view {metrics['fov_min_mm']} mm on one axis (min {thresholds['min_fov_mm']})")
    linear = image.affine[:3, :3]
    if not np.isfinite(linear).all() or abs(np.linalg.det(linear)) < 1e-6:
        reasons.append("affine is degenerate (orientation unknown)")
    return metrics, reasons


@functools.lru_cache(maxsize=1)
def _dilated_template():
    mni = template.mni152(2)
    brain = ndimage.binary_dilation(mni["brain"], iterations=int(MARGIN_MM / 2))
    world = nib.affines.apply_affine(mni["affine"], np.argwhere(mni["brain"]))
    volume_ml = mni["brain"].sum() * abs(np.linalg.det(mni["affine"][:3, :3])) / 1000
    return brain, mni["affine"], world.mean(axis=0), volume_ml


def _outside_fraction(data, foreground, affine, volume_ml):
    """Share of foreground signal outside the dilated template brain placed on the image."""
    brain, mni_affine, brain_centre, brain_ml = _dilated_template()
    scale = np.clip((volume_ml / brain_ml) ** (1 / 3), *SCALE_LIMITS)
    voxels = np.argwhere(foreground)
    weights = data[foreground]
    world = nib.affines.apply_affine(affine, voxels)
    centre = (world * weights[:, None]).sum(axis=0) / weights.sum()
    moved = nib.affines.apply_affine(np.linalg.inv(mni_affine), (world - centre) / scale + brain_centre)
    inside = ndimage.map_coordinates(brain.astype(np.uint8), moved.T, order=0, mode="constant", cval=0) > 0
    return float(weights[~inside].sum() / weights.sum())


def _extent(foreground, affine):
    """Size of the foreground along the world axes (left-right, front-back, up-down)."""
    corners = np.argwhere(foreground)
    world = nib.affines.apply_affine(affine, corners[:: max(1, len(corners) // 200000)])
    size = world.max(axis=0) - world.min(axis=0)
    return {f"extent_{axis}_mm": round(float(s), 1) for axis, s in zip("xyz", size)}


def _boundary_ratio(data, foreground):
    """Mean intensity of the foreground's outer layer over the foreground median."""
    shell = foreground & ~ndimage.binary_erosion(foreground, iterations=2)
    return float(data[shell].mean() / np.median(data[foreground]))


def _coverage(foreground, affine):
    """Share of the MNI152 brain that falls inside the image's foreground."""
    mni = template.mni152(2)
    world = nib.affines.apply_affine(mni["affine"], np.argwhere(mni["brain"]))
    voxels = nib.affines.apply_affine(np.linalg.inv(affine), world)
    inside = ndimage.map_coordinates(foreground.astype(np.uint8), voxels.T, order=0, mode="constant", cval=0)
    return float(inside.mean())


QC_COLUMNS = [
    "subject", "modality", "status", "reasons", "path", "shape", "voxel_mm", "orientation",
    "anisotropy", "fov_min_mm", "volume_ml", "outside_fraction", "extent_x_mm", "extent_y_mm",
    "extent_z_mm", "boundary_ratio", "n_volumes", "tr_s", "brain_coverage",
]  # fmt: skip


def check_subject(subject, paths: dict, expected, thresholds: dict) -> list:
    """QC rows for every expected modality of a subject; an absent file is a failed row."""
    rows = []
    for modality in expected:
        path = paths.get(modality)
        if path is None:
            row = {"status": "fail", "reasons": f"no {modality} image found for this subject"}
        elif modality == "bold":
            row = check_bold(path, thresholds)
        else:
            row = check_structural(path, thresholds)
        rows.append({"subject": subject, "modality": modality, "path": str(path or ""), **row})
    return rows


def run_shard(images: dict, expected, thresholds: dict):
    """QC table of a shard: `images` maps subject -> {modality: path}."""
    import pandas as pd

    rows = [row for subject in sorted(images) for row in check_subject(subject, images[subject], expected, thresholds)]
    return pd.DataFrame(rows).reindex(columns=QC_COLUMNS)
