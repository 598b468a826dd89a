"""Resting-state connectivity: region time series and their connectivity matrices.

The time series are the numbers nilearn's NiftiLabelsMasker gives (region means, then
nilearn.signal.clean with the same settings), read about as fast as the file: the series is
streamed in blocks of volumes through one open file, and each block is reduced to region means
at once (np.add.reduceat over the regions' voxels), so neither the whole series nor a float
copy of it is ever held. Matrices come from nilearn's ConnectivityMeasure. The signals are
denoised from each subject's confounds table: by default the columns of STANDARD_CONFOUNDS
regressed out, and high-motion volumes censored.
"""

import nibabel as nib
import numpy as np
import pandas as pd

BLOCK_VOLUMES = 32
MOTION_PARAMETERS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
# connectivity.confounds: standard. fMRIPrep's 24 motion parameters (each, its derivative, their
# squares; Friston et al. 1996) and the mean white-matter and CSF signals: the columns nilearn's
# load_confounds(strategy=("motion", "wm_csf"), motion="full", wm_csf="basic") selects
STANDARD_CONFOUNDS = (
    *(f"{name}{suffix}" for name in MOTION_PARAMETERS for suffix in ("", "_derivative1", "_power2", "_derivative1_power2")),
    "csf",
    "white_matter",
)
# what Snakemake's log says once where connectivity comes from BOLD without a confounds table
NO_CONFOUNDS = (
    "connectivity is computed from BOLD without a confounds table (inputs.templates.confounds): the region signals are "
    "not denoised and may carry head motion; give a confounds template (fMRIPrep's desc-confounds_timeseries.tsv) to denoise them"
)


def confound_columns(confounds) -> list:
    """The confounds table's columns that `connectivity.confounds` names: the list itself, or
    for `standard` STANDARD_CONFOUNDS."""
    return list(STANDARD_CONFOUNDS) if confounds == "standard" else list(confounds)


def readme(settings: dict, source: str, confounds_table: bool, volumes=()) -> str:
    """results/connectivity/README.md: how the region signals were denoised (the confound
    columns regressed out, the censoring threshold), or that they were not; for matrices
    given (`source` connectome), that they are the provider's. `volumes`: per subject, the
    volumes its matrix was computed from (NaN where unknown)."""
    if source == "connectome":
        return _markdown([
            "The connectivity matrices are the data provider's (inputs.templates.connectome), read as given: how their "
            "signals were cleaned and denoised is the provider's, not this workflow's, and the `connectivity` settings "
            "(confounds, censor_fd, filters) do not apply to them.",
        ])  # fmt: skip
    high, low = settings["high_pass"], settings["low_pass"]
    band = {(True, True): f"band-passed ({high}-{low} Hz)", (True, False): f"high-passed ({high} Hz)",
            (False, True): f"low-passed ({low} Hz)", (False, False): "not filtered"}[high is not None, low is not None]  # fmt: skip
    z = " (Fisher z)" if settings["fisher_z"] and settings["kind"] != "tangent" else ""
    paragraphs = [
        f"Each subject's region signals are the mean BOLD signal of each atlas region (results/atlas/atlas.tsv), the first "
        f"{settings['drop_volumes']} volumes dropped, {'detrended, ' if settings['detrend'] else ''}{band}"
        f"{', standardised' if settings['standardize'] else ''} (nilearn's signal.clean); the matrices are {settings['kind']}{z}.",
        "## Denoising",
    ]  # fmt: skip
    if not confounds_table:
        return _markdown(paragraphs + [
            "**The region signals were not denoised.** No confounds table was given (inputs.templates.confounds), so no "
            "confound was regressed out and no volume was censored (connectivity.confounds and connectivity.censor_fd apply "
            "only with one): the matrices may carry head motion, which adds correlation between regions, the more so in "
            "subjects who move more. To denoise them, give a `confounds` template: each subject's confounds table "
            "(fMRIPrep's `desc-confounds_timeseries.tsv`).",
        ])  # fmt: skip
    columns = confound_columns(settings["confounds"])
    if settings["confounds"] == "standard":
        strategy = ("`standard`: fMRIPrep's 24 motion parameters and the mean white-matter and CSF signals, the columns "
                    "nilearn's `load_confounds` selects with strategy motion and wm_csf, motion full, wm_csf basic")  # fmt: skip
    else:
        strategy = "a list"
    paragraphs.append(
        f"Regressed out of the region signals, from each subject's confounds table (connectivity.confounds, {strategy}): "
        f"{len(columns)} column{'s' * (len(columns) > 1)}, {', '.join(f'`{c}`' for c in columns)}." if columns
        else "No confound was regressed out of the region signals (connectivity.confounds is empty)."
    )  # fmt: skip
    paragraphs.append(
        f"Censored: volumes whose framewise displacement exceeds {settings['censor_fd']} mm were left out (connectivity.censor_fd)."
        if settings["censor_fd"] is not None else "No volume was censored (connectivity.censor_fd is null)."
    )  # fmt: skip
    if not columns and settings["censor_fd"] is None:
        paragraphs.append("**The region signals were not denoised**: the matrices may carry head motion.")
    used = np.asarray([v for v in volumes if np.isfinite(v)], dtype=float)
    if used.size:
        paragraphs.append(f"Volumes used per subject: median {np.median(used):g}, fewest {used.min():g}, most {used.max():g} "
                          f"({used.size} subjects; each subject's in results/connectivity/shard-*.tsv, column `volumes`).")  # fmt: skip
    return _markdown(paragraphs)


