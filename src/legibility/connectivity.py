"""Resting-state connectivity: region time series and their correlation matrices (nilearn)."""

import nibabel as nib
import numpy as np


def atlas_labels(atlas_img):
    labels = np.unique(np.asarray(atlas_img.dataobj))
    return labels[labels > 0].astype(int)


def time_series(bold, atlas_img, settings: dict, labels=None):
    """Region mean signals (volumes x `labels`, default all of the atlas's). A region with no
    voxel on the image, or only voxels outside the field of view (flat, usually zero), gets a NaN
    column: masked, never a silent zero."""
    from nilearn.image import index_img
    from nilearn.maskers import NiftiLabelsMasker

    bold = bold if isinstance(bold, nib.Nifti1Image) else nib.load(bold)
    tr = float(bold.header.get_zooms()[3])
    bold = index_img(bold, slice(settings["drop_volumes"], None))
    masker = NiftiLabelsMasker(
        labels_img=atlas_img,
        detrend=settings["detrend"],
        standardize="zscore_sample" if settings["standardize"] else False,
        high_pass=settings["high_pass"],
        low_pass=settings["low_pass"],
        t_r=tr,
        resampling_target="data",
    )
    signals = masker.fit_transform(bold)
    labels = atlas_labels(atlas_img) if labels is None else labels
    full = np.full((signals.shape[0], len(labels)), np.nan, dtype=np.float64)
    # region_ids_ maps signal column -> label (plus a "background" entry)
    present = [int(label) for column, label in sorted((k, v) for k, v in masker.region_ids_.items() if k != "background")]
    signals[:, np.ptp(signals, axis=0) == 0] = np.nan
    full[:, np.searchsorted(labels, present)] = signals
    return full


def atlas_on(bold, atlas_img):
    """The atlas on the BOLD grid (nearest neighbour, so labels stay labels)."""
    from nilearn.image import index_img, resample_to_img

    return resample_to_img(atlas_img, index_img(bold, 0), interpolation="nearest", force_resample=True, copy_header=True)


def matrix(signals, kind: str = "correlation", fisher_z: bool = True):
    """Connectivity between the regions with signal; NaN rows and columns for the others."""
    from nilearn.connectome import ConnectivityMeasure

    present = ~np.isnan(signals).any(axis=0)
    measure = ConnectivityMeasure(kind=kind, standardize=False)
    values = measure.fit_transform([signals[:, present]])[0]
    out = np.full((signals.shape[1],) * 2, np.nan)
    out[np.ix_(present, present)] = values
    if fisher_z:
        out = np.arctanh(np.clip(out, -0.999999, 0.999999))
    np.fill_diagonal(out, 0.0)
    return out


def vectorise(square):
    """Upper triangle without the diagonal, row by row: the model's input vector."""
    return square[np.triu_indices(square.shape[0], k=1)]


def n_edges(n_regions: int) -> int:
    return n_regions * (n_regions - 1) // 2


def run_shard(bold: dict, qc_table, atlas_img, settings: dict, array_path, table_path):
    """Connectivity vectors of a shard's QC-passed BOLD series (one row per subject)."""
    import logging

    import pandas as pd

    from .io import write_tsv
    from .shards import PackedArray

    log = logging.getLogger("legibility.connectivity")
    subjects = sorted(bold)
    labels = atlas_labels(atlas_img)
    passed = set(qc_table.loc[(qc_table["status"] == "pass") & (qc_table["modality"] == "bold"), "subject"].astype(str))
    on_grid = {}  # the atlas resampled once per BOLD grid geometry, reused for the shard
    rows = []
    with PackedArray(array_path, (len(subjects), n_edges(len(labels))), dtype=np.float32) as out:
        for row, subject in enumerate(subjects):
            entry = {"subject": subject, "row": row, "source": bold[subject] or ""}
            if subject not in passed:
                rows.append({**entry, "status": "excluded", "reason": "BOLD absent or failed QC", "regions_without_signal": ""})
                continue
            image = nib.load(bold[subject])
            geometry = (image.shape[:3], image.affine.tobytes())
            if geometry not in on_grid:
                on_grid[geometry] = atlas_on(image, atlas_img)
            signals = time_series(image, on_grid[geometry], settings, labels)
            square = matrix(signals, settings["kind"], settings["fisher_z"])
            out[row] = vectorise(square)
            empty = np.flatnonzero(np.isnan(signals).all(axis=0)) + 1
            rows.append({**entry, "status": "ok", "reason": "", "regions_without_signal": " ".join(map(str, empty))})
            log.info("connectivity of sub-%s (%d/%d)", subject, row + 1, len(subjects))
    write_tsv(table_path, pd.DataFrame(rows))
