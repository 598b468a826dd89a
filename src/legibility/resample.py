"""Structural preprocessing: any orientation in, cubes of 128³ and 64³ on one MNI grid out.

Every image lands on the same grid: a cube at fixed MNI coordinates covering the MNI152 brain,
reached through the map from MNI to the image's world (the identity for images already in MNI
space, the registration's for native ones). The finest grid is sampled once, trilinearly,
straight from the source voxels (no double interpolation); coarser grids
are 2x2x2 means of finer ones (faster than resampling again, and no aliasing). Most scans are
axis-aligned, so the trilinear map onto the RAS grid separates into three one-dimensional
passes: the same numbers as scipy's affine_transform (order 1, constant mode) at a fraction of
the cost. Oblique maps (a registration, a tilted scan) go through PyTorch's grid_sample,
walking the source in memory order.
"""

import numpy as np
from scipy import ndimage

from .qc import FOREGROUND

STATS_STEP = 4  # brain statistics (threshold, centre, clamp values) from every 4th voxel per axis
# the middle of the MNI152 brain's bounding box (x -72..72, y -107..73, z -72..82 mm in nilearn's
# template): a 192 mm cube around it holds the whole brain with a margin
MNI_CENTRE_MM = (0.0, -17.0, 5.0)


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
    """Sample `data` (voxel-to-world `affine`) on the grid of `target_affine` and `shape`.

    Trilinear (order 1) maps come out as float32 and equal to scipy's affine_transform (constant
    mode, cval 0): axis-aligned ones in separable passes, oblique ones through torch's
    grid_sample. Nearest-neighbour (order 0, for masks) is scipy's own.
    """
    to_source = np.linalg.inv(affine) @ target_affine
    if order == 1 and _axis_aligned(to_source[:3, :3]):
        return _separable(data, to_source, shape)
    if order == 1 and min(np.shape(data)) > 1:
        return _oblique(data, to_source, shape)
    return ndimage.affine_transform(
        data, to_source[:3, :3], offset=to_source[:3, 3], output_shape=shape,
        order=order, mode="constant", cval=0.0, prefilter=False,
    )  # fmt: skip


def _axis_aligned(linear, tolerance=1e-6):
    big = np.abs(linear) > tolerance * np.abs(linear).max()
    return bool((big.sum(axis=0) == 1).all() and (big.sum(axis=1) == 1).all())


_TILE_ROWS = 32  # rows of the walk per batch item of grid_sample (about 10% faster than whole planes)
_TILE_VOXELS = 1 << 16  # output voxels per batch item: 16 planes of 32 rows of 128


