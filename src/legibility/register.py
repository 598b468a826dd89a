"""Registration to MNI space: each subject's T1 onto the MNI152 brain template, its other images
onto its T1, and the checks that an image lies where the template's brain does.

SimpleITK (ITK's registration framework) does the optimisation: Mattes mutual information,
coarse-to-fine levels (8, 4 and 2 mm by default), one thread and a seeded sample of voxels, so a rerun recovers the
same transform. Both images reach it as axis-aligned 2 mm grids in RAS world coordinates (the
moving one resampled from its file, for estimation only): the transform found maps MNI world
coordinates to the image's world, and preprocessing samples the source voxels through it once.
"""

import functools

import numpy as np
from scipy import ndimage

from . import template
from .resample import MNI_CENTRE_MM, foreground, resample

STEP_MM = 2.0  # the finest level's grid: an affine needs no finer
MIN_STEP = 1e-3  # the optimiser stops when its step (physical shift, mm) falls below this
SAMPLING = 0.1  # share of the fixed grid's voxels the metric samples at each iteration
TRANSFORMS = {"affine": 12, "rigid": 6}


@functools.lru_cache(maxsize=1)
def mni_target():
    """(T1 template, its brain mask, affine) at 2 mm: the fixed image of every registration."""
    mni = template.mni152(int(STEP_MM))
    return mni["t1"], mni["brain"], mni["affine"]


def _sitk_image(data, affine):
    """A SimpleITK image of an axis-aligned RAS array (ITK reads arrays z, y, x)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    image.SetSpacing([float(v) for v in np.diag(affine)[:3]])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    return image


def estimation_grid(data, affine, step_mm=STEP_MM):
    """The image resampled onto an axis-aligned `step_mm` grid over its field of view (for the
    optimiser only), and that grid's affine."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (np.array(data.shape) - 1)
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    low, high = world.min(axis=0) - step_mm, world.max(axis=0) + step_mm
    shape = tuple(np.ceil((high - low) / step_mm).astype(int) + 1)
    grid = np.diag([step_mm, step_mm, step_mm, 1.0])
    grid[:3, 3] = low
    return resample(data, affine, grid, shape), grid


def _matrix(transform):
    """The 4x4 matrix of an ITK transform (fixed world to moving world), from points it maps."""
    points = np.vstack([np.zeros(3), np.eye(3) * 100.0])
    moved = np.array([transform.TransformPoint(tuple(map(float, p))) for p in points])
    matrix = np.eye(4)
    matrix[:3, :3] = (moved[1:] - moved[0]).T / 100.0
    matrix[:3, 3] = moved[0]
    return matrix


def register(fixed, fixed_affine, moving, moving_affine, kind="affine", seed=0, levels_mm=(8, 4, 2), iterations=200):
    """The 4x4 map from the fixed image's world to the moving image's world, and the final
    metric value (Mattes mutual information, negative: lower is better). Both are axis-aligned
    RAS arrays on STEP_MM grids, with their affines. `kind`: affine (12 parameters) or rigid
    (6); `levels_mm`: the grids of the coarse-to-fine levels, each smoothed by half its step."""
    import SimpleITK as sitk

    # every ITK filter on one thread (the method's own setting leaves the pyramid's to ITK):
    # threads split sums differently from run to run, and the transform must be the same
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    fixed_image, moving_image = _sitk_image(fixed, fixed_affine), _sitk_image(moving, moving_affine)
    initial = sitk.CenteredTransformInitializer(fixed_image, moving_image,
                                                sitk.AffineTransform(3) if kind == "affine" else sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)  # fmt: skip
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, int(seed) % (2**31 - 1) or 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=MIN_STEP, numberOfIterations=iterations,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)  # fmt: skip
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([max(1, round(level / STEP_MM)) for level in levels_mm])
    method.SetSmoothingSigmasPerLevel([level / 2 if level > STEP_MM else 0.0 for level in levels_mm])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    transform = method.Execute(fixed_image, moving_image)
    return _matrix(transform), float(method.GetMetricValue())


def to_mni(data, affine, kind="affine", seed=0, levels_mm=(8, 4, 2)):
    """Register a brain-extracted T1 to the MNI152 template: (MNI world -> image world, metric)."""
    t1, _, mni_affine = mni_target()
    moving, grid = estimation_grid(data, affine)
    return register(t1, mni_affine, moving, grid, kind, seed, levels_mm)


def to_reference(data, affine, reference, reference_affine, seed=0, levels_mm=(8, 4, 2)):
    """Rigid registration of another image of the subject to its T1: (T1 world -> image world)."""
    fixed, fixed_grid = estimation_grid(reference, reference_affine)
    moving, grid = estimation_grid(data, affine)
    return register(fixed, fixed_grid, moving, grid, "rigid", seed, levels_mm)[0]


