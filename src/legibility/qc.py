"""Quality control: can an image be read, is it sane, and is a structural image brain-extracted?

Every image gets metrics, a pass or fail and the reasons; nothing here raises on bad input.
The brain-extraction check measures the share of an image's signal that lies outside its
subject's learned brain mask (deepbet's, see skullstrip), widened by a few millimetres: a
brain-extracted image has almost none there, a head has its scalp there. A mask found for each
head measures every head alike, whatever its size, as a template scaled to the image cannot.
"""

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from . import template

FOREGROUND = 0.05  # share of the 99th percentile above which a voxel is foreground
MARGIN_MM = 4.0  # the learned mask's edge may sit a voxel or two inside the brain's


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


def load_structural(path, mask=None):
    """(image, float32 data) of a T1, FLAIR or diffusion map, multiplied by its brain `mask`
    where one is given (carried to the image's grid through world coordinates, nearest
    neighbour); raises ValueError saying what is wrong, naming the mask when it is at fault."""
    image, data = load(path, ndim=3)
    if mask is None:
        return image, data
    inside = mask_on_grid(mask, image.affine, data.shape)
    if not inside.any():
        raise ValueError(f"brain mask {mask} is empty, or does not overlap the image")
    return image, np.where(inside, data, np.float32(0))


def mask_on_grid(mask, affine, shape):
    """The brain mask at path `mask` as a boolean array on the grid (`affine`, `shape`) of an
    image, through world coordinates; raises ValueError naming the mask when it is at fault."""
    if not Path(mask).exists():
        raise ValueError(f"brain mask {mask} does not exist")
    try:
        mask_image, mask_data = load(mask, ndim=3)
    except ValueError as error:
        raise ValueError(f"brain mask {mask}: {error}") from None
    inside = mask_data > 0
    if inside.shape != tuple(shape) or not np.allclose(mask_image.affine, affine, atol=1e-3):
        from .resample import resample

        inside = resample(inside.astype(np.float32), mask_image.affine, affine, tuple(shape), order=0) > 0.5
    return inside


def check_structural(path, thresholds: dict, mask=None, brain=None) -> dict:
    """Metrics and decision for a T1, FLAIR or diffusion map (multiplied by its brain mask,
    where one is given); with `brain`, the subject's learned brain mask, the share of its signal
    outside that mask too."""
    try:
        image, data = load_structural(path, mask)
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
    zooms = np.array(image.header.get_zooms()[:3], dtype=float)
    metrics["volume_ml"] = round(float(foreground.sum() * zooms.prod()) / 1000, 1)
    metrics["boundary_ratio"] = round(_boundary_ratio(data, foreground), 3)
    if metrics["volume_ml"] < thresholds["min_volume_ml"]:
        reasons.append(f"foreground of {metrics['volume_ml']:.0f} ml is smaller than a brain (min {thresholds['min_volume_ml']})")
    if brain is not None:
        try:
            inside = mask_on_grid(brain, image.affine, data.shape)
        except ValueError as error:
            return _decision(metrics, [*reasons, str(error)])
        metrics["outside_fraction"] = round(outside_fraction(data, foreground, inside, zooms), 4)
        if metrics["outside_fraction"] > thresholds["max_outside_fraction"]:
            reasons.append(
                f"{metrics['outside_fraction']:.1%} of the signal lies outside the brain "
                f"(max {thresholds['max_outside_fraction']:.0%}): scalp or skull left?"
            )
    return _decision(metrics, reasons)