def _oblique(data, to_source, shape):
    """Trilinear resampling of a general affine map with torch's grid_sample (CPU, float32, the
    caller's torch threads), with scipy's constant mode: 0 wherever a point falls outside
    [0, n - 1] on any source axis, the usual interpolation everywhere else.

    The source is read in memory order (for NIfTI's Fortran-ordered arrays, the transpose); the
    output is walked along its axes, the innermost stepping mostly along the source's
    memory-contiguous axis and every axis forward along it. Each row of the walk meets the
    source in one span (in closed form, float64, the boundary included as in scipy). The walk
    goes in slabs of a few planes cut into tiles of rows, cropped to where the rows meet the
    source: the tiles' sampling grid (normalised to [-1, 1], align_corners=True) is built in
    one reused buffer of a few MB, sampled as one batch (grid_sample runs batch items on
    torch's threads), cleared outside the spans and written into the C-ordered result.
    """
    import itertools
    import warnings

    import torch
    import torch.nn.functional as F

    data = np.asarray(data, dtype=np.float32)
    layout = (2, 1, 0) if data.flags.f_contiguous and not data.flags.c_contiguous else (0, 1, 2)
    volume = np.ascontiguousarray(data.transpose(layout))  # a view for C- or Fortran-ordered data
    with warnings.catch_warnings():  # a read-only array is fine: nothing writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        source = torch.from_numpy(volume)[None, None]  # (1, 1, D, H, W): volume axis a is source axis layout[a]
    axes = [layout[2 - k] for k in range(3)]  # grid component k (x, y, z) indexes W, H, D: volume axis 2 - k
    linear, offset = to_source[axes, :3], to_source[axes, 3].copy()  # output index -> (x, y, z) voxel
    sizes = np.array(volume.shape[::-1], dtype=float)  # voxels along x, y, z
    out = np.zeros(shape, dtype=np.float32)
    # walk axis d is output axis order[d], stepping mostly along component 2 - d (the last along x)
    order = max(itertools.permutations(range(3)), key=lambda p: np.prod(np.abs(linear[[2, 1, 0], list(p)])))
    walk, step = out.transpose(order), linear[:, list(order)].copy()  # step[:, d]: coordinates per walk step
    origin, sign = [0, 0, 0], [1, 1, 1]  # walk index i on axis d is output index origin[d] + sign[d] * i
    for d in range(3):  # every walk axis forward along x (then y, z): measured 1.5x faster than backward
        lead = step[:, d][np.abs(step[:, d]) > 1e-9 * np.abs(step[:, d]).max()][0]
        if lead < 0:
            origin[d], sign[d] = walk.shape[d] - 1, -1
            offset += step[:, d] * (walk.shape[d] - 1)
            step[:, d] *= -1
            walk = np.flip(walk, axis=d)
    depth, height, width = walk.shape
    tile = min(_TILE_ROWS, height)
    planes = max(1, min(depth, _TILE_VOXELS // (tile * width)))
    padded = (-(-depth // planes) * planes, height + tile)  # whole slabs and tiles: the excess is dropped
    rows = offset + np.arange(padded[0])[:, None, None] * step[:, 0] + np.arange(padded[1])[None, :, None] * step[:, 1]
    index = {order[0]: origin[0] + sign[0] * np.arange(padded[0])[:, None], order[1]: origin[1] + sign[1] * np.arange(padded[1])}

    def exact(k, w):
        """Coordinate k of every row at its index w, in scipy's arithmetic (offset first, then
        output axes in order): the same float64 numbers decide what lies on the boundary."""
        matrix, c = to_source[axes[k]], to_source[axes[k], 3]
        for o in range(3):
            c = c + matrix[o] * (index[o] if o in index else origin[2] + sign[2] * w)
        return c

    first, last = _span(rows, step[:, 2], sizes, width, exact)  # where each row meets the source
    first[depth:], first[:, height:], last[depth:], last[:, height:] = width, width, -1, -1
    across = np.arange(width, dtype=first.dtype)
    to_unit = 2 / (sizes - 1)
    plane = ((rows[0, :, None] + across[:, None] * step[:, 2]) * to_unit - 1).astype(np.float32)  # (rows, W, 3)
    lift = np.tile((np.arange(padded[0])[:, None] * step[:, 0] * to_unit).astype(np.float32), width)  # (planes, W * 3)
    slabs = max(1, -(-torch.get_num_threads() // -(-height // tile)))  # slabs per call: a tile for every thread
    buffer = np.empty(slabs * planes * (height + tile) * width * 3, dtype=np.float32)
    for start in range(0, depth, slabs * planes):
        stop = min(padded[0], start + slabs * planes)
        low, high = first[start:stop], last[start:stop]
        meets = low <= high
        if not meets.any():
            continue
        lines = np.flatnonzero(meets.any(axis=0))
        h0, tiles, w0, w1 = lines[0], -(-(lines[-1] + 1 - lines[0]) // tile), int(low[meets].min()), int(high[meets].max()) + 1
        k, ww = (stop - start) // planes, w1 - w0
        grid = buffer[: k * tiles * planes * tile * ww * 3].reshape(k, tiles, planes, tile, ww * 3)
        np.add(plane[h0 : h0 + tiles * tile, w0:w1].reshape(1, tiles, 1, tile, ww * 3),
               lift[start:stop, : ww * 3].reshape(k, 1, planes, 1, ww * 3), out=grid)  # fmt: skip
        with torch.no_grad():
            sampled = F.grid_sample(source.expand(k * tiles, -1, -1, -1, -1), torch.from_numpy(grid).view(k * tiles, planes, tile, ww, 3),
                                    mode="bilinear", padding_mode="zeros", align_corners=True)  # fmt: skip
        sampled = sampled.numpy().reshape(k, tiles, planes, tile, ww)
        for s, t in itertools.product(range(k), range(tiles)):
            r0, q0 = start + s * planes, h0 + t * tile
            r1, q1 = min(depth, r0 + planes), min(height, q0 + tile)
            if r1 > r0 and q1 > q0:
                block, span = sampled[s, t, : r1 - r0, : q1 - q0], (slice(r0 - start, r1 - start), slice(q0, q1), None)
                block *= (across[w0:w1] >= low[span]) & (across[w0:w1] <= high[span])
                walk[r0:r1, q0:q1, w0:w1] = block  # a strided copy (ufuncs writing there are far slower)
    return out


def _span(rows, slope, sizes, width, exact):
    """First and last w in [0, width) where the coordinates `rows` + w * `slope` (rows: (..., 3))
    lie in [0, n - 1] on every axis, as integer arrays; first > last where there is none.
    `exact(k, w)` (coordinate k of every row at its w, as scipy computes it) settles the points on
    the boundary, inside as in scipy."""
    first = np.zeros(rows.shape[:-1])
    last = np.full(rows.shape[:-1], width - 1.0)
    for k in range(3):
        start, a, top = rows[..., k], slope[k], sizes[k] - 1

        def inside(w):
            c = exact(k, w)
            return (c >= 0) & (c <= top)

        if a == 0:
            last[~inside(np.zeros(rows.shape[:-1]))] = -1
            continue
        low, high = (-start / a, (top - start) / a) if a > 0 else ((top - start) / a, -start / a)
        low, high = np.ceil(low), np.floor(high)
        for _ in range(2):  # put right what the division rounded off
            low -= inside(low - 1)
            low += ~inside(low)
            high += inside(high + 1)
            high -= ~inside(high)
        np.maximum(first, low, out=first)
        np.minimum(last, high, out=last)
    kind = np.int16 if width < 2**15 else np.int64  # cheap comparisons against the row's indices
    return np.minimum(first, width).astype(kind), np.maximum(last, -1).astype(kind)


def _separable(data, to_source, shape):
    """Trilinear resampling of an axis-aligned map, one axis at a time.

    Passes run on the C-ordered view of the data (for NIfTI's Fortran-ordered arrays, the
    transpose), outermost axis first, so every pass reads memory in order; the small result is
    transposed to the output's axes once at the end.
    """
    data = np.asarray(data, dtype=np.float32)
    layout = (2, 1, 0) if data.flags.f_contiguous and not data.flags.c_contiguous else (0, 1, 2)
    volume = data.transpose(layout)  # axis a of volume is source axis layout[a]
    output_of = {int(np.abs(to_source[:3, o]).argmax()): o for o in range(3)}  # source axis -> output axis
    for a, s in enumerate(layout):
        o = output_of[s]
        volume = _lerp(volume, a, to_source[s, o] * np.arange(shape[o]) + to_source[s, 3])
    return np.ascontiguousarray(volume.transpose(np.argsort([output_of[s] for s in layout])))


def _lerp(volume, axis, coords):
    """Linear interpolation along one axis at `coords`; 0 outside [0, n - 1] (scipy's constant mode)."""
    n = volume.shape[axis]
    low = np.clip(np.floor(coords).astype(int), 0, max(n - 2, 0))
    weight = (coords - low).astype(np.float32)
    inside = (coords >= 0) & (coords <= n - 1)
    view = [1, 1, 1]
    view[axis] = len(coords)
    upper = np.where(inside, weight, 0).reshape(view)
    out = np.take(volume, low, axis=axis)
    out *= np.where(inside, 1 - weight, 0).reshape(view)
    if n > 1:
        above = np.take(volume, low + 1, axis=axis)
        above *= upper
        out += above
    else:
        out += np.take(volume, low, axis=axis) * upper
    return out


def halve(volume, affine):
    """2x2x2 block mean, and the affine of the coarser grid."""
    out = volume[0::2] + volume[1::2]  # pairwise sums, axis by axis: 25 times faster than reshape-mean
    out = out[:, 0::2] + out[:, 1::2]
    out = out[:, :, 0::2] + out[:, :, 1::2]
    out *= np.float32(0.125)
    coarse = affine.copy()
    coarse[:3, :3] *= 2
    coarse[:3, 3] += affine[:3, :3] @ np.full(3, 0.5)
    return out, coarse


def normalise(volume, mask, clamp, method):
    """Clamp to `clamp` (low, high), then z-score within the brain `mask` or scale to [-1, 1];
    the background becomes 0 (z-score) or -1. The mask works by multiplication and dot products:
    boolean indexing of a 128³ cube costs ten times more."""
    low, high = clamp
    out = np.clip(volume, low, high).astype(np.float32, copy=False)
    inside = mask.astype(np.float32)
    if method == "zscore":
        flat, weights = out.ravel(), inside.ravel()
        count = max(float(weights.sum()), 1.0)
        out -= np.float32(np.dot(flat, weights) / count)
        out /= np.float32(max(np.sqrt(np.dot(flat * flat, weights) / count), 1e-6))
        out *= inside
        return out
    out -= np.float32(low)
    out *= np.float32(2 / max(high - low, 1e-6))
    out *= inside
    out -= np.float32(1)  # the brain to [-1, 1], the background to -1
    return out


def mni_grid(size: int, fov_mm: float):
    """Affine of the common grid: a `size`³ cube spanning `fov_mm` on the MNI152 brain."""
    return brain_grid(MNI_CENTRE_MM, size, fov_mm)


def brain_statistics(data, affine, percentiles, fov_mm, to_image=None):
    """Foreground threshold, brain centre (MNI mm), clamp values, and the share of the brain
    that the MNI grid of side `fov_mm` misses, from a sample of the voxels; `to_image` maps MNI
    world coordinates to the image's (the identity for an image in MNI space)."""
    sample = data[::STATS_STEP, ::STATS_STEP, ::STATS_STEP]
    threshold = FOREGROUND * np.percentile(sample[sample > 0], 99)
    brain = sample > threshold
    to_mni = np.linalg.inv(np.eye(4) if to_image is None else to_image) @ affine
    world = np.argwhere(brain) * STATS_STEP @ to_mni[:3, :3].T + to_mni[:3, 3]
    outside = (np.abs(world - MNI_CENTRE_MM) > fov_mm / 2).any(axis=1).mean()
    return {"threshold": float(threshold), "centre_mm": world.mean(axis=0), "clamp": np.percentile(sample[brain], percentiles),
            "brain_outside_grid": float(outside)}  # fmt: skip


def preprocess(data, affine, resolutions, fov_mm, percentiles, method, to_image=None):
    """Cubes {resolution: (float32 array, affine)} and the brain statistics of one 3D image of
    finite values (QC-passed): clamped to brain percentiles of the source, resampled onto the
    MNI grid through `to_image` (MNI world to the image's world; None: the image is in MNI
    space) in one interpolation, normalised within the brain."""
    to_image = np.eye(4) if to_image is None else np.asarray(to_image, dtype=float)
    stats = brain_statistics(data, affine, percentiles, fov_mm, to_image)
    finest = max(resolutions)
    grid = mni_grid(finest, fov_mm)
    volume = resample(data, affine, to_image @ grid, (finest,) * 3)
    volume = normalise(volume, volume > stats["threshold"], stats["clamp"], method)
    out = {finest: (volume, grid)}
    while volume.shape[0] > min(resolutions):
        volume, grid = halve(volume, grid)
        out[volume.shape[0]] = (volume, grid)
    return {size: out[size] for size in resolutions}, stats


SUFFIX = {"t1": "T1w", "flair": "FLAIR", "dwi": "MD"}


def same_grid(subject, images: dict):
    """Raises unless a subject's images {modality: NIfTI image} share one grid: their voxels are
    stacked as channels and features, and must mean the same place."""
    (first, image), *others = images.items()
    for modality, other in others:
        if other.shape != image.shape or not np.allclose(other.affine, image.affine, atol=1e-4):
            raise ValueError(f"sub-{subject}: the {modality} and {first} grids differ ({other.shape} vs {image.shape}, "
                             f"affines {other.affine.round(3).tolist()} vs {image.affine.round(3).tolist()})")  # fmt: skip


def provenance(sources, checksum, size, affine, stats, settings, to_image=None):
    """The sidecar of a derivative (BIDS-style keys): where it came from (the image, and its
    brain mask where one was applied) and how it was made."""
    from . import __version__

    return {
        "Sources": [str(source) for source in sources],
        "SourceSHA256": checksum,
        "Resolution": size,
        "VoxelSizeMM": settings["fov_mm"] / size,
        "FieldOfViewMM": settings["fov_mm"],
        "Affine": np.round(affine, 6).tolist(),
        "Space": "MNI152 (the grid of every subject)",
        "TransformFromMNI": np.round(np.eye(4) if to_image is None else to_image, 6).tolist(),
        "BrainCentreMM": np.round(stats["centre_mm"], 3).tolist(),
        "BrainOutsideGrid": round(stats["brain_outside_grid"], 5),
        "ClampPercentiles": settings["clamp_percentiles"],
        "ClampValues": np.round(stats["clamp"], 6).tolist(),
        "Normalisation": settings["normalise"],
        "Interpolation": "trilinear; coarser grids are 2x2x2 means",
        "Software": f"legibility {__version__}",
    }


def run_shard(images: dict, qc_table, settings: dict, packed: dict, table_path, nifti_dir):
    """Preprocess a shard's QC-passed structural images, each through its map from MNI world
    (`qc_table`'s `to_image`, from registration; an image without one is in MNI space).

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
    from .io import save_nifti, sha256, write_json, write_tsv
    from .qc import load_structural
    from .register import matrix_of
    from .shards import PackedArray

    log = logging.getLogger("legibility.resample")
    subjects = sorted(images)
    ok = qc_table[qc_table["status"] == "pass"]
    passed = set(zip(ok["subject"], ok["modality"]))
    # each image's map from MNI world to its own, from its registration (the QC table's column)
    to_image = {(s, m): matrix_of(flat) for s, m, flat in zip(ok["subject"], ok["modality"], ok.get("to_image", [None] * len(ok)))
                if isinstance(flat, str)}  # fmt: skip
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
                mask = images[subject].get(f"{modality}_mask")
                try:
                    image, data = load_structural(source, mask)
                    cubes, stats = preprocess(data, image.affine, settings["resolutions"], settings["fov_mm"], settings["clamp_percentiles"],
                                              settings["normalise"], to_image.get((subject, modality)))  # fmt: skip
                except Exception as error:  # QC passed it, so this is a bug: say which file
                    raise RuntimeError(f"{source}: preprocessing failed: {error}") from error
                if stats["brain_outside_grid"] > 0.001:
                    log.warning("sub-%s %s: %.1f%% of the brain lies outside the %g mm grid", subject, modality,
                                100 * stats["brain_outside_grid"], settings["fov_mm"])  # fmt: skip
                checksum = sha256(source)
                for size, (volume, affine) in cubes.items():
                    derivative = nib.Nifti1Image(volume, affine)
                    derivative.set_data_dtype(np.int16)  # scaled integers: a quarter of float32 on disk
                    derivative.header.set_xyzt_units("mm")
                    name = Path(nifti_dir) / f"sub-{subject}_res-{size}_desc-preproc_{SUFFIX[modality]}"
                    save_nifti(f"{name}.nii.gz", derivative)
                    write_json(f"{name}.json", provenance([source, mask] if mask else [source], checksum, size, affine, stats, settings,
                                                               to_image.get((subject, modality))))  # fmt: skip
                    if size in arrays:
                        arrays[size][row, channel] = volume
                rows.append({**entry, "status": "ok", "reason": "", "sha256": checksum})
            log.info("preprocessed sub-%s (%d/%d)", subject, row + 1, len(subjects))
    columns = ["subject", "row", "modality", "status", "reason", "source", "sha256"]
    write_tsv(table_path, pd.DataFrame(rows).reindex(columns=columns))
