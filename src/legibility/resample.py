"""Structural preprocessing: any orientation in, RAS cubes of 128³ and 64³ out.

The finest grid is sampled once, trilinearly, straight from the source voxels (one affine
transform covers reorientation, obliquity and voxel size); coarser grids are 2x2x2 means of
finer ones, which is faster than resampling again and avoids aliasing.
"""

import numpy as np
from scipy import ndimage

from .qc import FOREGROUND


def brain_grid(centre, size: int, fov_mm: float):
    """Affine of a RAS-aligned cube of `size`³ voxels spanning `fov_mm`, centred on `centre`."""
    voxel = fov_mm / size
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = np.asarray(centre) - voxel * (size - 1) / 2
    return affine


def foreground(data):
    positive = data[data > 0]
    return data > FOREGROUND * np.percentile(positive, 99)


def resample(data, affine, target_affine, shape, order=1):
    """Sample `data` (voxel-to-world `affine`) on the grid of `target_affine` and `shape`."""
    to_source = np.linalg.inv(affine) @ target_affine
    return ndimage.affine_transform(
        data, to_source[:3, :3], offset=to_source[:3, 3], output_shape=shape,
        order=order, mode="constant", cval=0.0, prefilter=False,
    )  # fmt: skip


def halve(volume, affine):
    """2x2x2 block mean, and the affine of the coarser grid."""
    n = volume.shape[0] // 2
    out = volume.reshape(n, 2, n, 2, n, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    coarse = affine.copy()
    coarse[:3, :3] *= 2
    coarse[:3, 3] += affine[:3, :3] @ np.full(3, 0.5)
    return out, coarse


def normalise(volume, mask, percentiles, method):
    """Clamp to brain percentiles, then z-score within the brain or scale to [-1, 1]."""
    low, high = np.percentile(volume[mask], percentiles)
    clamped = np.clip(volume, low, high)
    if method == "zscore":
        inside = clamped[mask]
        out = (clamped - inside.mean()) / max(float(inside.std()), 1e-6)
        return np.where(mask, out, 0.0).astype(np.float32)
    out = 2 * (clamped - low) / max(high - low, 1e-6) - 1
    return np.where(mask, out, -1.0).astype(np.float32)


def preprocess(data, affine, resolutions, fov_mm, percentiles, method):
    """{resolution: (float32 cube, affine)} for one 3D image."""
    data = np.nan_to_num(np.asarray(data, dtype=np.float32))
    fg = foreground(data)
    centre = affine[:3, :3] @ np.argwhere(fg).mean(axis=0) + affine[:3, 3]
    finest = max(resolutions)
    grid = brain_grid(centre, finest, fov_mm)
    volume = resample(data, affine, grid, (finest,) * 3)
    volume = normalise(volume, foreground(volume), percentiles, method)
    out = {finest: (volume, grid)}
    while volume.shape[0] > min(resolutions):
        volume, grid = halve(volume, grid)
        out[volume.shape[0]] = (volume, grid)
    return {size: out[size] for size in resolutions}


SUFFIX = {"t1": "T1w", "flair": "FLAIR", "dwi": "MD"}


def run_shard(images: dict, qc_table, settings: dict, packed: dict, table_path, nifti_dir):
    """Preprocess a shard's QC-passed structural images.

    `packed` maps resolution -> .npy path of a (subjects, modalities, r, r, r) float16 array
    (NaN where an image is absent or failed); every configured resolution is also written as
    NIfTI for people, and a table lists each image's status, source and checksum.
    """
    import contextlib
    import logging
    from pathlib import Path

    import nibabel as nib
    import pandas as pd

    from . import MODALITIES
    from .io import save_nifti, sha256, write_tsv
    from .qc import load
    from .shards import PackedArray

    log = logging.getLogger("legibility.resample")
    subjects = sorted(images)
    ok = qc_table[qc_table["status"] == "pass"]
    passed = set(zip(ok["subject"], ok["modality"]))
    rows = []
    with contextlib.ExitStack() as stack:
        arrays = {
            size: stack.enter_context(PackedArray(path, (len(subjects), len(MODALITIES), size, size, size)))
            for size, path in packed.items()
        }
        for row, subject in enumerate(subjects):
            for channel, modality in enumerate(MODALITIES):
                source = images[subject].get(modality)
                entry = {"subject": subject, "row": row, "modality": modality, "source": source or ""}
                if source is None:
                    rows.append({**entry, "status": "absent", "reason": "no image"})
                    continue
                if (subject, modality) not in passed:
                    rows.append({**entry, "status": "excluded", "reason": "failed QC (see results/qc.tsv)"})
                    continue
                try:
                    image, data = load(source, ndim=3)
                    cubes = preprocess(data, image.affine, settings["resolutions"], settings["fov_mm"],
                                       settings["clamp_percentiles"], settings["normalise"])  # fmt: skip
                except Exception as error:  # QC passed it, so this is a bug: say which file
                    raise RuntimeError(f"{source}: preprocessing failed: {error}") from error
                for size, (volume, affine) in cubes.items():
                    derivative = nib.Nifti1Image(volume, affine)
                    derivative.set_data_dtype(np.int16)  # scaled integers: a quarter of float32 on disk
                    derivative.header.set_xyzt_units("mm")
                    save_nifti(Path(nifti_dir) / f"sub-{subject}_res-{size}_desc-preproc_{SUFFIX[modality]}.nii.gz", derivative)
                    if size in arrays:
                        arrays[size][row, channel] = volume
                rows.append({**entry, "status": "ok", "reason": "", "sha256": sha256(source)})
            log.info("preprocessed sub-%s (%d/%d)", subject, row + 1, len(subjects))
    columns = ["subject", "row", "modality", "status", "reason", "source", "sha256"]
    write_tsv(table_path, pd.DataFrame(rows).reindex(columns=columns))