def _markdown(paragraphs) -> str:
    return "\n\n".join(["# Connectivity", *paragraphs]) + "\n"


def atlas_labels(atlas_img):
    labels = np.unique(np.asarray(atlas_img.dataobj))
    return labels[labels > 0].astype(int)


def atlas_on(bold, atlas_img):
    """The atlas on the BOLD grid (nearest neighbour, so labels stay labels)."""
    from nilearn.image import resample_to_img

    grid = nib.Nifti1Image(np.zeros(bold.shape[:3], np.int8), bold.affine)
    return resample_to_img(atlas_img, grid, interpolation="nearest", force_resample=True, copy_header=True)


class Regions:
    """The voxels of each region on one grid, ordered so np.add.reduceat sums them per region."""

    def __init__(self, labels_on_grid, region_ids):
        flat = np.asarray(labels_on_grid.dataobj).astype(int).ravel(order="F")  # NIfTI voxel order
        inside = np.flatnonzero(np.isin(flat, region_ids))
        self.voxels = inside[np.argsort(flat[inside], kind="stable")]
        labels = flat[self.voxels]
        self.starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if len(labels) else np.zeros(0, int)
        self.counts = np.diff(np.r_[self.starts, len(labels)])
        self.columns = np.searchsorted(region_ids, labels[self.starts])
        self.n_regions = len(region_ids)

    def means(self, block):
        """(volumes x regions) means of a (x, y, z, volumes) block; NaN for regions not on the grid."""
        out = np.full((block.shape[-1], self.n_regions), np.nan)
        if len(self.voxels):
            flat = block.reshape(-1, block.shape[-1], order="F")
            sums = np.add.reduceat(flat[self.voxels].astype(np.float64), self.starts, axis=0)
            out[:, self.columns] = (sums / self.counts[:, None]).T
        return out


def region_means(path, regions: Regions, drop: int = 0):
    """Raw region means (volumes after `drop` x regions), streamed from the file."""
    image = nib.load(path, keep_file_open=True)  # one open file, read forward, not reopened per block
    n_volumes = image.shape[3]
    means = [regions.means(np.asarray(image.dataobj[..., start : min(start + BLOCK_VOLUMES, n_volumes)]))
             for start in range(drop, n_volumes, BLOCK_VOLUMES)]  # each block reduced as soon as it is read
    return np.vstack(means) if means else np.zeros((0, regions.n_regions))


def clean(raw, settings: dict, t_r: float, confounds=None, sample_mask=None):
    """nilearn.signal.clean with the masker's settings, on regions with signal; a region with no
    voxel in view, or a flat signal, is NaN: masked, never a silent zero."""
    from nilearn.signal import clean as nilearn_clean

    signal = np.isfinite(raw).all(axis=0) & (np.ptp(np.nan_to_num(raw), axis=0) > 0)
    kept = len(raw) if sample_mask is None else len(sample_mask)
    out = np.full((kept, raw.shape[1]), np.nan)
    if signal.any():
        out[:, signal] = nilearn_clean(
            raw[:, signal], detrend=settings["detrend"], standardize="zscore_sample" if settings["standardize"] else False,
            standardize_confounds=True, t_r=t_r, low_pass=settings["low_pass"], high_pass=settings["high_pass"],
            confounds=confounds, sample_mask=sample_mask,
        )  # fmt: skip
    return out