def outside_fraction(data, foreground, inside, zooms) -> float:
    """Share of the foreground's signal farther than MARGIN_MM outside the brain mask `inside`."""
    outside = np.ones_like(inside)
    if inside.any():
        # the distance only within MARGIN_MM of the mask's bounding box: voxels
        # beyond it are farther on one axis alone, and every mask voxel is inside it (so the
        # same distances as over the whole image, at a fraction of the cost)
        pad = np.ceil(MARGIN_MM / np.asarray(zooms, float)).astype(int)
        spans = [np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        box = tuple(slice(max(span[0] - p, 0), span[-1] + p + 1) for span, p in zip(spans, pad))
        outside[box] = ndimage.distance_transform_edt(~inside[box], sampling=zooms) > MARGIN_MM
    weights = np.where(foreground, data, 0)
    return float(weights[outside].sum() / weights.sum())


def check_bold(path, thresholds: dict, confounds=None) -> dict:
    """Metrics and decision for a resting-state BOLD series in standard space; with a
    confounds table, framewise displacement too."""
    try:
        image, data = load(path, ndim=4)
    except ValueError as error:
        return {"status": "fail", "reasons": str(error)}
    metrics, reasons = {}, []
    if confounds is not None:
        try:
            fd = framewise_displacement(confounds)
        except ValueError as error:
            reasons.append(f"confounds {confounds}: {error}")
        else:
            metrics["mean_fd_mm"] = round(float(fd.mean()), 4)
            metrics["high_motion_fraction"] = round(float((fd > 0.5).mean()), 4)
            if len(fd) != data.shape[3]:
                reasons.append(f"confounds {confounds} has {len(fd)} rows for {data.shape[3]} volumes")
            if metrics["mean_fd_mm"] > thresholds["bold_max_mean_fd"]:
                reasons.append(f"mean framewise displacement {metrics['mean_fd_mm']:.2f} mm (max {thresholds['bold_max_mean_fd']})")
            if thresholds.get("censor_fd") is not None:
                kept = int((fd <= thresholds["censor_fd"]).sum())
                metrics["volumes_after_censoring"] = kept
                if kept < thresholds["bold_min_volumes"]:
                    reasons.append(f"{kept} volumes left after censoring at {thresholds['censor_fd']} mm, fewer than {thresholds['bold_min_volumes']}")
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


def check_connectome(path) -> dict:
    """A precomputed connectivity matrix: readable, numeric, finite, square and symmetric (or an
    upper triangle)."""
    from .connectivity import read_connectome

    try:
        return {"status": "pass", "reasons": "", "shape": str(len(read_connectome(path)))}
    except ValueError as error:
        return {"status": "fail", "reasons": f"connectome: {error}"}


MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def framewise_displacement(confounds, radius_mm: float = 50.0):
    """Per-volume FD (Power et al. 2012): summed absolute changes of the six motion
    parameters, rotations (radians) as arc length on a 50 mm sphere; 0 for the first volume.
    Taken from a `framewise_displacement` column where the table has one (fMRIPrep)."""
    import pandas as pd

    try:
        table = pd.read_csv(confounds, sep="\t", na_values=["n/a"])
    except Exception as error:
        raise ValueError(f"cannot be read as a TSV ({type(error).__name__}: {error})") from None
    if "framewise_displacement" in table:
        return table["framewise_displacement"].fillna(0).to_numpy(float)
    missing = [c for c in MOTION if c not in table]
    if missing:
        raise ValueError(f"has neither framewise_displacement nor the motion columns {', '.join(missing)}")
    steps = table[MOTION].diff().abs().fillna(0).to_numpy(float)
    return steps[:, :3].sum(axis=1) + radius_mm * steps[:, 3:].sum(axis=1)


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
    if hasattr(image.header, "get_sform") and not (image.header["sform_code"] or image.header["qform_code"]):
        reasons.append("no orientation in the header (sform and qform codes are 0)")
    return metrics, reasons


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
    "subject", "modality", "status", "reasons", "path", "mask", "shape", "voxel_mm", "orientation",
    "anisotropy", "fov_min_mm", "volume_ml", "outside_fraction", "brain_mask", "tiv_ml",
    "boundary_ratio", "n_volumes", "tr_s", "brain_coverage", "mean_fd_mm",
    "high_motion_fraction", "volumes_after_censoring",
]  # fmt: skip


def check_subject(subject, paths: dict, expected, thresholds: dict, brain=None, stripped=None) -> list:
    """QC rows for every expected modality of a subject; an absent file is a failed row.
    `brain`: the subject's learned brain mask (its row of skullstrip.run_shard's table), which a
    structural image's signal must not leave, and which must itself have passed its checks;
    `stripped`: {modality: path} of its brain-extracted images, checked instead of the originals."""
    stripped = stripped or {}
    rows = []
    for modality in expected:
        path = stripped.get(modality) or paths.get(modality)
        if path is None:
            row = {"status": "fail", "reasons": f"no {modality} image found for this subject"}
        elif modality == "bold":
            row = check_bold(path, thresholds, paths.get("confounds"))
        elif modality == "connectome":
            row = check_connectome(path)
        else:
            mask = paths.get(f"{modality}_mask")
            row = {"mask": mask, **check_structural(path, thresholds, mask, brain["mask"] if brain else None)}
            if brain is not None:
                row["brain_mask"] = brain["mask"]
                if brain["status"] == "pass":
                    row["tiv_ml"] = brain["tiv_ml"]
                else:  # a failed stripping fails the images it came from, and those it would have masked
                    own = [r for r in brain["reasons"].split("; ") if r.startswith(f"{modality}: ")]
                    why = own[0].split(": ", 1)[1] if own else f"no brain mask ({brain['reasons']})"
                    row = {**row, "status": "fail", "reasons": "; ".join(filter(None, [row.get("reasons"), why]))}
        rows.append({"subject": subject, "modality": modality, "path": str(path or ""), **row})
    return rows