def head_scale(to_image) -> float:
    """The linear size of the head relative to the template: the cube root of the map's volume
    change (1.1: a head 10% larger in each direction than MNI152's)."""
    return float(abs(np.linalg.det(np.asarray(to_image)[:3, :3])) ** (1 / 3))


def on_template(data, affine, to_image):
    """The image sampled onto the 2 mm template grid through `to_image`."""
    _, brain, mni_affine = mni_target()
    return resample(data, affine, np.asarray(to_image) @ mni_affine, brain.shape)


def check(data, affine, to_image) -> dict:
    """How well the image sits on the template: Dice of its foreground with the MNI brain mask
    (no rescaling) and the correlation of intensities with the template inside that mask."""
    t1, brain, _ = mni_target()
    moved = on_template(data, affine, to_image)
    mask = moved > 0
    mask &= foreground(moved) if mask.any() else mask
    dice = 2 * (mask & brain).sum() / max(mask.sum() + brain.sum(), 1)
    inside = moved[brain]
    similarity = np.corrcoef(inside, t1[brain])[0, 1] if inside.std() > 0 else 0.0
    return {"dice": round(float(dice), 4), "similarity": round(float(similarity), 4)}


def outline(brain):
    """The MNI brain's edge (for montages)."""
    return brain & ~ndimage.binary_erosion(brain)



REGISTRATION_COLUMNS = ["registration", "dice", "similarity", "head_scale", "to_image"]


def _decide(row: dict, result: dict, settings: dict) -> dict:
    """A structural QC row with its registration's metrics; failed where the image does not sit
    on the MNI brain: Dice below its threshold, or for a T1 (the template's contrast; other
    contrasts correlate with it weakly or inversely) similarity below its threshold."""
    reasons = []
    if result["dice"] < settings["min_dice"]:
        reasons.append(f"brain overlaps the MNI152 brain with Dice {result['dice']:.2f} (min {settings['min_dice']}): "
                       + ("registration failed" if settings["space"] == "native" else "not in MNI space?"))  # fmt: skip
    if row["modality"] == "t1" and result["similarity"] < settings["min_similarity"]:
        reasons.append(f"intensities correlate {result['similarity']:.2f} with the MNI152 T1 template (min {settings['min_similarity']})")
    return _failed(row, reasons, result)


def _failed(row, reasons, result=None):
    row = {**row, **(result or {})}
    if reasons:
        row["status"] = "fail"
        before = row.get("reasons")
        row["reasons"] = "; ".join([before, *reasons] if isinstance(before, str) and before else reasons)
    return row


def register_subject(subject, paths: dict, rows: dict, settings: dict, seed: int) -> dict:
    """{modality: QC row with registration} for a subject's QC-passed structural images.
    `settings`: space (mni or native), transform (affine or rigid), others (world: the
    reference's transform; rigid: registered to the reference), min_dice, min_similarity.
    The reference, registered to MNI152, is the subject's first QC-passed structural image in
    the order T1, FLAIR, MD: a subject whose T1 failed keeps its other images."""
    from . import MODALITIES
    from .qc import load_structural
    from .seeds import derive_seed

    passed = [m for m in rows if rows[m]["status"] == "pass"]
    if not passed:
        return rows
    loaded = {m: load_structural(paths[m], paths.get(f"{m}_mask")) for m in passed}
    images = {m: (data, image.affine) for m, (image, data) in loaded.items()}
    if settings["space"] == "mni":
        out = {}
        for m in rows:
            if m in images:
                out[m] = _decide(rows[m], {"registration": "in MNI space", **check(*images[m], np.eye(4)),
                                           "head_scale": float("nan"), "to_image": _flat(np.eye(4))}, settings)  # fmt: skip
            else:
                out[m] = rows[m]
        return out
    reference = next(m for m in MODALITIES if m in images)
    to_image, _ = to_mni(*images[reference], settings["transform"], derive_seed(seed, "registration", subject), settings["levels_mm"])
    out = {}
    for m in rows:
        if m not in images:
            out[m] = rows[m]
            continue
        if m == reference:
            how, matrix = f"{settings['transform']} to MNI152", to_image
        elif settings["others"] == "rigid":
            rigid = to_reference(*images[m], *images[reference], derive_seed(seed, "registration", subject, m), settings["levels_mm"])
            how, matrix = f"rigid to {reference}, then as {reference}", rigid @ to_image
        else:
            how, matrix = f"as {reference} (aligned in world space)", to_image
        out[m] = _decide(rows[m], {"registration": how, **check(*images[m], matrix), "head_scale": round(head_scale(to_image), 4),
                                   "to_image": _flat(matrix)}, settings)  # fmt: skip
    if out[reference]["status"] == "fail":  # the others were placed by the reference's transform
        for m in out:
            if m != reference and m in images:
                out[m] = _failed(out[m], [f"{reference}'s registration failed"])
    return out