def confound_regressors(path, settings: dict, drop: int):
    """(confounds array or None, sample mask or None) for the volumes after `drop`. A derivative's
    n/a in the first row takes the second row's value, as nilearn's load_confounds does."""
    columns = confound_columns(settings["confounds"])
    if path is None or not (columns or settings["censor_fd"] is not None):
        return None, None
    from .qc import framewise_displacement

    table = pd.read_csv(path, sep="\t", na_values=["n/a"]).iloc[drop:]
    missing = [c for c in columns if c not in table]
    if missing:
        strategy = " (connectivity.confounds: standard, fMRIPrep's columns)" if settings["confounds"] == "standard" else ""
        raise ValueError(f"{path}: no confound column {', '.join(missing)}{strategy}")
    regressors = None
    if columns:
        selected = table[columns].reset_index(drop=True)
        if len(selected) > 1:
            selected.iloc[0] = selected.iloc[0].fillna(selected.iloc[1])
        regressors = selected.fillna(0).to_numpy(float)
    mask = None
    if settings["censor_fd"] is not None:  # QC made sure enough volumes survive
        mask = np.flatnonzero(framewise_displacement(path)[drop:] <= settings["censor_fd"])
    return regressors, mask


def time_series(bold_path, atlas_img, settings: dict, confounds_path=None, labels=None):
    """Cleaned region time series (volumes x atlas regions) of one BOLD file."""
    image = nib.load(bold_path)
    labels = atlas_labels(atlas_img) if labels is None else labels
    regions = Regions(atlas_on(image, atlas_img), labels)
    regressors, mask = confound_regressors(confounds_path, settings, settings["drop_volumes"])
    raw = region_means(bold_path, regions, settings["drop_volumes"])
    return clean(raw, settings, float(image.header.get_zooms()[3]), regressors, mask)


def matrix(signals, kind: str = "correlation", fisher_z: bool = True):
    """Connectivity between the regions with signal; NaN rows and columns for the others."""
    from nilearn.connectome import ConnectivityMeasure

    present = ~np.isnan(signals).any(axis=0)
    values = ConnectivityMeasure(kind=kind, standardize=False).fit_transform([signals[:, present]])[0]
    out = np.full((signals.shape[1],) * 2, np.nan)
    out[np.ix_(present, present)] = values
    if fisher_z:
        out = np.arctanh(np.clip(out, -0.999999, 0.999999))
    np.fill_diagonal(out, 0.0)
    return out


def tangent(train_series: list, all_series: list):
    """Tangent-space vectors of every subject around the group mean of the training subjects
    only (nilearn's ConnectivityMeasure); regions masked in any subject are left out (NaN)."""
    from nilearn.connectome import ConnectivityMeasure

    present = np.all([~np.isnan(s).any(axis=0) for s in all_series], axis=0)
    measure = ConnectivityMeasure(kind="tangent", standardize=False)
    measure.fit([s[:, present] for s in train_series])
    squares = measure.transform([s[:, present] for s in all_series])
    out = np.full((len(all_series), len(present), len(present)), np.nan)
    out[:, present[:, None] & present[None, :]] = squares.reshape(len(all_series), -1)
    return [vectorise(square) for square in out]


def vectorise(square):
    """Upper triangle without the diagonal, row by row: the model's input vector."""
    return square[np.triu_indices(square.shape[0], k=1)]


def n_edges(n_regions: int) -> int:
    return n_regions * (n_regions - 1) // 2


def read_connectome(path):
    """A precomputed matrix from .npy, .txt, .csv or .tsv (square and symmetric, or its upper
    triangle row by row) as the model's vector; raises ValueError saying what is wrong."""
    path = str(path)
    try:
        if path.endswith(".npy"):
            values = np.load(path, allow_pickle=False)
        else:
            values = pd.read_csv(path, sep=None, engine="python", header=None).to_numpy(float)
        values = np.squeeze(np.asarray(values, dtype=float))
    except Exception as error:
        raise ValueError(f"not a numeric matrix ({type(error).__name__}: {error})") from None
    if not np.isfinite(values).all():
        raise ValueError("NaN or infinite values")
    if values.ndim == 2 and values.shape[0] == values.shape[1]:
        if not np.allclose(values, values.T, atol=1e-6):
            raise ValueError("the matrix is not symmetric")
        return vectorise(values)
    n = (1 + np.sqrt(1 + 8 * values.size)) / 2
    if values.ndim <= 1 and n == int(n):
        return values.ravel()
    raise ValueError(f"shape {values.shape} is neither a square matrix nor an upper triangle")


def square(vector):
    """The symmetric matrix (zero diagonal) of an upper-triangle vector."""
    n = int(round((1 + np.sqrt(1 + 8 * len(vector))) / 2))
    out = np.zeros((n, n))
    out[np.triu_indices(n, k=1)] = vector
    return out + out.T