def run_shard(images: dict, expected, thresholds: dict, montage_dir=None, brain=None, strip=None):
    """QC table of a shard (`images`: subject -> {modality: path}); `brain`: the shard's learned
    brain masks (skullstrip.run_shard's table); `strip`: {folder, modalities} where the workflow
    strips, whose brain-extracted images are checked (and read by every later stage) in place
    of the originals. With `montage_dir`, a montage PNG of every failed image there is, named
    sub-<id>_<modality>.png (with the learned brain mask's outline over it)."""
    import logging

    import pandas as pd

    from .skullstrip import stripped_path

    log = logging.getLogger("legibility.qc")
    masks = {} if brain is None else {str(r["subject"]): {**r, "mask": r["mask"] if isinstance(r["mask"], str) and r["mask"] else None}
                                      for r in brain.to_dict("records")}  # fmt: skip
    rows = []
    for subject in sorted(images):
        made = {m: stripped_path(strip["folder"], subject, m) for m in (strip or {}).get("modalities", ())}
        made = {m: p for m, p in made.items() if m in images[subject] and Path(p).exists()}
        rows += check_subject(subject, images[subject], expected, thresholds, masks.get(subject), made)
    for row in rows:
        if row["status"] != "fail":
            continue
        log.warning("sub-%s %s failed QC (%s): %s", row["subject"], row["modality"], row["path"] or "no file", row["reasons"])
        if montage_dir is not None and row["path"]:
            from .io import save_figure

            save_figure(Path(montage_dir) / f"sub-{row['subject']}_{row['modality']}.png", montage(row))
    if montage_dir is not None:
        Path(montage_dir).mkdir(parents=True, exist_ok=True)
    return pd.DataFrame(rows).reindex(columns=QC_COLUMNS)


def checked_images(table, images: dict) -> dict:
    """`images` with each structural image's path as QC checked it: the brain-extracted one
    where the workflow strips, which is what every later stage reads."""
    from . import MODALITIES

    out = {s: dict(files) for s, files in images.items()}
    for row in table[table["modality"].isin(MODALITIES)].itertuples():
        if isinstance(row.path, str) and row.path and str(row.subject) in out:
            out[str(row.subject)][row.modality] = row.path
    return out


def montage(row):
    """Three orthogonal slices through the image (its first volume), with the QC verdict and,
    in red, the outline of the subject's learned brain mask where there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
    for ax in axes:
        ax.axis("off")
    try:
        raw = nib.load(row["path"])
        image = nib.as_closest_canonical(raw)
        data = np.asanyarray(image.dataobj, dtype=np.float32)
        data = np.nan_to_num(data[..., 0] if data.ndim == 4 else data.reshape(data.shape[:3]))
        high = np.percentile(data, 99.5) or 1.0
        brain = None
        if isinstance(row.get("brain_mask"), str) and row["brain_mask"]:
            inside = mask_on_grid(row["brain_mask"], raw.affine, raw.shape[:3]).astype(np.uint8)
            brain = np.asanyarray(nib.as_closest_canonical(nib.Nifti1Image(inside, raw.affine)).dataobj)
        for axis, ax in enumerate(axes):
            middle = [slice(None)] * 3
            middle[axis] = data.shape[axis] // 2
            ax.imshow(np.rot90(data[tuple(middle)]), cmap="gray", vmin=0, vmax=high)
            if brain is not None and brain[tuple(middle)].any():
                ax.contour(np.rot90(brain[tuple(middle)]), levels=[0.5], colors="red", linewidths=0.8)
    except Exception as error:  # unreadable: the montage says so
        axes[1].text(0.5, 0.5, f"cannot be shown:\n{type(error).__name__}", ha="center", va="center")
    title = f"sub-{row['subject']} {row['modality']}: FAIL\n{row['reasons']}"
    fig.suptitle(title if len(title) < 260 else title[:257] + "...", fontsize=8, wrap=True)
    return fig


PANELS = [  # metric, axis label, threshold keys (low, high)
    ("volume_ml", "foreground volume (ml)", ("min_volume_ml", None)),
    ("outside_fraction", "signal outside the learned brain mask", (None, "max_outside_fraction")),
    ("tiv_ml", "intracranial volume of the brain mask (ml)", (None, None)),
    ("anisotropy", "voxel anisotropy", (None, "max_anisotropy")),
    ("brain_coverage", "BOLD coverage of the MNI brain", ("bold_min_coverage", None)),
    ("mean_fd_mm", "BOLD mean framewise displacement (mm)", (None, "bold_max_mean_fd")),
    ("dice", "Dice with the MNI152 brain, registered", ("min_dice", None)),
    ("similarity", "correlation with the MNI152 template", ("min_similarity", None)),
]


def figure(table, thresholds: dict):
    """Distributions of the QC metrics over the cohort, failures in red, thresholds dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for ax, (column, label, (low, high)) in zip(axes.ravel(), PANELS):
        values = table.reindex(columns=[column, "status"]).dropna()
        if values.empty:
            ax.set_axis_off()
            ax.set_title(f"{label}: no data", fontsize=9)
            continue
        bins = np.histogram_bin_edges(values[column], bins=30)
        for status, colour in (("pass", "tab:grey"), ("fail", "tab:red")):
            ax.hist(values.loc[values.status == status, column], bins=bins, color=colour, alpha=0.8, label=status)
        for key in (low, high):
            if key:
                ax.axvline(thresholds[key], color="black", ls="--", lw=1)
        ax.set_xlabel(label, fontsize=9)
    axes[0, 0].legend(fontsize=8)
    failed = table[table.status == "fail"]
    fig.suptitle(f"QC of {table.subject.nunique()} subjects: {len(failed)} of {len(table)} images failed (dashed: thresholds)")
    fig.tight_layout()
    return fig
