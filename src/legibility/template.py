"""The MNI152 (ICBM 2009 symmetric) template and tissue maps that nilearn ships (no download)."""

import functools
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np

FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def _data_dir() -> Path:
    # located without importing nilearn.datasets, which costs a second per process
    (root,) = importlib.util.find_spec("nilearn").submodule_search_locations
    return Path(root) / "datasets" / "data"


@functools.lru_cache(maxsize=2)
def mni152(resolution: int = 2) -> dict:
    """Arrays t1, gm, wm, csf (tissue probabilities in [0, 1]), brain (bool) and the affine.

    `resolution` (mm) is reached by block-averaging the 1 mm files.
    """
    maps, affine = {}, None
    for key, name in FILES.items():
        image = nib.load(_data_dir() / name)
        data, affine = _block_mean(np.asarray(image.dataobj, dtype=np.float32), image.affine, resolution)
        maps[key] = data / 255.0 if key != "t1" else data
    maps["brain"] = maps["t1"] > 0.05 * maps["t1"].max()
    maps["csf"] = np.clip(maps["brain"] - maps["gm"] - maps["wm"], 0, 1).astype(np.float32)
    maps["affine"] = affine
    return maps


def _block_mean(data, affine, factor):
    if factor == 1:
        return data, affine
    shape = [s // factor * factor for s in data.shape]
    data = data[: shape[0], : shape[1], : shape[2]]
    blocks = data.reshape(shape[0] // factor, factor, shape[1] // factor, factor, shape[2] // factor, factor)
    scaled = affine.copy()
    scaled[:3, :3] *= factor
    # the centre of the first block lies half a (new) voxel in from the old first voxel
    scaled[:3, 3] += affine[:3, :3] @ np.full(3, (factor - 1) / 2)
    return blocks.mean(axis=(1, 3, 5)), scaled