def matrix_figure(values, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(5, 4.3))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set(title=title, xlabel="region", ylabel="region")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def run_shard(images: dict, qc_table, atlas_img, settings: dict, array_path, table_path, series_path, figure_dir):
    """Connectivity of a shard's subjects (`images`: subject -> {modality: path}) from their
    QC-passed BOLD series (or their precomputed `connectome` files): one vector per subject
    (NaN rows for the others), the cleaned time series, a table, and a matrix figure each.
    With kind tangent the vectors are correlations; the tangent vectors are made for the
    cohort (`tangent_vectors`), around the training subjects' mean."""
    import logging
    from pathlib import Path

    from .io import atomic_path, save_figure, write_tsv
    from .shards import PackedArray

    log = logging.getLogger("legibility.connectivity")
    subjects = sorted(images)
    precomputed = any("connectome" in paths for paths in images.values())
    modality = "connectome" if precomputed else "bold"
    ok = qc_table[(qc_table["status"] == "pass") & (qc_table["modality"] == modality)]
    passed = set(ok["subject"])
    per_subject_kind = "correlation" if settings["kind"] == "tangent" else settings["kind"]
    vectors, series, rows = {}, {}, []
    labels = None if precomputed else atlas_labels(atlas_img)
    on_grid = {}  # the atlas on each BOLD grid geometry, made once and reused
    for row, subject in enumerate(subjects):
        paths = images[subject]
        entry = {"subject": subject, "row": row, "source": paths.get(modality, "")}
        if subject not in passed:
            rows.append({**entry, "status": "excluded", "reason": f"{modality} absent or failed QC"})
            continue
        if precomputed:
            vectors[subject] = read_connectome(paths["connectome"])
            rows.append({**entry, "status": "ok", "reason": ""})
            continue
        image = nib.load(paths["bold"])
        geometry = (image.shape[:3], image.affine.tobytes())
        if geometry not in on_grid:
            on_grid[geometry] = Regions(atlas_on(image, atlas_img), labels)
        regressors, mask = confound_regressors(paths.get("confounds"), settings, settings["drop_volumes"])
        raw = region_means(paths["bold"], on_grid[geometry], settings["drop_volumes"])
        signals = clean(raw, settings, float(image.header.get_zooms()[3]), regressors, mask)
        series[subject] = signals.astype(np.float32)
        vectors[subject] = vectorise(matrix(signals, per_subject_kind, settings["fisher_z"]))
        masked = labels[np.isnan(signals).all(axis=0)]
        rows.append({**entry, "status": "ok", "reason": "", "volumes": len(signals), "regions_without_signal": " ".join(map(str, masked))})
        log.info("connectivity of sub-%s (%d/%d)", subject, row + 1, len(subjects))
    width = _common_width(vectors, rows, log)
    with PackedArray(array_path, (len(subjects), width), dtype=np.float32) as out:
        for entry in rows:
            if entry["status"] == "ok":
                out[entry["row"]] = vectors[entry["subject"]]
    with atomic_path(series_path) as tmp:
        np.savez(tmp, **series)
    Path(figure_dir).mkdir(parents=True, exist_ok=True)
    for entry in rows:
        if entry["status"] == "ok":
            title = f"sub-{entry['subject']} {per_subject_kind}" + (" (Fisher z)" if settings["fisher_z"] else "")
            save_figure(Path(figure_dir) / f"sub-{entry['subject']}.png", matrix_figure(square(vectors[entry["subject"]]), title))
    columns = ["subject", "row", "status", "reason", "source", "volumes", "regions_without_signal"]
    write_tsv(table_path, pd.DataFrame(rows).reindex(columns=columns))


def _common_width(vectors: dict, rows: list, log) -> int:
    """The vector length most subjects share; a subject with another is excluded, with the reason."""
    if not vectors:
        return 0
    lengths = pd.Series({s: len(v) for s, v in vectors.items()})
    width = int(lengths.mode().iloc[0])
    for entry in rows:
        if entry["status"] == "ok" and lengths[entry["subject"]] != width:
            entry.update(status="excluded", reason=f"{lengths[entry['subject']]} values, not {width} like the others")
            log.warning("sub-%s: %s", entry["subject"], entry["reason"])
    return width


def tangent_vectors(series_paths, split: dict):
    """(subjects, vectors) in tangent space around the mean of the training subjects' matrices."""
    series = {}
    for path in series_paths:
        with np.load(path) as stored:
            series.update({subject: stored[subject].astype(np.float64) for subject in stored.files})
    subjects = sorted(series)
    train = [s for s in subjects if split.get(s) == "train"]
    if not train:
        raise ValueError("no training subject has a BOLD series: the tangent space has no reference")
    return subjects, tangent([series[s] for s in train], [series[s] for s in subjects])
