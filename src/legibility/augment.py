"""Cached augmentation: K randomly transformed copies of each training subject, made once.

MONAI transforms, seeded from (config seed, subject, copy), so a rerun gives the same bytes.
All modalities of a subject are stacked as channels and share one geometric transform.
"""

import numpy as np

from .seeds import derive_seed


def transform(settings: dict, normalise: str, size: int, fov_mm: float):
    """The random transform chain for `size`³ cubes spanning `fov_mm`."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandBiasField,
        RandFlip,
        RandGaussianNoise,
        RandSmoothDeform,
    )

    padding = "zeros" if normalise == "zscore" else "border"  # the background value either way
    rotate = np.deg2rad(settings["rotate_deg"])
    points = settings["elastic_control_points"]
    return Compose(
        [
            RandAffine(
                prob=1.0,
                rotate_range=(rotate,) * 3,
                scale_range=(settings["scale"],) * 3,
                translate_range=(settings["translate_mm"] * size / fov_mm,) * 3,
                padding_mode=padding,
            ),
            # a coarse random field upsampled smoothly: elastic deformation at a twentieth of
            # the cost of Rand3DElastic, which smooths a full-size field
            RandSmoothDeform(
                spatial_size=(size,) * 3,
                rand_size=(points,) * 3,
                def_range=2 * settings["elastic_mm"] / fov_mm,  # in [-1, 1] grid units
                prob=settings["elastic_prob"],
                field_mode="trilinear",
                align_corners=True,
                grid_mode="bilinear",
                grid_padding_mode=padding,
            ),
            RandFlip(prob=settings["flip_lr_prob"], spatial_axis=0),  # axis 0 is left-right (RAS)
            RandBiasField(coeff_range=(0.0, settings["bias_field_coeff"]), prob=settings["bias_field_prob"]),
            RandAdjustContrast(gamma=settings["gamma"], prob=settings["gamma_prob"]),
            RandGaussianNoise(std=settings["noise_std"], prob=settings["noise_prob"]),
        ]
    )


def copies(volume, chain, copies: int, seed: int, subject: str):
    """(copies, C, X, Y, Z) float16 copies of a (C, X, Y, Z) volume; NaN channels stay NaN."""
    import torch

    torch.set_num_threads(1)
    missing = np.isnan(volume).all(axis=(1, 2, 3))
    clean = np.nan_to_num(volume.astype(np.float32))
    out = np.empty((copies, *volume.shape), dtype=np.float16)
    for copy in range(copies):
        chain.set_random_state(seed=derive_seed(seed, "augment", subject, copy) % 2**32)
        result = chain(clean)
        out[copy] = np.asarray(result.detach().cpu().numpy() if hasattr(result, "detach") else result)
        out[copy, missing] = np.nan
    return out


def run_shard(preprocess_table, packed_path, settings: dict, normalise: str, fov_mm: float, seed: int, array_path, table_path):
    """Augmented copies, at one resolution, of a shard's subjects with a preprocessed image."""
    import logging

    import pandas as pd

    from .io import write_tsv
    from .shards import PackedArray, open_packed

    log = logging.getLogger("legibility.augment")
    usable = preprocess_table[preprocess_table["status"] == "ok"]
    rows_of = dict(zip(usable["subject"].astype(str), usable["row"]))
    subjects = sorted(rows_of)
    originals = open_packed(packed_path)
    size = originals.shape[-1]
    chain = transform(settings, normalise, size, fov_mm)
    with PackedArray(array_path, (len(subjects), settings["copies"], *originals.shape[1:])) as out:
        for row, subject in enumerate(subjects):
            out[row] = copies(np.asarray(originals[rows_of[subject]]), chain, settings["copies"], seed, subject)
            log.info("augmented sub-%s (%d/%d)", subject, row + 1, len(subjects))
    write_tsv(table_path, pd.DataFrame({"subject": subjects, "row": range(len(subjects))}))