def _flat(matrix) -> str:
    return " ".join(f"{v:.6g}" for v in np.asarray(matrix).ravel())


def matrix_of(flat: str):
    """The 4x4 map (MNI world -> image world) from its table form."""
    return np.array([float(v) for v in str(flat).split()]).reshape(4, 4)


def run_shard(qc_table, images: dict, settings: dict, seed: int, montage_path=None):
    """The shard's QC table with every structural image's registration (its map from MNI world,
    Dice, similarity, head scale) and the decisions that follow; with `montage_path`, a figure
    of each subject's reference image on the template grid under the MNI brain's outline."""
    import logging

    import pandas as pd

    from . import MODALITIES

    log = logging.getLogger("legibility.register")
    table = qc_table.copy()
    structural = table["modality"].isin(MODALITIES)
    out = []
    for subject, group in table[structural].groupby("subject", sort=True):
        rows = {r["modality"]: r for r in group.to_dict("records")}
        try:
            done = register_subject(str(subject), images[str(subject)], rows, settings, seed)
        except Exception as error:  # QC passed these files: say which subject, keep the others
            done = {m: _failed(r, [f"registration failed ({type(error).__name__}: {error})"]) if r["status"] == "pass" else r
                    for m, r in rows.items()}  # fmt: skip
        for m, row in done.items():
            if row["status"] == "fail" and rows[m]["status"] == "pass":
                log.warning("sub-%s %s failed registration: %s", subject, m, row["reasons"])
        log.info("registered sub-%s: %s", subject,
                 ", ".join(f"{m} Dice {r.get('dice', float('nan')):.3f}" for m, r in done.items() if r["status"] == "pass"))  # fmt: skip
        out.extend(done.values())
    result = pd.concat([pd.DataFrame(out), table[~structural]], ignore_index=True)
    result = result.reindex(columns=[*qc_table.columns, *REGISTRATION_COLUMNS])
    if montage_path is not None:
        from .io import save_figure

        save_figure(montage_path, montage(result, images, settings))
    return result


def montage(table, images: dict, settings: dict):
    """Each subject's reference image (and every image that failed) on the 2 mm template grid,
    axial and sagittal slices through the MNI brain's centre, with the MNI brain's outline in
    red: a misregistration shows as tissue across the line. Failures are titled FAIL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .qc import load_structural

    _, brain, mni_affine = mni_target()
    edge = outline(brain)
    centre = np.round(np.linalg.inv(mni_affine) @ np.append(MNI_CENTRE_MM, 1.0))[:3].astype(int)
    # each subject's reference: the image registered to MNI152 itself (or, in MNI space, its T1)
    placed = table.dropna(subset=["to_image"])
    how = placed["registration"].astype(str)
    own = how.str.endswith("to MNI152") | (how == "in MNI space")
    rows = pd.concat([placed[own].drop_duplicates("subject"), placed[~own & (placed["status"] == "fail")]]).sort_values("subject")
    columns = min(max(len(rows), 1), 10)
    lines = -(-max(len(rows), 1) // columns)  # each subject: an axial slice above a sagittal one
    fig, axes = plt.subplots(2 * lines, columns, figsize=(1.6 * columns, 3.4 * lines + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, row in enumerate(rows.itertuples()):
        line, i = divmod(k, columns)
        image, data = load_structural(row.path, images[str(row.subject)].get(f"{row.modality}_mask"))
        moved = on_template(data, image.affine, matrix_of(row.to_image))
        high = np.percentile(moved[moved > 0], 99) if (moved > 0).any() else 1.0
        for ax, view, border in ((axes[2 * line, i], moved[:, :, centre[2]], edge[:, :, centre[2]]),
                                 (axes[2 * line + 1, i], moved[centre[0]], edge[centre[0]])):  # fmt: skip
            ax.imshow(np.rot90(view), cmap="gray", vmin=0, vmax=high)
            ax.imshow(np.rot90(np.ma.masked_where(~border, border)), cmap="autumn", alpha=0.9, interpolation="none")
        axes[2 * line, i].set_title(f"sub-{row.subject} {row.modality}" + (" FAIL" if row.status == "fail" else f"\nDice {row.dice:.2f}"), fontsize=7,
                             color="red" if row.status == "fail" else "black")  # fmt: skip
    fig.suptitle(f"Each subject's T1 (or its first structural image) on the MNI grid ({settings['space']} space); "
                 "red: the MNI152 brain's outline", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig
