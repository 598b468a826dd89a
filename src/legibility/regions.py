"""Atlas-region means of the preprocessed images: the linear baselines' image features, one
table row per subject and modality. Kept apart from the baseline's fitting so that a shard's job
loads neither scikit-learn nor torch."""

import nibabel as nib
import numpy as np
import pandas as pd

from .connectivity import Regions, atlas_labels, atlas_on
from .io import read_tsv
from .resample import SUFFIX, same_grid


def region_means(images: dict, atlas_img) -> pd.DataFrame:
    """One row per (subject, modality) of `images` {(subject, modality): NIfTI path}: the mean
    of each atlas region (NaN for a region outside the image's field of view). The atlas is
    resampled once per grid geometry."""
    labels = atlas_labels(atlas_img)
    grids, rows, grid_of = {}, [], {}
    for (subject, modality), path in sorted(images.items()):
        image = nib.load(path)
        same_grid(subject, {modality: image, **grid_of.setdefault(subject, {modality: image})})
        key = (image.shape, image.affine.round(6).tobytes())
        if key not in grids:
            grids[key] = Regions(atlas_on(image, atlas_img), labels)
        means = grids[key].means(np.asarray(image.dataobj, dtype=np.float32)[..., None])[0]
        rows.append({"subject": subject, "modality": modality, **{f"region_{r}": m for r, m in zip(labels, means)}})
    return pd.DataFrame(rows)


def shard_region_means(preprocess_table, nifti_dir, resolution: int, atlas_img) -> pd.DataFrame:
    """Region means of a shard's preprocessed images at one resolution."""
    table = read_tsv(preprocess_table)
    ok = table[table["status"] == "ok"]
    images = {(s, m): f"{nifti_dir}/sub-{s}_res-{resolution}_desc-preproc_{SUFFIX[m]}.nii.gz"
              for s, m in zip(ok["subject"].astype(str), ok["modality"])}  # fmt: skip
    columns = ["subject", "modality", *(f"region_{r}" for r in atlas_labels(atlas_img))]
    return region_means(images, atlas_img).reindex(columns=columns)
